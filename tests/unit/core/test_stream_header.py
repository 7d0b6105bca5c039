"""The stream's first record decides what a restricted key's receive may take
(core/stream_header.py, guard/stream.py): each rule refuses what it must catch; a stream as zmake
sends it through a restricted key (full or `-i`) passes. Records are built as OpenZFS lays them
out (dmu_replay_record_t); the real-ZFS tier feeds real `zfs send` streams through serve."""

from __future__ import annotations

import re
import struct

import pytest

from tests.unit.support.streams import FILESYSTEM, NVLIST, VOLUME, begin, compound, end, head_of
from zmake.core.errors import ParseError
from zmake.core.stream_header import BACKUP_MAGIC, FLAG_CLONE, RECORD_SIZE
from zmake.guard.probe import Refusal
from zmake.guard.stream import PACKAGE_REFUSED, Expected, check_head, expected

FS, FS_FORCED, VOL = (
    Expected("filesystem", False),
    Expected("filesystem", True),
    Expected("volume", False),
)


@pytest.mark.parametrize("order", ["<", ">"])
def test_zmakes_own_streams_pass(order: str) -> None:
    check_head(FS, head_of(begin(order=order))[0])  # full, either byte order
    check_head(FS_FORCED, head_of(begin(order=order))[0])  # a full one over a placeholder
    check_head(FS, head_of(begin(fromguid=7, order=order))[0])  # -i
    check_head(VOL, head_of(begin(objset=VOLUME, order=order))[0])
    first, raw = head_of(begin(fromguid=7, order=order) + b"data")
    assert raw == begin(fromguid=7, order=order) and len(raw) == RECORD_SIZE  # only the first
    assert (first.fromguid, first.toguid, first.toname) == (7, 42, "tank/a@zmake-1")


@pytest.mark.parametrize(
    "want, stream, why",
    [
        (VOL, begin(objset=FILESYSTEM), "filesystem stream into a receive for a volume"),
        (FS, begin(objset=VOLUME), "volume stream"),
        (FS, begin(objset=9), "unknown stream"),
        (FS, begin(flags=FLAG_CLONE), "clone"),
        (FS, compound(begin(fromguid=7)), PACKAGE_REFUSED),  # send -I
        (FS, compound(begin(), NVLIST), PACKAGE_REFUSED),  # send -p, -R
        (FS_FORCED, compound(begin(), NVLIST), PACKAGE_REFUSED),
        (FS_FORCED, begin(fromguid=7), "-F takes only a full stream"),
    ],
)
def test_what_a_stream_must_not_be_is_refused(want: Expected, stream: bytes, why: str) -> None:
    with pytest.raises(Refusal, match=re.escape(why)):
        check_head(want, head_of(stream)[0])


@pytest.mark.parametrize("stream", [b"", b"random bytes" * 40, begin()[:100],
                                    begin().replace(struct.pack("<Q", BACKUP_MAGIC), b"\0" * 8),
                                    end() + begin()])  # fmt: skip
def test_what_is_not_a_stream_is_refused(stream: bytes) -> None:
    with pytest.raises(ParseError):
        head_of(stream)


def test_the_receives_shape_says_what_to_expect() -> None:
    from zmake.sides import zfs_argv

    assert expected([zfs_argv.receive_argv("b/a")]) == FS
    assert expected([["zstd", "-d"], zfs_argv.receive_argv("b/a", force=True)]) == FS_FORCED
    assert expected([zfs_argv.receive_argv("b/v", filesystem=False)]) == VOL
    assert expected([zfs_argv.unmount_argv("b/a")]) is None
    assert expected([zfs_argv.abort_resume_argv("b/a")]) is None
