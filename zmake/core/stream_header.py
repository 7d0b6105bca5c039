"""What a `zfs send` stream says of itself, read from its first records. Pure: no processes.

`zmake serve` (receive role) reads these before it starts `zfs recv`, because libzfs decides
from the stream, not from the receive's options, what arrives: a filesystem or a volume, a full
or an incremental stream, one dataset or a replication package (`send -R`, whose `-F` receive
destroys what is not in it), with properties of its own (`send -p`) or not. The records are
OpenZFS's `dmu_replay_record_t` (312 bytes). Only the first record is read: a plain stream's
BEGIN says all there is to know; a compound one (every `send -I`, `-R`, `-p`) is a package
whose later substreams libzfs receives too, each with a name and kind of its own, which only
reading the whole stream could check."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from zmake.core.errors import ParseError

RECORD_SIZE = 312
DRR_BEGIN = 0
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


def parse_begin(record: bytes) -> Begin:
    if len(record) != RECORD_SIZE:
        raise ParseError("stream: shorter than one record")
    order = byte_order(record)
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


def byte_order(record: bytes) -> str | None:
    """The byte order ("<" or ">") a BEGIN record's magic is written in: the order of the host
    that wrote the stream, for every number in it. None: no magic (not a BEGIN record)."""
    for order in ("<", ">"):
        if len(record) >= 16 and struct.unpack_from(order + "Q", record, 8)[0] == BACKUP_MAGIC:
            return order
    return None


def read_head(read: Callable[[int], bytes]) -> tuple[Begin, bytes]:
    """The first record, and its bytes (which the receive must still be given). `read(n)`
    returns exactly n bytes, or fewer at the end of the stream."""
    first = read(RECORD_SIZE)
    return parse_begin(first), first
