"""`zmake verify DIR --deep` (targets/directory/stream_check.py) reads each stream file whole,
through its own decompressor and a real OS pipeline, and fails on what is not a whole stream —
nothing, random bytes, text, a cut stream, a flipped byte — which plain verify, whose SHA-256
matches the manifest, and `zstream dump`, which exits 0, both let pass.

The streams are built record by record (support/stream_builder.py), not by `zfs send`: that
a real stream passes is for the real-ZFS tier (tests/realzfs/test_files.py) to show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.support.chain_dirs import chain_on_disk
from tests.unit.support.stream_builder import compound_stream, plain_stream
from zmake.sides.runner import PipelineResult, Result, Runner
from zmake.sides.side import Side
from zmake.targets.directory.stream_check import check_stages, problem_of
from zmake.targets.directory.verify import verify

WHOLE = plain_stream()
FLIPPED = bytearray(WHOLE)
FLIPPED[312 * 3 + 168 + 312 + 100] ^= 0x01  # a byte of the first WRITE's payload
NOT_WHOLE = {
    "empty": (b"", "stream: empty, not a zfs send stream"),
    "random": (os.urandom(100_000), "not a zfs send stream (no BEGIN magic)"),
    "text": (b"#!/bin/sh\necho not a stream\n" * 40, "not a zfs send stream (no BEGIN magic)"),
    "truncated": (WHOLE[:-400], "truncated"),
    "flipped": (bytes(FLIPPED), "WRITE record's checksum differs: damaged before it"),
}


def verified(root: Path, capsys: pytest.CaptureFixture[str], *, deep: bool) -> tuple[int, str]:
    code = verify(Runner(), Side(), str(root), deep=deep, repair=False, as_json=False)
    return code, capsys.readouterr().out


def test_whole_streams_pass_each_through_its_own_decompressor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    streams = [(WHOLE, "none"), (compound_stream(), "zstd"), (plain_stream(">"), "gzip"),
               (compound_stream(">"), "bzip2"), (plain_stream(big=1_500_000), "lz4")]  # fmt: skip
    chain_on_disk(tmp_path, streams)
    code, out = verified(tmp_path, capsys, deep=True)
    assert (code, out.split(" ")[0]) == (0, "OK"), out
    assert "5 files" in out


@pytest.mark.parametrize("kind", NOT_WHOLE)
@pytest.mark.parametrize("compressor", ["zstd", "none"])
def test_what_is_not_a_whole_stream_fails_deep_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, compressor: str
) -> None:
    bad, why = NOT_WHOLE[kind]
    chain = chain_on_disk(tmp_path, [(WHOLE, compressor), (bad, compressor)])
    assert verified(tmp_path, capsys, deep=False)[0] == 0  # its SHA-256 is the manifest's
    code, out = verified(tmp_path, capsys, deep=True)
    assert code == 1 and out.startswith("BAD "), out
    assert f"{chain.files[1].name}: " in out and why in out, out
    assert chain.files[0].name not in out  # the whole one is not blamed


def test_a_file_its_decompressor_cannot_read_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = chain_on_disk(tmp_path, [(WHOLE, "zstd"), (b"not zstd", "zstd")], as_is=[1])
    code, out = verified(tmp_path, capsys, deep=True)
    assert code == 1 and f"{chain.files[1].name}: zstd: " in out, out


def test_the_check_is_the_last_stage_of_an_os_pipeline() -> None:
    stages = check_stages(Side("backup"), "/d/0000-a.zfs.zst", "zstd")
    assert stages[0][0] == "ssh" and stages[0][-1] == "dd if=/d/0000-a.zfs.zst bs=1M status=none"
    assert stages[1] == ["zstd", "-q", "-d", "-c"]  # here: the compressed bytes cross the network
    assert stages[2][:2] == [stages[2][0], "-I"] and "stream_check" in " ".join(stages[2])
    assert check_stages(Side(), "/d/x.zfs", "none")[0] == ["dd", "if=/d/x.zfs", "bs=1M",
                                                          "status=none"]  # fmt: skip


def test_a_stage_that_only_lost_its_reader_is_not_blamed() -> None:
    empty = "stream: empty, not a zfs send stream"
    result = PipelineResult([Result(["dd"], -13, "", ""), Result(["zstd"], 141, "", "x"),
                             Result(["python"], 1, "", f"{empty}\n")])  # fmt: skip
    assert problem_of(result) == empty
    broken = PipelineResult([Result(["dd"], 0, "", ""), Result(["zstd"], 1, "", "zstd: bad\n"),
                             Result(["python"], 1, "", "stream: byte 9: truncated\n")])  # fmt: skip
    assert problem_of(broken) == "zstd: bad; stream: byte 9: truncated"
