"""What a send costs, in zfs calls on each side and ssh sessions: a test that fails when
it grows. The real `zmake` runs against the shared fake zfs and ssh (support/night.py: every
dataset backed up at @s1, a new @s2 to send); bench/calls.py prints the same counts for
larger nights, and bench/README.md keeps them."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.unit.support.night import DEST, POOL, REMOTE, Calls, calls_in, environment

TARGET = ["--remote", REMOTE, "--dest", DEST]


def zmake(env: dict[str, str], log: Path, *args: str) -> Calls:
    log.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-m", "zmake", *args], env=env, cwd="/",
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return calls_in(log)


def test_one_incremental_send_asks_each_side_once(tmp_path: Path) -> None:
    env, log, datasets = environment(tmp_path, 2)
    calls = zmake(env, log, "send", *TARGET, datasets[1])
    # a read of each side, the stream, zmake's new bookmark and its old one's destroy
    assert calls.local == Counter(get=1, send=1, bookmark=1, destroy=1)
    assert calls.remote == Counter(list=1, recv=1)
    assert calls.ssh == 2


def test_a_batch_reads_each_side_once_for_all_of_its_datasets(tmp_path: Path) -> None:
    env, log, datasets = environment(tmp_path, 8)
    calls = zmake(env, log, "send", *TARGET, *datasets[1:])
    assert calls.local == Counter(get=1, send=8, bookmark=8, destroy=8)
    assert calls.remote == Counter(list=1, recv=8)
    assert calls.ssh == 1 + 8


def test_the_night_costs_a_read_of_each_side_per_batch_and_nothing_else(
    tmp_path: Path,
) -> None:
    """40 small siblings: 14 batches of at most 3 (core/batch.py), then their parent."""
    env, log, _ = environment(tmp_path, 40)
    calls = zmake(env, log, "backup", POOL, *TARGET, "-j", "4", "--yes")
    recipes, datasets = 14 + 1, 41
    assert calls.local == Counter(
        list=1, get=1 + recipes, send=datasets, bookmark=datasets, destroy=datasets
    )  # fmt: skip  (generate's list and get)
    assert calls.remote == Counter(list=recipes + 1, recv=datasets)  # and the unmount's list
    assert calls.ssh == recipes + 1 + datasets
    again = zmake(env, log, "backup", POOL, *TARGET, "-j", "4", "--yes")
    assert again == Calls(Counter(list=1, get=1), Counter(), 0)  # every stamp is there
