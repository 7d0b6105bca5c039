"""No stalled night: a data pipeline whose relaying stages (ssh, a compressor, pv) move no
data for a while is stopped, so make goes on with the other datasets. What arrived stays
(`zfs recv -s`): the next run resumes it.

Progress is read from /proc/PID/io (rchar + wchar: every byte a process reads or writes),
of the relaying stages and every process below them (an --ssh wrapper script's pv and ssh):
`zfs send` and `zfs recv` move their bytes inside the kernel, where the counters need not
follow them. A window must move STALL_FLOOR bytes to count as progress: ssh's keepalives
move a few hundred. Where /proc cannot show a process's children, nothing is watched: a
wrapper's data would be invisible, and a healthy stream must never be stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence

STALL_FLOOR = 64 * 1024
LONGEST_POLL = 5.0
GRACE = 10.0  # seconds between SIGTERM and SIGKILL

Clock = Callable[[], float]


def moved(pid: int) -> int | None:
    """Bytes the process has read and written so far, or None (gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as counters:
            fields = dict(line.split(":", 1) for line in counters if ":" in line)
        return int(fields["rchar"]) + int(fields["wchar"])
    except (OSError, KeyError, ValueError):
        return None


def family(pid: int) -> list[int]:
    """`pid` and its descendants, as /proc/PID/task/TID/children lists them."""
    found, waiting = [], [pid]
    while waiting:
        current = waiting.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as kids:
                    waiting.extend(int(kid) for kid in kids.read().split())
        except (OSError, ValueError):
            pass
    return found


def observable() -> bool:
    """Can this machine show a process's I/O and its children (Linux with /proc)?"""
    me = os.getpid()
    return moved(me) is not None and os.path.exists(f"/proc/{me}/task/{me}/children")


def relays(stages: Sequence[Sequence[str]]) -> list[int]:
    """The stages whose counters show the stream moving: all but zfs itself."""
    return [i for i, argv in enumerate(stages) if os.path.basename(argv[0]) != "zfs"]


class Watch:
    """Progress of a set of processes, window by window."""

    def __init__(self, procs: Sequence[subprocess.Popen[bytes]], clock: Clock) -> None:
        self.procs = procs
        self.clock = clock
        self.seen: dict[int, int] = {}
        self.since = 0  # bytes moved since the last progress
        self.last_progress = clock()

    def measure(self) -> float:
        """Take a reading; seconds since the last progress."""
        for pid in (member for proc in self.procs for member in family(proc.pid)):
            now = moved(pid)
            if now is None:
                continue
            self.since += max(0, now - self.seen.get(pid, now))
            self.seen[pid] = now
        if self.since >= STALL_FLOOR:
            self.since, self.last_progress = 0, self.clock()
        return self.clock() - self.last_progress


def wait_watching(
    procs: Sequence[subprocess.Popen[bytes]],
    watched: Sequence[subprocess.Popen[bytes]],
    stall_after: float | None,
    *,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait for every process of the pipeline. True when its `watched` stages moved less than
    STALL_FLOOR bytes in `stall_after` seconds, and it was stopped for that."""
    if stall_after is None or not watched or not observable():
        for proc in procs:
            proc.wait()
        return False
    watch = Watch(watched, clock)
    poll = min(LONGEST_POLL, max(0.05, stall_after / 10))
    while any(proc.poll() is None for proc in procs):
        if watch.measure() >= stall_after:
            stop(procs)
            return True
        sleep(poll)
    return False


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every stage and everything below it (ssh then closes its end: a remote
    `zfs recv -s` keeps the partial state), then SIGKILL what is left after GRACE seconds."""
    below = [pid for proc in procs for pid in family(proc.pid)[1:]]
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGCONT)  # a stopped stage acts on SIGTERM only once woken
    for pid in below:  # not reaped by us: a pid that is gone is no error
        for signum in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
    deadline = time.monotonic() + GRACE
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
