"""Forge a `receive_resume_token` by editing a REAL token's payload (the control of the forged
token attack, OpenZFS #14153). Stdlib only: kept apart from zmake.core.token on purpose, so that the
forger is not the code it tests.

Every pair of the real token (object, offset, bytes, compressok, embedok, rawok, …) is kept in
its order and encoding; only the named values are replaced, and the result is re-packed the
way the kernel packs it: `1-<fletcher4 word 0 of the zlib bytes, hex>-<packed length,
hex>-<hex of the zlib bytes>`."""

from __future__ import annotations

import struct
import zlib

UINT64, STRING, BOOLEAN = 8, 9, 1
Pair = tuple[str, int, int, bytes]  # name, type, nelem, value bytes


def fletcher4_word0(data: bytes) -> int:
    n = len(data) - len(data) % 4
    return sum(struct.unpack_from(f"<{n // 4}I", data)) % (1 << 64)


def align8(n: int) -> int:
    return (n + 7) & ~7


def decode_pairs(token: str) -> tuple[bytes, list[Pair]]:
    """(12-byte header, the pairs) of the token's native nvlist."""
    version, checksum, length, hexed = token.strip().split("-", 3)
    payload = bytes.fromhex(hexed)
    assert version == "1", version
    assert fletcher4_word0(payload) == int(checksum, 16), "checksum mismatch"
    packed = zlib.decompress(payload)
    assert len(packed) == int(length, 16), "length mismatch"
    assert packed[0] == 0 and packed[1] == 1, "not a native little-endian nvlist"
    header, pos, pairs = packed[:12], 12, []
    while True:
        (size,) = struct.unpack_from("<i", packed, pos)
        if size == 0:
            return header, pairs
        _, name_sz, _, nelem, kind = struct.unpack_from("<ihhii", packed, pos)
        name = packed[pos + 16 : pos + 16 + name_sz - 1].decode()
        value = packed[pos + align8(16 + name_sz) : pos + size]
        pairs.append((name, kind, nelem, value))
        pos += size


def pack_pair(name: str, kind: int, nelem: int, value: bytes) -> bytes:
    encoded = name.encode() + b"\0"
    head = align8(16 + len(encoded))
    size = head + len(value)
    return (struct.pack("<ihhii", size, len(encoded), 0, nelem, kind) + encoded
            + b"\0" * (head - 16 - len(encoded)) + value)  # fmt: skip


def string_value(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return raw + b"\0" * (align8(len(raw)) - len(raw))


def encode_pairs(header: bytes, pairs: list[Pair]) -> str:
    packed = header + b"".join(pack_pair(*p) for p in pairs) + struct.pack("<i", 0)
    payload = zlib.compress(packed)
    return f"1-{fletcher4_word0(payload):x}-{len(packed):x}-{payload.hex()}"


def values(token: str) -> dict[str, object]:
    """The token's pairs by name: uint64 as int, string as str, boolean as True."""
    found: dict[str, object] = {}
    for name, kind, _, value in decode_pairs(token)[1]:
        if kind == UINT64:
            found[name] = struct.unpack("<Q", value[:8])[0]
        elif kind == STRING:
            found[name] = value.split(b"\0", 1)[0].decode()
        else:
            found[name] = True if kind == BOOLEAN else value.hex()
    return found


def forge(token: str, *, toguid: int | None = None, toname: str | None = None) -> str:
    """The real `token` with its toguid and/or toname replaced, re-checksummed."""
    header, pairs = decode_pairs(token)
    new: dict[str, tuple[int, int, bytes]] = {}
    if toguid is not None:
        new["toguid"] = (UINT64, 1, struct.pack("<Q", toguid))
    if toname is not None:
        new["toname"] = (STRING, 1, string_value(toname))
    assert set(new) <= {name for name, *_ in pairs}, "a real token holds toguid and toname"
    forged = [(name, *new[name]) if name in new else (name, k, n, v) for name, k, n, v in pairs]
    return encode_pairs(header, forged)
