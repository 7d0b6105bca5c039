"""Prune selection: the rules that keep a backup chain alive."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zmake.confirm import confirm
from zmake.core.errors import Refused
from zmake.core.prunable import (
    SnapshotInfo,
    doomed_of,
    judge_all,
    newest_common,
    parse_side,
    prunable,
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[SnapshotInfo], set[int], int]:
    count = draw(st.integers(0, 12))
    snaps = [
        SnapshotInfo(
            name=f"tank/fs@{'zmake-' if draw(st.booleans()) else 'manual-'}{i:03d}",
            guid=1000 + i,
            createtxg=10 + i,
            userrefs=draw(st.sampled_from([0, 0, 0, 1])),
        )
        for i in range(count)
    ]
    remote = set(draw(st.sets(st.sampled_from([s.guid for s in snaps]))) if snaps else set())
    keep = draw(st.integers(1, 5))
    return snaps, remote, keep


@given(histories())
def test_prune_never_takes_the_base_held_or_foreign(
    case: tuple[list[SnapshotInfo], set[int], int],
) -> None:
    snaps, remote, keep = case
    doomed = prunable(snaps, remote, keep)
    base = newest_common(snaps, remote)
    assert base not in doomed
    assert all(s.owned and s.userrefs == 0 for s in doomed)


@given(histories())
def test_prune_keeps_exactly_n_owned_otherwise(
    case: tuple[list[SnapshotInfo], set[int], int],
) -> None:
    snaps, remote, keep = case
    doomed = set(prunable(snaps, remote, keep))
    owned = [s for s in snaps if s.owned]
    base = newest_common(snaps, remote)
    protected = {s for s in owned[:-keep] if s.userrefs or s == base}
    kept = [s for s in owned if s not in doomed]
    assert set(kept) == set(owned[-keep:]) | protected
    assert len(kept) == min(keep, len(owned)) + len(protected)


def test_prune_table() -> None:
    snaps = [SnapshotInfo(f"p/a@zmake-{i}", i, i) for i in range(5)]
    assert [s.short for s in prunable(snaps, set(), 2)] == ["zmake-0", "zmake-1", "zmake-2"]
    # the backup's newest common snapshot (guid 1) is the next incremental's base
    assert [s.short for s in prunable(snaps, {0, 1}, 2)] == ["zmake-0", "zmake-2"]
    with pytest.raises(ValueError):
        prunable(snaps, set(), 0)


def test_parse_and_plan_by_dataset() -> None:
    text = (
        "tank/a b\tfilesystem\t1\t1\t-\t1-abc-def\t1700000000\n"
        "tank/a b@zmake-1\tsnapshot\t11\t5\t0\t-\t1700000000\n"
        "tank/a b@zmake-2\tsnapshot\t12\t6\t0\t-\t1700000000\n"
        "tank/a b@zmake-3\tsnapshot\t13\t7\t1\t-\t1700000000\n"
        "tank/a b#zmake-x-5\tbookmark\t11\t5\t-\t-\t1700000000\n"
        "tank/c:d\tvolume\t2\t1\t-\t-\t1700000000\n"
        "tank/c:d@zmake-1\tsnapshot\t21\t5\t0\t-\t1700000000\n"
    )
    parsed = parse_side(text, "test")
    assert list(parsed.snapshots) == ["tank/a b", "tank/c:d"]
    assert parsed.tokens == {"tank/a b": "1-abc-def"}
    assert parsed.guids("tank/a b") == {11, 12, 13}  # the bookmark's guid is @zmake-1's
    plan = doomed_of(judge_all(parsed.snapshots, {"tank/a b": {12}}, keep=1))
    assert {d: [s.short for s in v] for d, v in plan.items()} == {"tank/a b": ["zmake-1"]}
    protected = doomed_of(
        judge_all(
            parsed.snapshots, {"tank/a b": {12}}, keep=1, protected_by_dataset={"tank/a b": {11}}
        )
    )
    assert protected == {}


@given(histories(), st.sets(st.integers(1000, 1012)))
def test_protected_snapshots_are_never_pruned(
    case: tuple[list[SnapshotInfo], set[int], int], protected: set[int]
) -> None:
    """What a resume token needs (its toguid/fromguid) is kept, whatever else holds."""
    snaps, remote, keep = case
    doomed = prunable(snaps, remote, keep, protected)
    assert not {s.guid for s in doomed} & protected
    assert set(doomed) == {s for s in prunable(snaps, remote, keep) if s.guid not in protected}


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_confirm_yes_tty_and_no_tty() -> None:
    assert confirm("destroy", assume_yes=True, stdin=io.StringIO())
    out = io.StringIO()
    assert confirm("destroy", assume_yes=False, stdin=FakeTty("y\n"), out=out)
    assert "[y/N]" in out.getvalue()
    assert not confirm("destroy", assume_yes=False, stdin=FakeTty("\n"), out=io.StringIO())
    with pytest.raises(Refused, match="--yes"):
        confirm("destroy", assume_yes=False, stdin=io.StringIO("y\n"))
