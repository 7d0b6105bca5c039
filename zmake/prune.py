"""Which snapshots `zmake prune` may destroy. Pure: no processes.

Only zmake-owned snapshots (name prefix `zmake-`) beyond the newest N are candidates; a held
snapshot (`userrefs` > 0) and the newest snapshot the other side also has — the base of the
next incremental — are never chosen."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zmake.errors import ParseError
from zmake.parse import split_rows, to_int

OWNED_PREFIX = "zmake-"
PRUNE_LIST_PROPS = ("name", "guid", "createtxg", "userrefs")


@dataclass(frozen=True)
class SnapshotInfo:
    name: str  # pool/fs@snap
    guid: int
    createtxg: int
    userrefs: int = 0

    @property
    def dataset(self) -> str:
        return self.name.partition("@")[0]

    @property
    def short(self) -> str:
        return self.name.partition("@")[2]

    @property
    def owned(self) -> bool:
        return self.short.startswith(OWNED_PREFIX)


def parse_snapshots(text: str, what: str) -> dict[str, list[SnapshotInfo]]:
    """`zfs list -H -p -o name,guid,createtxg,userrefs -t snapshot` → by dataset, oldest first."""
    by_dataset: dict[str, list[SnapshotInfo]] = {}
    for row in split_rows(text, PRUNE_LIST_PROPS, what):
        if "@" not in row[0]:
            raise ParseError(f"{what}: not a snapshot: {row[0]!r}")
        guid, createtxg, userrefs = (
            to_int(row[i], PRUNE_LIST_PROPS[i], row, what) for i in (1, 2, 3)
        )
        info = SnapshotInfo(row[0], guid, createtxg, userrefs)
        by_dataset.setdefault(info.dataset, []).append(info)
    for snapshots in by_dataset.values():
        snapshots.sort(key=lambda s: s.createtxg)
    return by_dataset


def newest_common(mine: Sequence[SnapshotInfo], other_guids: set[int]) -> SnapshotInfo | None:
    for snapshot in reversed(mine):
        if snapshot.guid in other_guids:
            return snapshot
    return None


def prunable(
    snapshots: Sequence[SnapshotInfo], other_guids: set[int], keep: int
) -> list[SnapshotInfo]:
    """The snapshots of one dataset to destroy: owned, older than the newest `keep` owned
    ones, not held, and not the newest one the other side also has."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    owned = [s for s in snapshots if s.owned]
    base = newest_common(snapshots, other_guids)
    return [s for s in owned[:-keep] if s.userrefs == 0 and s != base]


def plan_prune(
    mine: dict[str, list[SnapshotInfo]],
    other_guids_by_dataset: dict[str, set[int]],
    keep: int,
    datasets: Iterable[str] | None = None,
) -> dict[str, list[SnapshotInfo]]:
    """Per dataset (keyed as in `mine`), what to destroy; datasets with nothing are left out."""
    chosen = mine if datasets is None else {d: mine[d] for d in datasets if d in mine}
    plan = {
        dataset: prunable(snapshots, other_guids_by_dataset.get(dataset, set()), keep)
        for dataset, snapshots in chosen.items()
    }
    return {dataset: doomed for dataset, doomed in plan.items() if doomed}
