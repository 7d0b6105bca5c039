"""`zmake serve`: the forced command of a restricted ssh key (`command="zmake serve …",restrict`).

It checks SSH_ORIGINAL_COMMAND with guard.py and, only if every stage passes, runs it as a
pipeline of argvs — never through a shell. A refusal is one line on stderr, one syslog (auth)
entry naming the key's user, origin and command, and exit 9; nothing runs."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from zmake.commands import Argv
from zmake.guard import REFUSED, Policy, Probe, Refusal, check, parse


def log_refusal(command: str, why: str) -> None:
    import syslog

    who = os.environ.get("USER", "?")
    origin = os.environ.get("SSH_CONNECTION", "?").split(" ")[0]
    syslog.openlog("zmake-serve", syslog.LOG_PID, syslog.LOG_AUTH)
    syslog.syslog(syslog.LOG_WARNING, f"refused for {who} from {origin}: {why}: {command!r}")


def zfs_reader(argv: Argv) -> str:
    import subprocess

    from zmake.runner import ENV

    done = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    return done.stdout if done.returncode == 0 else ""


def run(stages: Sequence[Argv]) -> int:
    """The stages as a pipeline: our stdin into the first, the last's stdout ours; the first
    failing stage's exit status (pipefail). No byte passes through Python."""
    import subprocess

    from zmake.runner import ENV

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


def serve(policy: Policy, command: str | None = None) -> int:
    command = os.environ.get("SSH_ORIGINAL_COMMAND", "") if command is None else command
    try:
        stages = check(policy, parse(command), Probe(zfs_reader))
    except Exception as exc:  # fail closed: a command serve cannot check is refused
        why = str(exc) if isinstance(exc, Refusal) else f"cannot be checked ({exc!r})"
        log_refusal(command, why)
        print(f"zmake serve: refused: {why}", file=sys.stderr)
        return REFUSED
    return run(stages)
