"""What a `zfs send` stream says of itself, read from its first records. Pure: no processes.

`zmake serve` (receive role) reads these before it starts `zfs recv`, because libzfs decides
from the stream, not from the receive's options, what arrives: a filesystem or a volume, a full
or an incremental stream, one dataset or a replication package (`send -R`, whose `-F` receive
destroys what is not in it), with properties of its own (`send -p`) or not. The records are
OpenZFS's `dmu_replay_record_t` (312 bytes); a compound stream's header carries an nvlist packed
with XDR, then an END record, then its first substream's BEGIN record."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from zmake.errors import ParseError

RECORD_SIZE = 312
DRR_BEGIN, DRR_END = 0, 2
BACKUP_MAGIC = 0x2F5BACBAC
SUBSTREAM, COMPOUND = 1, 2
OBJSET_TYPES = {1: "volume", 2: "filesystem"}  # DMU_OST_ZVOL, DMU_OST_ZFS
FLAG_CLONE = 0x1  # DRR_FLAG_CLONE: the stream makes a clone of a snapshot found by guid
MAX_PAYLOAD = 16 << 20
XDR_NVLIST, XDR_BOOLEAN = 19, 1


@dataclass(frozen=True)
class Begin:
    hdrtype: int
    featureflags: int
    objset_type: int
    flags: int
    toguid: int
    fromguid: int
    toname: str
    payloadlen: int

    @property
    def kind(self) -> str | None:
        return OBJSET_TYPES.get(self.objset_type)


@dataclass(frozen=True)
class StreamHead:
    """The first BEGIN record, the compound header's nvlist (if any), the first substream's
    BEGIN, and every byte read to learn them (which the receive must still be given)."""

    first: Begin
    package: dict[str, object] | None
    substream: Begin
    raw_bytes: bytes

    @property
    def compound(self) -> bool:
        return self.package is not None


def parse_begin(record: bytes) -> Begin:
    if len(record) != RECORD_SIZE:
        raise ParseError("stream: shorter than one record")
    order = None
    for candidate in ("<", ">"):
        (magic,) = struct.unpack_from(candidate + "Q", record, 8)
        if magic == BACKUP_MAGIC:
            order = candidate
    if order is None:
        raise ParseError("stream: not a zfs send stream (no BEGIN magic)")
    drr_type, payloadlen = struct.unpack_from(order + "II", record, 0)
    if drr_type != DRR_BEGIN:
        raise ParseError(f"stream: record type {drr_type} where a BEGIN record belongs")
    fields = struct.unpack_from(order + "QQIIQQ", record, 16)
    versioninfo, _, objset, flags, toguid, fromguid = fields
    toname = record[56:].split(b"\0", 1)[0].decode("utf-8", "replace")
    return Begin(versioninfo & 3, versioninfo >> 2, objset, flags, toguid, fromguid, toname,
                 payloadlen)  # fmt: skip


def read_head(read: Callable[[int], bytes]) -> StreamHead:
    """`read(n)` returns exactly n bytes or fewer at the end of the stream."""
    first_bytes = read(RECORD_SIZE)
    first = parse_begin(first_bytes)
    if first.hdrtype == SUBSTREAM:
        return StreamHead(first, None, first, first_bytes)
    if first.hdrtype != COMPOUND:
        raise ParseError(f"stream: unknown header type {first.hdrtype}")
    if first.payloadlen > MAX_PAYLOAD:
        raise ParseError("stream: compound header too large")
    payload = read(first.payloadlen)
    if len(payload) != first.payloadlen:
        raise ParseError("stream: compound header cut short")
    package = unpack_xdr(payload)
    end = read(RECORD_SIZE)
    if len(end) != RECORD_SIZE or struct.unpack_from("<I", end)[0] != DRR_END:
        raise ParseError("stream: no END record after the compound header")
    sub_bytes = read(RECORD_SIZE)
    substream = parse_begin(sub_bytes)
    if substream.hdrtype != SUBSTREAM:
        raise ParseError("stream: a compound stream inside a compound stream")
    return StreamHead(first, package, substream, first_bytes + payload + end + sub_bytes)


# --- nvlists packed with XDR (big-endian, 4-byte aligned) -----------------------------------


def unpack_xdr(data: bytes) -> dict[str, object]:
    """The pairs of an XDR-packed nvlist: nested nvlists as dicts, booleans as True, every
    other value as its type number (serve needs names and nesting, not values)."""
    if len(data) < 4 or data[0] != 1:
        raise ParseError("stream: compound header is not an XDR nvlist")
    pairs, _ = unpack_nvlist(data, 4)
    return pairs


def unpack_nvlist(data: bytes, offset: int, depth: int = 0) -> tuple[dict[str, object], int]:
    if depth > 8:
        raise ParseError("stream: compound header nested too deep")
    offset += 8  # nvl_version, nvl_nvflag
    pairs: dict[str, object] = {}
    while True:
        encoded, decoded = word(data, offset), word(data, offset + 4)
        if encoded == 0 and decoded == 0:
            return pairs, offset + 8
        if encoded < 16 or offset + encoded > len(data):
            raise ParseError("stream: compound header has a malformed pair")
        length = word(data, offset + 8)
        name_end = offset + 12 + length
        name = data[offset + 12 : name_end].split(b"\0", 1)[0].decode("utf-8", "replace")
        value_at = offset + 12 + (length + 3) // 4 * 4
        kind = word(data, value_at)
        if kind == XDR_NVLIST:
            pairs[name], _ = unpack_nvlist(data, value_at + 8, depth + 1)
        else:
            pairs[name] = True if kind == XDR_BOOLEAN else kind
        offset += encoded


def word(data: bytes, offset: int) -> int:
    if offset + 4 > len(data):
        raise ParseError("stream: compound header cut short")
    return int(struct.unpack_from(">I", data, offset)[0])
