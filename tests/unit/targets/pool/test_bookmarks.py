"""zmake's bookmarks on the source: one per target, the last snapshot sent there
(targets/pool/bookmarks.py)."""

from __future__ import annotations

from zmake.core.model import FILESYSTEM, BackupDataset, Dataset, Snapshot
from zmake.targets.pool.bookmarks import bookmark_name, plan_bookmarks, target_key


def source(snapshots: int, marks: list[str]) -> Dataset:
    return Dataset(
        name="tank/a b",
        kind=FILESYSTEM,
        snapshots=tuple(Snapshot(f"tank/a b@s{i}", 100 + i, 10 + i) for i in range(snapshots)),
        bookmarks=tuple(Snapshot(f"tank/a b#{m}", *marked(m)) for m in marks),
    )


def marked(short: str) -> tuple[int, int]:
    """(guid, createtxg) of a bookmark of snapshot s<i> (guid 100+i, txg 10+i), by its name."""
    txg = int(short.rpartition("-")[2]) if short[-1].isdigit() else 1
    return 100 + txg - 10, txg


BACKUP = BackupDataset(name="b/a b", kind=FILESYSTEM, guid=0xABC)


def test_bookmarks_are_named_by_the_backup_datasets_guid_and_the_txg() -> None:
    key = target_key(BACKUP)
    assert key == "0000000000000abc"
    assert bookmark_name("tank/a b", key, Snapshot("tank/a b@s2", 102, 12)) == (
        "tank/a b#zmake-0000000000000abc-12"
    )


def test_the_newest_snapshot_is_bookmarked_and_this_targets_older_ones_dropped() -> None:
    other = "zmake-00000000000000ff-11"  # another target's: never touched
    mine = "zmake-0000000000000abc-11"
    create, drop = plan_bookmarks(source(3, [other, mine, "manual"]), BACKUP)
    assert create == "tank/a b#zmake-0000000000000abc-12"
    assert drop == [f"tank/a b#{mine}"]
    # already bookmarked: nothing to create, still tidy
    create, drop = plan_bookmarks(source(3, [mine, "zmake-0000000000000abc-12"]), BACKUP)
    assert (create, drop) == (None, [f"tank/a b#{mine}"])
    assert plan_bookmarks(source(3, []), BackupDataset("b/a b", FILESYSTEM)) == (None, [])
    # made through a pull key, serve labelled them (zmake-LABEL.KEY-TXG): a pull's own
    labelled, newest = "zmake-nas.0000000000000abc-11", "zmake-nas.0000000000000abc-12"
    pulled = source(3, [other, labelled, newest])
    create, drop = plan_bookmarks(pulled, BACKUP, labelled=True)
    assert (create, drop) == (None, [f"tank/a b#{labelled}"])
    # a push never takes a labelled one for its own: a pull key could have planted it
    create, drop = plan_bookmarks(pulled, BACKUP)
    assert (create, drop) == ("tank/a b#zmake-0000000000000abc-12", [])
    assert plan_bookmarks(source(0, [mine]), BACKUP) == (None, [])
