"""`zfs send` streams' first records, built as OpenZFS lays them out (dmu_replay_record_t),
for the unit tests of what serve lets a restricted key's stream be."""

from __future__ import annotations

import struct

from zmake.core.stream_header import BACKUP_MAGIC, Begin, read_head

FILESYSTEM, VOLUME = 2, 3  # DMU_OST_ZFS, DMU_OST_ZVOL


def begin(hdrtype: int = 1, objset: int = FILESYSTEM, fromguid: int = 0, flags: int = 0,
          payloadlen: int = 0, order: str = "<") -> bytes:  # fmt: skip
    head = struct.pack(order + "IIQQQIIQQ", 0, payloadlen, BACKUP_MAGIC, hdrtype | 4 << 2, 0,
                       objset, flags, 42, fromguid)  # fmt: skip
    return head + b"tank/a@zmake-1".ljust(256, b"\0")


def end() -> bytes:
    return struct.pack("<I", 5).ljust(312, b"\0")  # DRR_END


def compound(sub: bytes, payload: bytes = b"") -> bytes:
    """A package: `send -I` has no header payload; -R/-p/-b/-h have an nvlist."""
    return begin(2, payloadlen=len(payload)) + payload + end() + sub


def head_of(stream: bytes) -> tuple[Begin, bytes]:
    at = [0]

    def read(size: int) -> bytes:
        chunk = stream[at[0] : at[0] + size]
        at[0] += len(chunk)
        return chunk

    return read_head(read)


NVLIST = bytes([1, 1, 0, 0]) + b"\0" * 60  # an XDR nvlist's header: its content does not matter
