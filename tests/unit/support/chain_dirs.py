"""A directory target's chain laid out on disk as `zmake send --to-dir` leaves it: stream files
stored by their compressors (the real programs), a manifest with their sizes and SHA-256;
and a runner that records what a directory target asks of it."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

from zmake.core.chain import (
    MANIFEST,
    Chain,
    StreamFile,
    chain_folder,
    file_name,
    manifest_text,
)
from zmake.sides.runner import PipelineResult, Result, Runner
from zmake.sides.zfs_argv import COMPRESSORS
from zmake.targets.directory.send import chain_path

DATASET = "tank/home"
GUID = 0x1000


def stored(stream: bytes, compressor: str) -> bytes:
    if compressor == "none":
        return stream
    return subprocess.run(COMPRESSORS[compressor][0], input=stream, capture_output=True,
                          check=True).stdout  # fmt: skip


def chain_on_disk(
    root: Path,
    streams: Sequence[tuple[bytes, str]],
    *,
    recorded: bool = True,
    names: Sequence[str] | None = None,
    as_is: Sequence[int] = (),
) -> Chain:
    """`streams`: (the stream, its compressor) per file; `recorded`: the manifest says each
    file's compressor (as zmake writes it now), else only the chain's (as it wrote before).
    `names`: the files' names, if not as the compressor names them; `as_is`: the files
    (indexes) stored as given, not compressed."""
    files = []
    contents = []
    for index, (stream, compressor) in enumerate(streams):
        data = stream if index in as_is else stored(stream, compressor)
        name = names[index] if names else file_name(index, GUID + index, compressor)
        files.append(StreamFile(name, None if index == 0 else GUID + index - 1,
                                ((f"zmake-{index}", GUID + index, index + 1),), len(data),
                                hashlib.sha256(data).hexdigest(),
                                compressor if recorded else None))  # fmt: skip
        contents.append(data)
    chain = Chain(DATASET, chain_folder(0, GUID), False, streams[0][1], tuple(files))
    folder = Path(chain_path(str(root), chain))
    folder.mkdir(parents=True)
    for f, data in zip(files, contents, strict=True):
        (folder / f.name).write_bytes(data)
    (folder / MANIFEST).write_text(manifest_text(chain), encoding="utf-8")
    return chain


class RecordingRunner(Runner):
    """Control commands run for real unless `answers` (argv[0] → stdout) has them; every
    pipeline is recorded and succeeds without running."""

    def __init__(self, answers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.answers = answers or {}
        self.calls: list[tuple[str, list[list[str]]]] = []

    def run_all(self, argvs: Sequence[list[str]]) -> list[Result]:
        found = []
        for argv in argvs:
            self.calls.append(("run", [argv]))
            if argv[0] in self.answers:
                found.append(Result(argv, 0, self.answers[argv[0]], ""))
            else:
                found += super().run_all([argv])
        return found

    def pipeline(
        self, stages: Sequence[list[str]], **options: float | int | None
    ) -> PipelineResult:
        self.calls.append(("pipeline", list(stages)))
        return PipelineResult([Result(stage, 0, "", "") for stage in stages])
