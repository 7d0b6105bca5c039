"""The locks that keep two zmakes from doing one thing at once (flock: released when the
process ends, however it ends)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zmake.core.errors import LockBusy


@contextmanager
def dataset_lock(
    run_dir: Path, dataset: str, *, wait: bool, host: str | None = None
) -> Iterator[None]:
    """Two makes must never send one dataset at once: an flock per dataset of a source host
    (`host`; None: this machine), so a fleet's laptops that all have rpool/home never wait
    for each other."""
    locks = run_dir / "locks"
    locks.mkdir(mode=0o700, exist_ok=True)
    key = dataset if host is None else f"{host}\0{dataset}"
    path = locks / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise LockBusy(f"{dataset}: another zmake send holds its lock") from None
            print(f"{dataset}: waiting for another zmake send to finish", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(dataset)
        handle.flush()
        yield


OVERLAP = "backup-overlap"  # the last run refused because another was still going


@contextmanager
def backup_lock(run_dir: Path) -> Iterator[None]:
    """One `zmake backup` at a time per run directory. The holder writes its pid and start
    time; a run refused for it leaves a mark for `zmake check` (runs that overlap: nights
    that last too long)."""
    with open(run_dir / "backup.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            (run_dir / OVERLAP).write_text(f"{int(time.time())} {holder}\n")
            pid = holder.split()[0]
            raise LockBusy(f"another zmake backup is running (pid {pid})") from None
        handle.truncate(0)
        handle.write(f"{os.getpid()} {int(time.time())}")
        handle.flush()
        yield


def run_notes(run_dir: Path, now: float, warn: int, crit: int) -> list[str]:
    """What `zmake check` says of the runs themselves: a backup running longer than `warn`,
    a run refused within `crit` because the one before was still going."""
    from zmake.core.health import short_age

    notes = []
    pid, started = numbers(run_dir / "backup.lock")
    if pid and started and running_zmake(pid) and now - started >= warn:
        notes.append(f"a zmake backup has been running for {short_age(now - started)} "
                     f"(pid {pid})")  # fmt: skip
    refused, holder, holder_started = numbers(run_dir / OVERLAP, 3)
    if refused and now - refused < crit:
        since = f", started {short_age(now - holder_started)} ago" if holder_started else ""
        notes.append(f"a zmake backup {short_age(now - refused)} ago was refused: the one "
                     f"before (pid {holder}{since}) was still running")  # fmt: skip
    return notes


def numbers(path: Path, count: int = 2) -> list[int]:
    """The first `count` whole numbers of a small file (0 for each that is not there)."""
    try:
        words = path.read_text().split()
    except OSError:
        words = []
    values = [int(word) if word.isdigit() else 0 for word in words[:count]]
    return values + [0] * (count - len(values))


def running_zmake(pid: int) -> bool:
    try:
        return b"zmake" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
