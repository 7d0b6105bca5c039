"""The locks that keep two zmakes from doing one thing at once (flock: released when the
process ends, however it ends)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
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


@contextmanager
def backup_lock(run_dir: Path) -> Iterator[None]:
    """One `zmake backup` at a time per run directory."""
    with open(run_dir / "backup.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise LockBusy(f"another zmake backup is running (pid {holder})") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield
