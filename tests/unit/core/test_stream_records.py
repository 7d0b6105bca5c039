"""A stream read whole (core/stream_records.py), as `zmake verify --deep` reads each file: every
check fails on what it must catch — nothing, random bytes, text, a stream cut anywhere, a byte
flipped anywhere — and whole streams pass, plain and compound, in either byte order.

The streams are built record by record as OpenZFS writes them (support/stream_builder.py), not
by `zfs send`: the real-ZFS tier must still show real streams pass. OpenZFS's own `zstream dump`
(where installed) reads the built ones without a checksum complaint, and exits 0 on the rest."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess

import pytest

from tests.unit.support.stream_builder import (
    END,
    StreamBuilder,
    compound_stream,
    pattern,
    plain_stream,
)
from zmake.core.errors import ParseError
from zmake.core.stream_records import Summary, check_stream

PLAIN = plain_stream()
ZSTREAM = shutil.which("zstream", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def check(stream: bytes) -> Summary:
    return check_stream(io.BytesIO(stream).read)


def problem(stream: bytes) -> str:
    with pytest.raises(ParseError) as caught:
        check(stream)
    return str(caught.value)


@pytest.mark.parametrize("order", ["<", ">"])
def test_whole_streams_pass(order: str) -> None:
    assert check(plain_stream(order)) == Summary(7, len(plain_stream(order)), False)
    assert check(plain_stream(order, fromguid=7)).records == 7  # an incremental
    assert check(compound_stream(order)) == Summary(17, len(compound_stream(order)), True)
    assert check(compound_stream(order, substreams=0)).records == 3  # -I of nothing new


def test_a_payload_longer_than_a_read_passes() -> None:
    big = plain_stream(big=(3 << 20) + 12)  # read in MiB pieces
    assert check(big).length == len(big)


@pytest.mark.parametrize(
    "stream, why",
    [
        (b"", "empty, not a zfs send stream"),
        (os.urandom(64 * 1024), "not a zfs send stream (no BEGIN magic)"),
        (b"a text file, not a stream\n" * 50, "not a zfs send stream (no BEGIN magic)"),
        (b"\0" * 4096, "not a zfs send stream"),
        (b"short", "shorter than one record"),
        (PLAIN[312:], "no BEGIN magic"),  # the BEGIN lost
    ],
    ids=["empty", "random", "text", "zeros", "short", "headless"],
)
def test_what_is_not_a_stream_fails(stream: bytes, why: str) -> None:
    assert why in problem(stream)


@pytest.mark.parametrize("cut", [1, 311, 312, 313, 1000, 1104, len(PLAIN) - 312,
                                 len(PLAIN) - 100, len(PLAIN) - 1])  # fmt: skip
def test_a_stream_cut_anywhere_fails(cut: int) -> None:
    left = len(PLAIN) - cut
    assert ("truncated" if left >= 312 else "shorter than one record") in problem(PLAIN[:left])


def test_a_stream_cut_all_along_fails() -> None:
    for stream in (PLAIN, compound_stream()):
        for end in range(312, len(stream), 28):
            with pytest.raises(ParseError):
                check(stream[:end])


def test_a_byte_flipped_anywhere_fails() -> None:
    """Every byte of a plain stream is covered by a checksum the stream carries (a BEGIN by
    the next record's, each record and payload by the next, the END by its own): every 7th
    byte flipped, in either byte order."""
    for stream in (PLAIN, plain_stream(">")):
        for at in range(0, len(stream), 7):
            damaged = bytearray(stream)
            damaged[at] ^= 0x40
            with pytest.raises(ParseError):
                check(bytes(damaged))


def test_a_flipped_payload_byte_fails_at_the_next_checksum() -> None:
    damaged = bytearray(PLAIN)
    damaged[312 * 3 + 168 + 312 + 2000] ^= 1  # inside the first WRITE's 4096 bytes
    assert "WRITE record's checksum differs: damaged before it" in problem(bytes(damaged))
    last = bytearray(PLAIN)
    last[-312 - 312 - 10] ^= 1  # the last WRITE's payload: the FREE record's checksum says so
    assert "FREE record's checksum differs" in problem(bytes(last))


def test_an_end_carrying_another_checksum_fails() -> None:
    built = StreamBuilder().begin().write(1, 0, pattern(512, 1))
    built.checksum = (1, 2, 3, 4)  # the END says so, and its own record checksum agrees
    wrong = built.end().bytes()
    assert "the END record's checksum differs from the stream's" in problem(wrong)


def test_what_follows_the_end_fails() -> None:
    assert "more data after the stream's END record" in problem(PLAIN + b"\0")
    assert "more data after the stream's END record" in problem(PLAIN + PLAIN)


def test_records_out_of_place_fail() -> None:
    no_end = StreamBuilder().begin().freeobjects(0, 1).bytes()
    assert "ends before its END record: truncated" in problem(no_end)
    nested = StreamBuilder().begin().begin().end().bytes()
    assert "a BEGIN record inside a substream" in problem(nested)
    unknown = bytearray(PLAIN)
    unknown[312:316] = struct.pack("<I", 99)
    assert "record type 99 is none of OpenZFS's" in problem(bytes(unknown))
    cut_compound = compound_stream()[:-312]  # libzfs's last END lost
    assert "ends before its END record: truncated" in problem(cut_compound)
    stray = compound_stream(substreams=0)[:-312] + StreamBuilder().freeobjects(0, 1).bytes()
    assert "a FREEOBJECTS record outside any substream" in problem(stray + struct.pack(
        "<I", END).ljust(312, b"\0"))  # fmt: skip


@pytest.mark.skipif(ZSTREAM is None, reason="OpenZFS's zstream is not installed")
def test_zstream_dump_reads_the_built_streams_clean_and_passes_anything() -> None:
    """Why --deep no longer asks `zstream dump`: it exits 0 on nothing, random bytes, text and a
    damaged stream. Its checksums agree with the built streams' (native byte order: it does
    not turn a swapped record's checksum around before comparing)."""
    assert ZSTREAM is not None
    for stream in (PLAIN, compound_stream(), plain_stream(big=200_000)):
        dumped = subprocess.run([ZSTREAM, "dump"], input=stream, capture_output=True)
        assert dumped.returncode == 0 and b"checksum differs" not in dumped.stdout
        assert b"Incorrect checksum" not in dumped.stdout and not dumped.stderr.strip(b"\n")
    damaged = bytearray(PLAIN)
    damaged[2000] ^= 1
    for junk in (b"", os.urandom(5000), b"text\n" * 100, bytes(damaged)):
        assert subprocess.run([ZSTREAM, "dump"], input=junk, capture_output=True).returncode == 0
        with pytest.raises(ParseError):
            check(junk)
