"""Decode a `receive_resume_token`. Pure: no processes.

A token is `<version>-<checksum>-<payload length>-<hex of the zlib-compressed payload>`, the
payload an nvlist packed in the native encoding (as libzfs' zfs_send_resume_token_to_nvlist
reads it). zmake needs its `toguid`/`fromguid` (which snapshots a resume needs: prune must
keep them, `--force` may abort a token only when they are gone) and, for `serve`, `toname`
and whether the stream was raw."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from zmake.core.errors import ParseError

TOKEN_VERSION = 1
NV_ENCODE_NATIVE = 0
NV_LITTLE_ENDIAN = 1
PAIR_HEADER = 16  # nvp_size, nvp_name_sz, nvp_reserve, nvp_value_elem, nvp_type
TYPE_BOOLEAN = 1  # present or not, no value
TYPE_UINT64 = 8
TYPE_STRING = 9
MAX_PAYLOAD = 1 << 20


@dataclass(frozen=True)
class ResumeToken:
    toguid: int
    toname: str  # the snapshot being received, by its name on the sending side
    fromguid: int = 0  # 0: a full stream
    raw: bool = False
    flags: frozenset[str] = frozenset()  # every boolean the token holds (embedok, …)
    # every pair's name, whatever its type (decode fills it; encode adds the ones not
    # otherwise written as uint64 pairs)
    names: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def incremental(self) -> bool:
        return self.fromguid != 0

    @property
    def needed_guids(self) -> set[int]:
        """The guids the sending side must still hold for `zfs send -t` to work."""
        return {self.toguid, self.fromguid} - {0}


def decode(token: str) -> ResumeToken:
    """Raises ParseError for anything that is not a well-formed version-1 token."""
    version, checksum, length, payload = split(token)
    if version != TOKEN_VERSION:
        raise ParseError(f"resume token version {version} is not supported")
    if fletcher4_first_word(payload) != checksum:
        raise ParseError("resume token is corrupt (checksum mismatch)")
    try:
        packed = zlib.decompress(payload)
    except zlib.error as exc:
        raise ParseError(f"resume token is corrupt ({exc})") from None
    if len(packed) != length:
        raise ParseError("resume token is corrupt (length mismatch)")
    return from_pairs(unpack_native(packed))


def split(token: str) -> tuple[int, int, int, bytes]:
    parts = token.strip().split("-", 3)
    if len(parts) != 4:
        raise ParseError("resume token is corrupt (invalid format)")
    try:
        version, checksum, length = int(parts[0]), int(parts[1], 16), int(parts[2], 16)
        payload = bytes.fromhex(parts[3])
    except ValueError:
        raise ParseError("resume token is corrupt (invalid format)") from None
    if length > MAX_PAYLOAD:
        raise ParseError("resume token is corrupt (payload too large)")
    return version, checksum, length, payload


def fletcher4_first_word(data: bytes) -> int:
    """The first word of fletcher-4 over 32-bit little-endian words (a trailing partial word
    is ignored, as in libzfs)."""
    usable = len(data) - len(data) % 4
    words: tuple[int, ...] = struct.unpack_from(f"<{usable // 4}I", data)
    return sum(words) % (1 << 64)


def unpack_native(packed: bytes) -> dict[str, int | str | bool | None]:
    """The pairs of a natively packed nvlist that a token uses (uint64, string, boolean)."""
    if len(packed) < 12 or packed[0] != NV_ENCODE_NATIVE:
        raise ParseError("resume token payload is not a native nvlist")
    order = "<" if packed[1] == NV_LITTLE_ENDIAN else ">"
    pairs: dict[str, int | str | bool | None] = {}
    offset = 12  # encoding header (4), nvl_version (4), nvl_nvflag (4)
    while True:
        if offset + 4 > len(packed):
            raise ParseError("resume token payload is truncated")
        (size,) = struct.unpack_from(order + "i", packed, offset)
        if size == 0:
            return pairs
        if size < PAIR_HEADER or offset + size > len(packed):
            raise ParseError("resume token payload has a malformed pair")
        name, value = unpack_pair(packed[offset : offset + size], order)
        pairs[name] = value
        offset += size


def unpack_pair(pair: bytes, order: str) -> tuple[str, int | str | bool | None]:
    _, name_size, _, _, kind = struct.unpack_from(order + "ihhii", pair)
    if name_size < 1 or PAIR_HEADER + name_size > len(pair):
        raise ParseError("resume token payload has a malformed name")
    name = pair[PAIR_HEADER : PAIR_HEADER + name_size - 1].decode("utf-8", "replace")
    value_at = align8(PAIR_HEADER + name_size)
    if kind == TYPE_BOOLEAN:
        return name, True
    if kind == TYPE_UINT64:
        if value_at + 8 > len(pair):
            raise ParseError(f"resume token: {name} is truncated")
        return name, struct.unpack_from(order + "Q", pair, value_at)[0]
    if kind == TYPE_STRING:
        end = pair.find(b"\0", value_at)
        if end < 0:
            raise ParseError(f"resume token: {name} is not terminated")
        return name, pair[value_at:end].decode("utf-8", "surrogateescape")
    return name, None  # a type zmake does not read (e.g. redaction lists): named only


def align8(offset: int) -> int:
    return (offset + 7) & ~7


def from_pairs(pairs: dict[str, int | str | bool | None]) -> ResumeToken:
    toguid, toname, fromguid = pairs.get("toguid"), pairs.get("toname"), pairs.get("fromguid", 0)
    if not isinstance(toguid, int) or not isinstance(toname, str) or not isinstance(fromguid, int):
        raise ParseError("resume token lacks toguid/toname")
    booleans = frozenset(name for name, value in pairs.items() if value is True)
    return ResumeToken(toguid, toname, fromguid, raw="rawok" in booleans, flags=booleans,
                       names=frozenset(pairs))  # fmt: skip


def encode(token: ResumeToken) -> str:
    """The token zfs would print for these fields (object/offset/bytes zero): decode's
    inverse, for tests and for `zmake serve`'s checks of what it is handed."""
    pairs = b"".join(
        [
            *([pack_pair("fromguid", TYPE_UINT64, token.fromguid)] if token.fromguid else []),
            pack_pair("object", TYPE_UINT64, 0),
            pack_pair("offset", TYPE_UINT64, 0),
            pack_pair("bytes", TYPE_UINT64, 0),
            pack_pair("toguid", TYPE_UINT64, token.toguid),
            pack_pair("toname", TYPE_STRING, token.toname),
            *(pack_pair(flag, TYPE_BOOLEAN, None) for flag in sorted(all_flags(token))),
            *(pack_pair(name, TYPE_UINT64, 0) for name in sorted(extra_names(token))),
        ]
    )
    packed = bytes([NV_ENCODE_NATIVE, NV_LITTLE_ENDIAN, 0, 0]) + struct.pack("<iI", 0, 1)
    packed += pairs + struct.pack("<i", 0)
    payload = zlib.compress(packed)
    return f"{TOKEN_VERSION}-{fletcher4_first_word(payload):x}-{len(packed):x}-{payload.hex()}"


WRITTEN = frozenset({"fromguid", "object", "offset", "bytes", "toguid", "toname"})


def extra_names(token: ResumeToken) -> frozenset[str]:
    return token.names - WRITTEN - all_flags(token)


def all_flags(token: ResumeToken) -> frozenset[str]:
    return token.flags | ({"rawok"} if token.raw else frozenset())


def pack_pair(name: str, kind: int, value: int | str | None) -> bytes:
    encoded = name.encode() + b"\0"
    head_and_name = PAIR_HEADER + len(encoded)
    padding = align8(head_and_name) - head_and_name
    if kind == TYPE_UINT64:
        body, count = struct.pack("<Q", value), 1
    elif kind == TYPE_STRING:
        assert isinstance(value, str)
        text = value.encode("utf-8", "surrogateescape") + b"\0"
        body, count = text + b"\0" * (align8(len(text)) - len(text)), 1
    else:
        body, count = b"", 0
    size = head_and_name + padding + len(body)
    header = struct.pack("<ihhii", size, len(encoded), 0, count, kind)
    return header + encoded + b"\0" * padding + body
