"""Whole `zfs send` streams, built as OpenZFS writes them (dmu_send.c's dump_record, zfs_ioctl.h's
dmu_replay_record_t): records of 312 bytes, each but a BEGIN ending with the fletcher-4 of its
substream up to that field, payloads after their records, an END carrying the checksum of its
substream before it. The checksum here is the plain word-by-word definition (zfs_fletcher.c's
scalar code), not zmake's. Not a real `zfs send` stream: the real-ZFS tier is the proof that
zmake reads those; OpenZFS's own `zstream dump` reads these without complaint (a test says so)."""

from __future__ import annotations

import struct

from zmake.core.stream_header import BACKUP_MAGIC

BEGIN, OBJECT, FREEOBJECTS, WRITE, FREE, END = 0, 1, 2, 3, 4, 5
FEATURES = 1 << 22 | 1 << 16 | 1 << 17  # COMPRESSED, EMBED_DATA, LZ4: as `send -L -c` sets
MASK = 2**64 - 1
NVLIST = bytes([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]) + bytes(8)  # XDR: an empty nvlist


def fletcher(state: tuple[int, ...], data: bytes, order: str) -> tuple[int, int, int, int]:
    a, b, c, d = state
    for (word,) in struct.iter_unpack(order + "I", data[: len(data) // 4 * 4]):
        a = (a + word) & MASK
        b = (b + a) & MASK
        c = (c + b) & MASK
        d = (d + c) & MASK
    return a, b, c, d


def pattern(size: int, seed: int) -> bytes:
    """Deterministic bytes that are not all alike."""
    block = bytes((i * 7 + seed * 13 + (i >> 8)) & 0xFF for i in range(min(size, 65521)))
    return (block * (size // len(block) + 1))[:size] if size else b""


class StreamBuilder:
    def __init__(self, order: str = "<", toguid: int = 0x1234_5678_9ABC_DEF0) -> None:
        self.order, self.toguid = order, toguid
        self.parts: list[bytes] = []
        self.checksum = (0, 0, 0, 0)

    def record(self, kind: int, body: bytes, payload: bytes = b"", *, payloadlen: int = 0,
               filled: bool = True) -> StreamBuilder:  # fmt: skip
        """`filled`: the kernel's records carry their checksum; libzfs's own ENDs do not."""
        head = struct.pack(self.order + "II", kind, payloadlen) + body.ljust(304, b"\0")
        upto = fletcher(self.checksum, head[:280], self.order)
        if kind != BEGIN and filled:
            head = head[:280] + struct.pack(self.order + "4Q", *upto)
        self.checksum = fletcher(fletcher(upto, head[280:], self.order), payload, self.order)
        self.parts += [head, payload]
        return self

    def begin(self, fromguid: int = 0, *, hdrtype: int = 1, nvlist: bytes = b"") -> StreamBuilder:
        body = struct.pack(self.order + "QQQIIQQ", BACKUP_MAGIC, hdrtype | FEATURES << 2,
                           1_700_000_000, 2, 4, self.toguid, fromguid)  # fmt: skip
        return self.record(BEGIN, body + b"tank/home@zmake-1", nvlist, payloadlen=len(nvlist))

    def end(self, *, filled: bool = True) -> StreamBuilder:
        body = struct.pack(self.order + "4QQ", *self.checksum, self.toguid)
        self.record(END, body, filled=filled)
        self.checksum = (0, 0, 0, 0)
        return self

    def freeobjects(self, first: int, count: int) -> StreamBuilder:
        return self.record(FREEOBJECTS, struct.pack(self.order + "QQQ", first, count, self.toguid))

    def object(self, number: int, bonus: bytes) -> StreamBuilder:
        body = struct.pack(self.order + "QIIIIBBBBIQ", number, 19, 44, 131072, len(bonus),
                           7, 2, 1, 0, 0, self.toguid)  # fmt: skip
        return self.record(OBJECT, body, bonus.ljust(-(-len(bonus) // 8) * 8, b"\0"))

    def write(self, number: int, offset: int, data: bytes) -> StreamBuilder:
        body = struct.pack(self.order + "QIIQQQBBB5x40xQ", number, 19, 0, offset, len(data),
                           self.toguid, 7, 0, 0, 0)  # fmt: skip
        return self.record(WRITE, body, data)

    def free(self, number: int, offset: int, length: int) -> StreamBuilder:
        body = struct.pack(self.order + "QQQQ", number, offset, length, self.toguid)
        return self.record(FREE, body)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def plain_stream(order: str = "<", fromguid: int = 0, big: int = 0) -> bytes:
    """A full (or -i) stream: BEGIN, FREEOBJECTS, OBJECT, WRITEs, FREE, END. `big`: the bytes
    of one more WRITE (a payload read in several pieces)."""
    return substream(StreamBuilder(order), fromguid, big).bytes()


def substream(built: StreamBuilder, fromguid: int = 0, big: int = 0) -> StreamBuilder:
    built.begin(fromguid).freeobjects(0, 2).object(2, pattern(165, 1))
    built.write(2, 0, pattern(4096, 2)).write(2, 4096, pattern(1000, 5))
    if big:
        built.write(3, 0, pattern(big, 3))
    return built.free(2, 8192, 2**64 - 1).end()


def compound_stream(order: str = "<", substreams: int = 2) -> bytes:
    """As `send -I`: a header BEGIN (an nvlist payload) and its END (libzfs's, no record
    checksum), substreams, and libzfs's last END (all zero)."""
    built = StreamBuilder(order).begin(hdrtype=2, nvlist=NVLIST).end(filled=False)
    for index in range(substreams):
        substream(built, fromguid=index)
    built.parts.append(struct.pack(order + "I", END).ljust(312, b"\0"))
    return built.bytes()
