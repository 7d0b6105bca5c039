"""The one module that starts processes.

Control commands (zfs list/get/snapshot/destroy, ssh queries) run to completion and come
back as text. They use subprocess, not the `sh` library: importing `sh` (it pulls in asyncio)
tripled zmake's start-up, which make pays once per dataset.

The data path is an OS pipeline: every stage's stdout is the next stage's stdin, so no stream
byte passes through Python; a failure of any stage fails the whole (pipefail)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO

from zmake.errors import ZfsUnavailable

Argv = list[str]
ENV = {**os.environ, "LC_ALL": "C"}


@dataclass(frozen=True)
class Result:
    argv: Argv
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class PipelineResult:
    stages: list[Result]

    @property
    def ok(self) -> bool:
        return all(stage.returncode == 0 for stage in self.stages)


class Runner:
    def __init__(self, *, verbose: bool = False) -> None:
        self.verbose = verbose

    def trace(self, text: str) -> None:
        if self.verbose:
            print(f"+ {text}", file=sys.stderr, flush=True)

    def run(self, argv: Argv) -> Result:
        """Run a control command to completion; never raises for a non-zero exit.

        Its output goes to files, not pipes: an ssh control command may leave a slot's master
        behind (ControlMaster=auto), and we must not wait for an EOF that process withholds."""
        self.trace(" ".join(argv))
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                code = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=ENV, check=False
                ).returncode
            except FileNotFoundError:
                if argv[0] == "zfs":
                    raise ZfsUnavailable("zfs: command not found (is OpenZFS installed?)") from None
                raise ZfsUnavailable(f"{argv[0]}: command not found") from None
            return Result(argv, code, read_back(out), read_back(err))

    def interactive(self, argv: Argv, env: dict[str, str]) -> int:
        """A long command (make) whose output goes straight to our stdout/stderr."""
        self.trace(" ".join(argv))
        try:
            return subprocess.run(argv, env=env, check=False).returncode
        except FileNotFoundError:
            raise ZfsUnavailable(f"{argv[0]}: command not found") from None

    def pipeline(self, stages: Sequence[Argv], *, passthrough: int | None = None) -> PipelineResult:
        """Run stages connected by pipes; stage `passthrough` (pv) keeps the terminal."""
        with ExitStack() as stack:
            logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in stages]
            return self.run_stages(stages, logs, passthrough)

    def run_stages(
        self, stages: Sequence[Argv], logs: Sequence[IO[bytes]], passthrough: int | None
    ) -> PipelineResult:
        self.trace(" | ".join(" ".join(stage) for stage in stages))
        procs: list[subprocess.Popen[bytes]] = []
        previous: IO[bytes] | None = None
        try:
            for index, argv in enumerate(stages):
                last = index == len(stages) - 1
                proc = subprocess.Popen(
                    argv,
                    stdin=previous if previous is not None else subprocess.DEVNULL,
                    stdout=None if last else subprocess.PIPE,
                    stderr=None if index == passthrough else logs[index],
                    env=ENV,
                )
                if previous is not None:
                    previous.close()  # the child holds it now; EOF/SIGPIPE must propagate
                previous = proc.stdout
                procs.append(proc)
        except FileNotFoundError as exc:
            for proc in procs:
                proc.kill()
                proc.wait()
            raise ZfsUnavailable(f"{exc.filename}: command not found") from None
        results = []
        for argv, proc, log in zip(stages, procs, logs, strict=True):
            code = proc.wait()
            results.append(Result(argv, code, "", read_back(log)))
        return PipelineResult(results)


def read_back(file: IO[bytes]) -> str:
    file.seek(0)
    return decode(file.read())


def decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")
