"""`zmake backup --dry-run`: the whole plan, and nothing changed on either side."""

from __future__ import annotations

from pathlib import Path

from tests.unit.support.fake_zfs import BACKUP_ROW, answer, fake_zfs, zmake

NIGHT = ["backup", "tank", "--dest", "backup/laptop", "--snapshot", "--prune", "--keep", "3"]
READS = ("list ", "get ")


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_the_dry_run_prints_the_plan_and_only_reads(tmp_path: Path) -> None:
    env, log = fake_zfs(tmp_path)
    row = BACKUP_ROW.format(name="backup", referenced=0, token="-", mark="-")
    answer(tmp_path, "datasets.txt", row)
    result = zmake([*NIGHT, "--dry-run"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "snapshot: would take @zmake-" in out and "of tank" in out
    assert "prune (both sides):" in out
    assert "send (3 datasets, into backup/laptop on this machine):" in out
    assert "  tank/my data → backup/laptop/my data  ~" in out
    assert "tank/vm:disk0 → backup/laptop/vm:disk0" in out
    assert "dry run: nothing was changed" in out
    assert calls(log) and all(call.startswith(READS) for call in calls(log)), calls(log)


def test_the_control_without_dry_run_changes_something(tmp_path: Path) -> None:
    """The check above can see a change: the same night, not dry, snapshots first."""
    env, log = fake_zfs(tmp_path)
    answer(tmp_path, "datasets.txt", BACKUP_ROW.format(name="backup", referenced=0, token="-",
                                                       mark="-"))  # fmt: skip
    zmake([*NIGHT, "--yes"], env, cwd=tmp_path)
    assert any(not call.startswith(READS) for call in calls(log))
    assert any(call.startswith("snapshot -r tank@zmake-") for call in calls(log))
