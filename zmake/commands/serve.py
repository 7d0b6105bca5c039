"""`zmake serve`: the forced command of a restricted ssh key (`command="zmake serve …",restrict`).

It checks SSH_ORIGINAL_COMMAND with guard/pipeline.py and, only if every stage passes, runs it as a
pipeline of argvs — never through a shell. A receive starts only once the stream's own first
records pass guard/stream.py: serve reads them (the only bytes that pass through Python), then
hands them to `zfs recv` and `cat` copies the rest. A refusal is one line on stderr, one syslog
(auth) entry naming the key's user, origin and command, and exit 9; nothing is received."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from zmake.core.errors import ParseError
from zmake.core.model import Argv
from zmake.guard.pipeline import CONTROL, REFUSED, Policy, Probe, Refusal, check, parse
from zmake.guard.stream import Expected, check_head, expected
from zmake.sides.runner import Runner
from zmake.sides.stderr_errors import SERVE_REFUSAL


def log_refusal(command: str, why: str) -> None:
    import syslog

    who = os.environ.get("USER", "?")
    origin = os.environ.get("SSH_CONNECTION", "?").split(" ")[0]
    syslog.openlog("zmake-serve", syslog.LOG_PID, syslog.LOG_AUTH)
    syslog.syslog(syslog.LOG_WARNING, f"refused for {who} from {origin}: {why}: {command!r}")


def zfs_reader(argv: Argv) -> str:
    """Fails closed: a question zfs does not answer is a refusal, never an empty answer."""
    import subprocess

    from zmake.sides.runner import ENV

    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    except OSError as exc:
        raise Refusal(f"cannot ask zfs ({exc.strerror})") from None
    if done.returncode != 0 or not done.stdout.strip():
        said = (done.stderr.strip().splitlines() or ["no answer"])[0]
        raise Refusal(f"zfs did not answer {argv[1]} of {argv[-1]}: {said}")
    return done.stdout


def run_stages(stages: Sequence[Argv]) -> int:
    """The stages as a pipeline: our stdin into the first, the last's stdout ours; the first
    failing stage's exit status (pipefail). No byte passes through Python."""
    import subprocess

    from zmake.sides.runner import ENV

    procs: list[subprocess.Popen[bytes]] = []
    previous = None
    for index, argv in enumerate(stages):
        last = index == len(stages) - 1
        proc = subprocess.Popen(argv, stdin=previous, stdout=None if last else subprocess.PIPE,
                                env=ENV)  # fmt: skip
        if previous is not None:
            previous.close()
        previous = proc.stdout
        procs.append(proc)
    codes = [proc.wait() for proc in procs]
    return next((code for code in codes if code != 0), 0)


def read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(stages: Sequence[Argv], want: Expected) -> int:
    """[decompress |] (head checked here) | zfs recv, the rest of the stream copied by cat."""
    import subprocess

    from zmake.core.stream_header import read_head
    from zmake.sides.runner import ENV

    procs: list[subprocess.Popen[bytes]] = []
    source = 0
    if len(stages) == 2:
        procs.append(subprocess.Popen(stages[0], stdout=subprocess.PIPE, env=ENV))
        assert procs[0].stdout is not None
        source = procs[0].stdout.fileno()
    try:
        head, head_bytes = read_head(lambda size: read_exactly(source, size))
        check_head(want, head)
    except (ParseError, Refusal) as exc:
        for proc in procs:
            proc.kill()
            proc.wait()
        raise Refusal(f"the stream: {exc}") from None
    readable, writable = os.pipe()
    receiver = subprocess.Popen(stages[-1], stdin=readable, env=ENV)
    os.close(readable)
    try:
        write_all(writable, head_bytes)
        procs.append(subprocess.Popen(["cat"], stdin=source, stdout=writable, env=ENV))
    except BrokenPipeError:
        pass  # the receive ended before its stream began: its own status says why
    finally:
        os.close(writable)
    if procs and procs[0].stdout is not None:
        procs[0].stdout.close()  # the decompressor's output is cat's now
    codes = [proc.wait() for proc in [receiver, *procs]]  # zfs recv's own failure first
    return next((code for code in codes if code != 0), 0)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve(policy: Policy, command: str | None = None) -> int:
    command = os.environ.get("SSH_ORIGINAL_COMMAND", "") if command is None else command
    try:
        stages = check(policy, parse(command), Probe(zfs_reader))
        want = expected(stages)
        if want is not None:
            return receive(stages, want)
    except Exception as exc:  # fail closed: a command serve cannot check is refused
        why = str(exc) if isinstance(exc, Refusal) else f"cannot be checked ({exc!r})"
        why = CONTROL.sub(lambda found: f"\\x{ord(found[0]):02x}", why)  # names may hold any
        log_refusal(command, why)
        print(f"{SERVE_REFUSAL}{why}", file=sys.stderr)
        return REFUSED
    return run_stages(stages)


def run(args: argparse.Namespace, runner: Runner) -> int:
    from zmake.guard.pipeline import Policy

    role, root = ("receive", args.receive_into) if args.receive_into else ("send", args.send_from)
    policy = Policy(role, root.strip("/"), allow_prune=args.allow_prune,
                    allow_rollback=args.allow_rollback,
                    mountpoint_prefix=args.mountpoint_prefix, target=args.target)  # fmt: skip
    return serve(policy)
