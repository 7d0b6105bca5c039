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
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from zmake.core.errors import ZfsUnavailable

TYPE_CHECKING = False  # `typing` itself is not imported: every send would pay for it
if TYPE_CHECKING:
    from typing import IO

Argv = list[str]
# zfs lives in sbin, which a non-root PATH often lacks (Debian): look there too, last.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
ENV = {
    **os.environ,
    "LC_ALL": "C",
    "PATH": os.pathsep.join(
        dict.fromkeys([*os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep), *SBIN])
    ),
}


@dataclass(frozen=True)
class Result:
    argv: Argv
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class PipelineResult:
    stages: list[Result]
    stalled: bool = False  # stopped by the watchdog: no data moved for too long

    @property
    def ok(self) -> bool:
        return not self.stalled and all(stage.returncode == 0 for stage in self.stages)


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
        return self.run_all([argv])[0]

    def run_all(self, argvs: Sequence[Argv]) -> list[Result]:
        """Run control commands side by side, each to completion (as run())."""
        with ExitStack() as stack:
            started = []
            for argv in argvs:
                self.trace(" ".join(argv))
                out = stack.enter_context(scratch_file())
                err = stack.enter_context(scratch_file())
                try:
                    started.append((argv, start_control(argv, out, err), out, err))
                except ZfsUnavailable:
                    for _, proc, _, _ in started:
                        proc.wait()
                    raise
            return [
                Result(argv, proc.wait(), read_back(out), read_back(err))
                for argv, proc, out, err in started
            ]

    def interactive(self, argv: Argv, env: dict[str, str]) -> int:
        """A long command (make) whose output goes straight to our stdout/stderr."""
        self.trace(" ".join(argv))
        try:
            return subprocess.run(argv, env=env, check=False).returncode
        except FileNotFoundError:
            raise ZfsUnavailable(f"{argv[0]}: command not found") from None

    def pipeline(
        self,
        stages: Sequence[Argv],
        *,
        passthrough: int | None = None,
        stall_after: float | None = None,
    ) -> PipelineResult:
        """Run stages connected by pipes; stage `passthrough` (pv) keeps the terminal. With
        `stall_after`, stopped when no data moved for that long (sides/watchdog.py)."""
        with ExitStack() as stack:
            logs = [stack.enter_context(scratch_file()) for _ in stages]
            return self.run_stages(stages, logs, passthrough, stall_after)

    def run_stages(
        self,
        stages: Sequence[Argv],
        logs: Sequence[IO[bytes]],
        passthrough: int | None,
        stall_after: float | None = None,
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
        stalled = False
        if stall_after is not None:
            from zmake.sides import watchdog

            watched = [procs[i] for i in watchdog.relays(stages)]
            stalled = watchdog.wait_watching(procs, watched, stall_after)
        results = []
        for argv, proc, log in zip(stages, procs, logs, strict=True):
            code = proc.wait()
            results.append(Result(argv, code, "", read_back(log)))
        return PipelineResult(results, stalled)


def start_control(argv: Argv, out: IO[bytes], err: IO[bytes]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=ENV)
    except FileNotFoundError:
        if argv[0] == "zfs":
            raise ZfsUnavailable("zfs: command not found (is OpenZFS installed?)") from None
        raise ZfsUnavailable(f"{argv[0]}: command not found") from None


def scratch_file() -> IO[bytes]:
    """An anonymous file for a command's output. A memfd where there is one: nothing on disk,
    and no `tempfile` import (with shutil and random behind it), which every send would pay."""
    try:
        return open(os.memfd_create("zmake-output"), "w+b")
    except (AttributeError, OSError):
        import tempfile

        return tempfile.TemporaryFile()


def read_back(file: IO[bytes]) -> str:
    file.seek(0)
    return decode(file.read())


def decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")
