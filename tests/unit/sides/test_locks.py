"""The dataset locks: one per dataset of a source host, so two makes never send one dataset
at once, and a fleet's sources that share a dataset name never wait for each other."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.support.fake_zfs import BACKUP_ROW, REPO, answer, fake_zfs, zmake
from zmake.core.errors import LockBusy
from zmake.core.health import WARNING, verdict
from zmake.sides.locks import OVERLAP, dataset_lock, run_notes


def test_one_dataset_of_one_host_is_sent_by_one_zmake(tmp_path: Path) -> None:
    busy = "rpool/home: another zmake send holds its lock"
    with (
        dataset_lock(tmp_path, "rpool/home", wait=False, host="zsend@laptop"),
        pytest.raises(LockBusy, match=busy),
        dataset_lock(tmp_path, "rpool/home", wait=False, host="zsend@laptop"),
    ):
        pass
    with (  # this machine's: as before, by the name alone
        pytest.raises(LockBusy),
        dataset_lock(tmp_path, "rpool/home", wait=False),
        dataset_lock(tmp_path, "rpool/home", wait=False),
    ):
        pass


def test_two_hosts_datasets_of_one_name_do_not_wait_for_each_other(tmp_path: Path) -> None:
    with (
        dataset_lock(tmp_path, "rpool/home", wait=False, host="zsend@laptop"),
        dataset_lock(tmp_path, "rpool/home", wait=False, host="zsend@desktop"),
        dataset_lock(tmp_path, "rpool/home", wait=False),
    ):
        pass


HOLDER = """
import sys, time
from pathlib import Path
from zmake.sides.locks import backup_lock
with backup_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def holding(run_dir: Path) -> subprocess.Popen[str]:
    """A zmake process that holds the backup lock of `run_dir`."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_run_refused_for_an_overlap_is_reported_by_check(tmp_path: Path) -> None:
    env, _ = fake_zfs(tmp_path)
    answer(tmp_path, "datasets.txt", BACKUP_ROW.format(name="backup", referenced=0, token="-",
                                                       mark="-"))  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    check = ["check", "tank", "--dest", "backup/laptop"]
    before = zmake(check, env, cwd=tmp_path)
    assert "was refused" not in before.stdout, before.stdout  # the control
    holder = holding(run_dir)
    try:
        refused = zmake(["backup", "tank", "--dest", "backup/laptop"], env, cwd=tmp_path)
        assert refused.returncode == 10, refused.stderr
        assert f"another zmake backup is running (pid {holder.pid})" in refused.stderr
        after = zmake(check, env, cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert after.returncode >= 1, after.stdout
    assert f"was refused: the one before (pid {holder.pid}, started " in after.stdout, after.stdout


def test_the_run_notes(tmp_path: Path) -> None:
    now = time.time()
    assert run_notes(tmp_path, now, 3600, 7200) == []
    holder = holding(tmp_path)
    try:
        assert run_notes(tmp_path, now, 3600, 7200) == []  # running, not for long
        later = run_notes(tmp_path, now + 4000, 3600, 7200)
        assert later == [f"a zmake backup has been running for 1h6m (pid {holder.pid})"]
    finally:
        holder.kill()
        holder.wait()
    assert run_notes(tmp_path, now + 4000, 3600, 7200) == []  # it ended: no note
    (tmp_path / OVERLAP).write_text(f"{int(now)} 42 {int(now) - 100}\n")
    notes = run_notes(tmp_path, now + 60, 3600, 7200)
    assert notes == ["a zmake backup 1m ago was refused: the one before (pid 42, started "
                     "2m40s ago) was still running"]  # fmt: skip
    assert run_notes(tmp_path, now + 7200, 3600, 7200) == []  # older than --crit: aged out


def test_a_note_makes_the_verdict_a_warning() -> None:
    judged = verdict([], 0.0, 10, 20, ["a zmake backup has been running for 1d"])
    assert judged.level == WARNING and judged.lines == ("a zmake backup has been running for 1d",)
    assert judged.summary == "ZMAKE WARNING - 0 datasets, 1 with problems"
