"""A `zfs send` stream read whole, record by record: is it one, and is it intact? Pure: the
bytes come from a `read(n)` it is given (n bytes, or fewer only at the end).

`zstream dump` exits 0 on empty input, random bytes or text, and only prints a checksum that
differs. These are the checks a receive makes (OpenZFS's dmu_recv.c and libzfs_sendrecv.c
on the records of zfs_ioctl.h's dmu_replay_record_t, 312 bytes each), made to fail:

- the first record is a BEGIN, its magic 0x2F5bacbac in either byte order (stream_header.py),
  and every number after it is read in that order;
- every record's type is one OpenZFS has, and its payload as long as its type says;
- every record but a BEGIN ends with the fletcher-4 (core/fletcher.py) of its substream up to
  that field, the field itself then counted on (all zero: not filled in, as libzfs leaves
  the ENDs it writes itself);
- an END carries the checksum of its substream up to the END, and starts the next at zero;
- the stream ends with its END, and nothing follows. A plain stream is BEGIN … END; a
  compound one (`send -I`, -R, -p) is a BEGIN header and its END, substreams (BEGIN … END),
  and a last END."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from zmake.core.errors import ParseError
from zmake.core.fletcher import ZERO, Checksum, update
from zmake.core.stream_header import COMPOUND, RECORD_SIZE, byte_order, parse_begin

CHECKSUM_AT = RECORD_SIZE - 32  # drr_u.drr_checksum.drr_checksum: a record's last 32 bytes
NAMES = ("BEGIN", "OBJECT", "FREEOBJECTS", "WRITE", "FREE", "END", "WRITE_BYREF", "SPILL",
         "WRITE_EMBEDDED", "OBJECT_RANGE", "REDACT")  # fmt: skip
BEGIN, OBJECT, WRITE, END, SPILL, WRITE_EMBEDDED = 0, 1, 3, 5, 7, 8
PIECE = 1 << 20  # a payload is read (and summed) a MiB at a time


@dataclass(frozen=True)
class Summary:
    records: int
    length: int  # bytes
    compound: bool


def check_stream(read: Callable[[int], bytes]) -> Summary:
    """The whole stream read and checked; a ParseError names the first thing wrong."""
    first = read(RECORD_SIZE)
    if not first:
        raise ParseError("stream: empty, not a zfs send stream")
    compound = parse_begin(first).hdrtype == COMPOUND
    walk = Walk(read, byte_order(first) or "<")
    record: bytes | None = first
    inside = False  # a BEGIN's substream (or a compound stream's header) not yet ended
    while record is not None:
        kind = walk.take(record)
        if kind == BEGIN:
            if inside:
                raise walk.damaged("a BEGIN record inside a substream")
            inside = True
        elif kind == END:
            if not inside or not compound:
                break  # the stream's last END
            inside = False
        elif not inside:
            raise walk.damaged(f"a {NAMES[kind]} record outside any substream")
        record = walk.next_record()
    else:
        raise walk.damaged("ends before its END record: truncated")
    if read(1):
        raise walk.damaged("more data after the stream's END record")
    return Summary(walk.records, walk.offset, compound)


class Walk:
    """The records read so far, and the running checksum of the current substream."""

    def __init__(self, read: Callable[[int], bytes], order: str) -> None:
        self.read, self.order = read, order
        self.checksum: Checksum = ZERO
        self.offset = 0  # where the record being read starts, then: the bytes read
        self.records = 0

    def damaged(self, what: str) -> ParseError:
        return ParseError(f"stream: byte {self.offset} (record {self.records}): {what}")

    def next_record(self) -> bytes | None:
        record = self.read(RECORD_SIZE)
        if not record:
            return None
        if len(record) < RECORD_SIZE:
            raise self.damaged(f"ends {len(record)} bytes into a record: truncated")
        return record

    def take(self, record: bytes) -> int:
        """One record and its payload, checked; its type."""
        kind = int(struct.unpack_from(self.order + "I", record, 0)[0])
        if kind >= len(NAMES):
            raise self.damaged(f"record type {kind} is none of OpenZFS's: not a stream, or damaged")
        if kind == BEGIN and byte_order(record) != self.order:
            raise self.damaged("a BEGIN record without the stream's magic")
        if kind == END and self.numbers(record, 8) != self.checksum:
            raise self.damaged("the END record's checksum differs from the stream's: damaged")
        upto = update(self.checksum, record[:CHECKSUM_AT], self.order)
        stored = self.numbers(record, CHECKSUM_AT)
        if kind != BEGIN and stored != ZERO and stored != upto:
            raise self.damaged(f"{NAMES[kind]} record's checksum differs: damaged before it")
        self.checksum = update(upto, record[CHECKSUM_AT:], self.order)
        self.offset += RECORD_SIZE
        self.records += 1
        self.payload(payload_length(kind, record, self.order))
        if kind == END:
            self.checksum = ZERO
        return kind

    def numbers(self, record: bytes, at: int) -> Checksum:
        a, b, c, d = struct.unpack_from(self.order + "4Q", record, at)
        return a, b, c, d

    def payload(self, length: int) -> None:
        while length:
            piece = self.read(min(length, PIECE))
            if not piece:
                raise self.damaged(f"ends {length} bytes before a payload's end: truncated")
            self.checksum = update(self.checksum, piece, self.order)
            self.offset += len(piece)
            length -= len(piece)


def payload_length(kind: int, record: bytes, order: str) -> int:
    """The bytes that follow a record, as its type says (zfs_ioctl.h's DRR_*_PAYLOAD_SIZE)."""

    def number(fmt: str, at: int) -> int:
        return int(struct.unpack_from(order + fmt, record, at)[0])

    if kind == BEGIN:
        return number("I", 4)  # drr_payloadlen: an nvlist
    if kind == OBJECT:  # drr_raw_bonuslen, else drr_bonuslen rounded up to 8
        return number("I", 36) or -(-number("I", 28) // 8) * 8
    if kind == WRITE:  # drr_compressed_size when drr_compressiontype, else drr_logical_size
        return number("Q", 96) if record[50] else number("Q", 32)
    if kind == SPILL:  # drr_compressed_size, else drr_length
        return number("Q", 40) or number("Q", 16)
    if kind == WRITE_EMBEDDED:  # drr_psize rounded up to 8
        return -(-number("I", 52) // 8) * 8
    return 0
