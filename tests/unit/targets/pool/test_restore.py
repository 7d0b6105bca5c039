"""What restoring a pool backup does, dataset by dataset (targets/pool/restore.py)."""

from __future__ import annotations

import pytest

from zmake.core.errors import Refused
from zmake.core.model import FILESYSTEM, VOLUME, BackupDataset, Snapshot
from zmake.core.token import ResumeToken, encode
from zmake.targets.pool.restore import FULL, RESUME, ROLLBACK, SKIP, plan_restore

DEST = "backup/laptop"


def backup(name: str, guids: list[int], **extra: object) -> BackupDataset:
    snaps = tuple(Snapshot(f"{name}@zmake-{g}", g, g) for g in guids)
    return BackupDataset(name, extra.pop("kind", FILESYSTEM), snapshots=snaps, **extra)  # type: ignore[arg-type]


TREE = {
    DEST: backup(DEST, [], placeholder=True),
    f"{DEST}/home": backup(f"{DEST}/home", [1, 2, 3]),
    f"{DEST}/home/my docs": backup(f"{DEST}/home/my docs", [1, 2, 3]),
    f"{DEST}/home/vm:disk": backup(f"{DEST}/home/vm:disk", [1, 3], kind=VOLUME),
    f"{DEST}/homework": backup(f"{DEST}/homework", [5]),
}


def test_a_subtree_restores_parents_first_into_new_names() -> None:
    plan = plan_restore(TREE, f"{DEST}/home", "rescue/h", {}, dest=DEST)
    assert [(s.target, s.action, s.snapshot.guid) for s in plan] == [
        ("rescue/h", FULL, 3),
        ("rescue/h/my docs", FULL, 3),
        ("rescue/h/vm:disk", FULL, 3),
    ]  # not homework: a sibling whose name starts alike
    assert plan[0].send() == ["zfs", "send", "-L", "-c", f"{DEST}/home@zmake-3"]
    assert plan[0].recv() == ["zfs", "recv", "-u", "-s", "rescue/h"]


def test_one_snapshot_of_one_dataset() -> None:
    plan = plan_restore(TREE, f"{DEST}/home", "p/x", {}, dest=DEST, wanted="zmake-2",
                        children=False)  # fmt: skip
    assert [(s.target, s.snapshot.short) for s in plan] == [("p/x", "zmake-2")]
    with pytest.raises(Refused, match="no snapshot @zmake-9"):
        plan_restore(TREE, f"{DEST}/home", "p/x", {}, dest=DEST, wanted="zmake-9")


def test_never_over_an_existing_dataset_without_force() -> None:
    there = {"p/x": backup("p/x", [7])}
    with pytest.raises(Refused, match="p/x exists: not restoring over it"):
        plan_restore(TREE, f"{DEST}/home", "p/x", there, dest=DEST, children=False)
    with pytest.raises(Refused, match="shares no snapshot"):
        plan_restore(TREE, f"{DEST}/home", "p/x", there, dest=DEST, children=False, force=True)
    shared = {"p/x": backup("p/x", [1, 2, 8])}  # diverged after @zmake-2
    (step,) = plan_restore(TREE, f"{DEST}/home", "p/x", shared, dest=DEST, children=False,
                           force=True)  # fmt: skip
    assert step.action == ROLLBACK and step.base is not None and step.base.guid == 2
    assert step.send() == ["zfs", "send", "-L", "-c", "-I", f"{DEST}/home@zmake-2",
                           f"{DEST}/home@zmake-3"]  # fmt: skip
    assert step.recv() == ["zfs", "recv", "-u", "-s", "-F", "p/x"]


def test_run_again_skips_what_is_there_and_resumes_a_partial_receive() -> None:
    token = encode(ResumeToken(3, f"{DEST}/home/my docs@zmake-3"))
    there = {
        "p/x": backup("p/x", [3]),
        "p/x/my docs": BackupDataset("p/x/my docs", FILESYSTEM, resume_token=token),
    }
    plan = plan_restore(TREE, f"{DEST}/home", "p/x", there, dest=DEST)
    assert [s.action for s in plan] == [SKIP, RESUME, FULL]
    assert plan[1].send() == ["zfs", "send", "-t", token]
    other = {"p/x": BackupDataset("p/x", FILESYSTEM, resume_token=encode(ResumeToken(99, "a@b")))}
    with pytest.raises(Refused, match="partial receive of another snapshot"):
        plan_restore(TREE, f"{DEST}/home", "p/x", other, dest=DEST)


def test_raw_backups_restore_raw_and_plain_ones_under_a_vault_plain() -> None:
    raw_root = f"{DEST}/secret"
    tree = {
        DEST: backup(DEST, [], encryption="aes-256-gcm", encryption_root=DEST),
        raw_root: backup(raw_root, [4], encryption="aes-256-gcm", encryption_root=raw_root),
        f"{raw_root}/kid": backup(
            f"{raw_root}/kid", [4], encryption="aes-256-gcm", encryption_root=raw_root
        ),
        f"{DEST}/plain": backup(
            f"{DEST}/plain", [4], encryption="aes-256-gcm", encryption_root=DEST
        ),
    }
    plan = plan_restore(tree, raw_root, "p/s", {}, dest=DEST)
    assert [s.raw for s in plan] == [True, True]
    assert plan[0].send() == ["zfs", "send", "-w", f"{raw_root}@zmake-4"]
    (plain,) = plan_restore(tree, f"{DEST}/plain", "p/q", {}, dest=DEST)
    assert not plain.raw  # encrypted by the backup host's own vault (--dest), not the source
    pool_root = {**tree, DEST: backup(DEST, [4], encryption="aes-256-gcm", encryption_root=DEST)}
    (whole,) = plan_restore(pool_root, f"{DEST}/plain", "p/q", {}, dest=DEST)
    assert whole.raw  # --dest is itself the raw backup of an encrypted pool root
