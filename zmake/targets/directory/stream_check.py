"""`zmake verify DIR --deep`: each stream file read whole and its records checked
(core/stream_records.py: a BEGIN first, an END last, every checksum the stream carries).

The file is read where it lies (`dd`, on the directory's side), decompressed here by its own
compressor — an OS pipeline, as a restore reads it — and the last stage of that pipeline is
this module run as a program (`python -I`): it reads the decompressor's output from its stdin a
record, or a MiB of payload, at a time; on stderr what is wrong and exit 1, else nothing and 0.
A read-only check: no byte that is sent or restored passes through Python."""

from __future__ import annotations

import sys

from zmake.core.errors import ParseError
from zmake.core.model import Argv
from zmake.core.stream_records import check_stream
from zmake.sides.runner import PipelineResult, Runner
from zmake.sides.side import Side
from zmake.sides.zfs_argv import COMPRESSORS

MODULE = "zmake.targets.directory.stream_check"
BROKEN_PIPE = (-13, 141)  # killed by SIGPIPE (here, or as ssh reports it): the check stopped


def check_stages(side: Side, path: str, compressor: str) -> list[Argv]:
    from zmake.sides.interpreter import module_argv

    reading: list[Argv] = [["dd", f"if={path}", "bs=1M", "status=none"]]
    decompress = [COMPRESSORS[compressor][1]] if compressor != "none" else []
    return [*side.stream(reading), *decompress, module_argv(MODULE)]


def stream_problem(runner: Runner, side: Side, path: str, compressor: str) -> str | None:
    """What is wrong with the stream in `path`; None: it reads whole."""
    result = runner.pipeline(check_stages(side, path, compressor))
    return None if result.ok else problem_of(result)


def problem_of(result: PipelineResult) -> str:
    """Every stage's complaint, the reading and decompressing ones first (a decompressor that
    fails leaves the check a cut stream); not a stage that only lost its reader."""
    said = []
    for stage in result.stages:
        if stage.returncode in (0, *BROKEN_PIPE):
            continue
        lines = stage.stderr.strip().splitlines()
        said.append(lines[-1] if lines else f"{stage.argv[0]} exited {stage.returncode}")
    return "; ".join(said) or "the stream check was cut short"


def main() -> int:
    try:
        check_stream(sys.stdin.buffer.read)
    except ParseError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
