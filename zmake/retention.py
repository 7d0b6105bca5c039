"""Which snapshots `zmake prune` may destroy. Pure: no processes.

Only zmake-owned snapshots (name prefix `zmake-`) beyond the newest N are candidates; a held
snapshot (`userrefs` > 0), the newest snapshot the other side also has — the base of the
next incremental, by snapshot or by bookmark — and any snapshot a partial receive needs to
be resumed (its resume token's `toguid`/`fromguid`) are never chosen."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from zmake.errors import ParseError
from zmake.parse import split_rows, to_int

OWNED_PREFIX = "zmake-"
# One listing per side: datasets (for resume tokens), snapshots and bookmarks.
PRUNE_LIST_PROPS = ("name", "type", "guid", "createtxg", "userrefs", "receive_resume_token")
PRUNE_TYPES = "filesystem,volume,snapshot,bookmark"


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


@dataclass(frozen=True)
class SideView:
    """What prune reads of one side, by dataset: snapshots oldest first, bookmarks' guids,
    and the resume token of a partial receive."""

    snapshots: dict[str, list[SnapshotInfo]] = field(default_factory=dict)
    bookmarks: dict[str, set[int]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def guids(self, dataset: str) -> set[int]:
        """Every guid `dataset` can be an incremental base for: snapshots and bookmarks."""
        own = {s.guid for s in self.snapshots.get(dataset, [])}
        return own | self.bookmarks.get(dataset, set())


def parse_side(text: str, what: str) -> SideView:
    """`zfs list -H -p -o PRUNE_LIST_PROPS -t PRUNE_TYPES -r ROOT` → a SideView."""
    view = SideView()
    for row in split_rows(text, PRUNE_LIST_PROPS, what):
        name, kind, token = row[0], row[1], row[5]
        guid, createtxg, userrefs = (
            to_int(row[i], PRUNE_LIST_PROPS[i], row, what) for i in (2, 3, 4)
        )
        if kind == "snapshot":
            info = SnapshotInfo(name, guid, createtxg, userrefs)
            view.snapshots.setdefault(info.dataset, []).append(info)
        elif kind == "bookmark":
            view.bookmarks.setdefault(name.partition("#")[0], set()).add(guid)
        elif kind in ("filesystem", "volume"):
            if token not in ("-", ""):
                view.tokens[name] = token
        else:
            raise ParseError(f"{what}: unexpected type {kind!r} for {name!r}")
    for snapshots in view.snapshots.values():
        snapshots.sort(key=lambda s: s.createtxg)
    return view


def newest_common(mine: Sequence[SnapshotInfo], other_guids: set[int]) -> SnapshotInfo | None:
    for snapshot in reversed(mine):
        if snapshot.guid in other_guids:
            return snapshot
    return None


def prunable(
    snapshots: Sequence[SnapshotInfo],
    other_guids: set[int],
    keep: int,
    protected: Collection[int] = (),
) -> list[SnapshotInfo]:
    """The snapshots of one dataset to destroy: owned, older than the newest `keep` owned
    ones, not held, not the newest one the other side also has, not `protected`."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    owned = [s for s in snapshots if s.owned]
    base = newest_common(snapshots, other_guids)
    return [s for s in owned[:-keep] if s.userrefs == 0 and s != base and s.guid not in protected]


def plan_prune(
    mine: dict[str, list[SnapshotInfo]],
    other_guids_by_dataset: dict[str, set[int]],
    keep: int,
    datasets: Iterable[str] | None = None,
    protected_by_dataset: dict[str, set[int]] | None = None,
) -> dict[str, list[SnapshotInfo]]:
    """Per dataset (keyed as in `mine`), what to destroy; datasets with nothing are left out."""
    chosen = mine if datasets is None else {d: mine[d] for d in datasets if d in mine}
    protected = protected_by_dataset or {}
    plan = {
        dataset: prunable(
            snapshots,
            other_guids_by_dataset.get(dataset, set()),
            keep,
            protected.get(dataset, set()),
        )
        for dataset, snapshots in chosen.items()
    }
    return {dataset: doomed for dataset, doomed in plan.items() if doomed}
