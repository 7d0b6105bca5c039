"""What zmake may touch on the receiving side, and where it keeps its bases: --dest rules,
backup parents, bookmarks per target (pure parts)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.support.zfsgen import components
from zmake.core.errors import UsageError
from zmake.core.model import FILESYSTEM, BackupDataset, Dataset, Snapshot, dest_name, source_name
from zmake.core.plan import Selection
from zmake.settings import Settings, check_dest
from zmake.targets.pool.bookmarks import bookmark_name, plan_bookmarks, target_key
from zmake.targets.pool.parents import parent_chain

# --- --dest -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dest", "roots", "same_machine", "refused"),
    [
        ("backup/laptop", ["tank"], False, None),
        ("backup", ["tank/home"], False, None),  # a subtree may go to a pool's root level
        ("backup", ["tank"], False, "is a pool"),  # tank's root would replace backup's root
        ("backup", ["tank/home", "tank"], True, "is a pool"),
        ("tank/backup", ["tank"], True, "overlaps"),  # inside the source
        ("tank", ["tank/home"], True, "overlaps"),  # above it: tank/home would be replaced
        ("tank/home", ["tank/home"], True, "overlaps"),
        ("tank/backup", ["tank/home"], True, None),  # beside it, same pool: fine
        ("tank/backup", ["tank"], False, None),  # on another machine: another pool
        ("tank/homes", ["tank/home"], True, None),  # a name prefix is not a parent
    ],
)
def test_check_dest(dest: str, roots: list[str], same_machine: bool, refused: str | None) -> None:
    if refused is None:
        check_dest(dest, roots, same_machine=same_machine)
    else:
        with pytest.raises(UsageError, match=refused):
            check_dest(dest, roots, same_machine=same_machine)


def test_dest_is_required_and_has_no_default() -> None:
    with pytest.raises(UsageError, match="give --dest"):
        Settings(remote="nas").route(["tank"])
    assert Settings(remote="nas", dest="b/t").route(["tank"]).dest == "b/t"


@given(components(), components())
def test_source_name_inverts_dest_name(a: str, b: str) -> None:
    for name in ("tank", f"tank/{a}", f"tank/{a}/{b}"):
        for dest in ("backup", "backup/laptop", f"b/{b}"):
            assert source_name(dest_name(name, dest), dest, "tank") == name
    assert source_name(f"elsewhere/{a}", "backup", "tank") is None
    assert source_name(f"backup2/{a}", "backup", "tank") is None


# --- parents on the backup side ---------------------------------------------------------------


def test_parent_chain_is_everything_between_dest_and_the_backup() -> None:
    assert parent_chain("b/laptop/home/alice", "b/laptop") == ["b/laptop", "b/laptop/home"]
    assert parent_chain("b/laptop/home", "b/laptop") == ["b/laptop"]
    assert parent_chain("b/laptop", "b/laptop") == []  # the pool root's backup is DEST itself
    assert parent_chain("backup/home", "backup") == ["backup"]


@given(st.lists(components(), min_size=1, max_size=4), st.sampled_from(["b", "b/x", "b/x y/z"]))
def test_parent_chain_is_outermost_first_and_within_dest(parts: list[str], dest: str) -> None:
    backup = "/".join([dest, *parts])
    chain = parent_chain(backup, dest)
    assert chain[0] == dest and len(chain) == len(parts)
    for outer, inner in zip(chain, [*chain[1:], backup], strict=True):
        assert inner.rpartition("/")[0] == outer


def test_selection_is_roots_minus_exclusions() -> None:
    selection = Selection(("tank/home", "tank/vm"), ("tank/home/tmp", "tank/vm/old*"))
    assert "tank/home" in selection and "tank/home/alice" in selection
    assert "tank/home/tmp" not in selection and "tank/home/tmp/x" in selection  # not children
    assert "tank/vm/old" not in selection and "tank/vm/old/x" not in selection  # a glob does
    assert "tank" not in selection and "tank/homes" not in selection
    assert 42 not in selection


# --- bookmarks ---------------------------------------------------------------------------------


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
