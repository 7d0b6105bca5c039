"""`zmake generate` as a user meets it: the plan it prints and what it says about it."""

from __future__ import annotations

from pathlib import Path

from tests.unit.support.fake_zfs import LIST, fake_zfs, zmake


def test_a_pool_without_snapshots_gets_a_hint_not_silence(tmp_path: Path) -> None:
    bare = "".join(line + "\n" for line in LIST.splitlines() if "@" not in line)
    env, _ = fake_zfs(tmp_path, list_output=bare)
    result = zmake(["generate", "tank", "--dest", "backup/laptop"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "zmake: note: 3 of 3 datasets have no snapshot yet, so nothing to send for them "
        "(tank/my data, …): take one first, zmake snapshot tank (or zmake backup --snapshot)\n"
    )
    (tmp_path / "control").mkdir()
    with_snapshots, _ = fake_zfs(tmp_path / "control")  # the control: LIST has snapshots
    quiet = zmake(["generate", "tank", "--dest", "backup/laptop"], with_snapshots, cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
