"""What a `zfs send` stream says of itself, read from its first records. Pure: no processes.

`zmake serve` (receive role) reads these before it starts `zfs recv`, because libzfs decides
from the stream, not from the receive's options, what arrives: a filesystem or a volume, a full
or an incremental stream, one dataset or a replication package (`send -R`, whose `-F` receive
destroys what is not in it), with properties of its own (`send -p`) or not. The records are
OpenZFS's `dmu_replay_record_t` (312 bytes). A compound stream begins with a header record —
with no payload for `send -I` of one dataset, with an XDR nvlist (`fss`, properties…) for
`send -R/-p/-b/-h` —, then an END record, then its first substream's BEGIN record (seen on
OpenZFS 2.3.2: tests/realzfs/test_serve_attacks.py)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from zmake.errors import ParseError

RECORD_SIZE = 312
# drr_type: BEGIN, OBJECT, FREEOBJECTS, WRITE, FREE, END, … (OpenZFS include/sys/zfs_ioctl.h)
DRR_BEGIN, DRR_END = 0, 5
BACKUP_MAGIC = 0x2F5BACBAC
SUBSTREAM, COMPOUND = 1, 2
OBJSET_TYPES = {2: "filesystem", 3: "volume"}  # DMU_OST_ZFS, DMU_OST_ZVOL
FLAG_CLONE = 0x1  # DRR_FLAG_CLONE: the stream makes a clone of a snapshot found by guid


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
    """The first BEGIN record, the first substream's BEGIN (the same record for a plain
    stream), and every byte read to learn them (which the receive must still be given)."""

    first: Begin
    substream: Begin
    raw_bytes: bytes

    @property
    def compound(self) -> bool:
        return self.first.hdrtype == COMPOUND


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
    """`read(n)` returns exactly n bytes, or fewer at the end of the stream. A compound
    header's payload is not read: a caller that accepts one must refuse it first."""
    first_bytes = read(RECORD_SIZE)
    first = parse_begin(first_bytes)
    if first.hdrtype == SUBSTREAM:
        return StreamHead(first, first, first_bytes)
    if first.hdrtype != COMPOUND:
        raise ParseError(f"stream: unknown header type {first.hdrtype}")
    if first.payloadlen:
        return StreamHead(first, first, first_bytes)
    end = read(RECORD_SIZE)
    if len(end) != RECORD_SIZE or end[:4] not in (struct.pack(o + "I", DRR_END) for o in "<>"):
        raise ParseError("stream: no END record after the compound header")
    sub_bytes = read(RECORD_SIZE)
    substream = parse_begin(sub_bytes)
    if substream.hdrtype != SUBSTREAM:
        raise ParseError("stream: a compound stream inside a compound stream")
    return StreamHead(first, substream, first_bytes + end + sub_bytes)
