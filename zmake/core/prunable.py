"""Which snapshots `zmake prune` may destroy, and why each is kept or not. Pure: no processes.

Only zmake-owned snapshots (name prefix `zmake-`) that the side's retention policy
(core/retention.py) lets go are candidates; a held snapshot (`userrefs` > 0), the newest snapshot
the other side also has — the base of the next incremental, by snapshot or by bookmark —,
any snapshot a partial receive needs to be resumed (its resume token's `toguid`/`fromguid`)
and the newest zmake snapshot are never chosen, whatever the policy says."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from zmake.core.errors import ParseError
from zmake.core.parse import split_rows, to_int
from zmake.core.retention import Dated, Retention, reasons_to_keep

OWNED_PREFIX = "zmake-"
# One listing per side: datasets (for resume tokens), snapshots and bookmarks.
PRUNE_LIST_PROPS = (
    "name", "type", "guid", "createtxg", "userrefs", "receive_resume_token", "creation",
)  # fmt: skip
PRUNE_TYPES = "filesystem,volume,snapshot,bookmark"


@dataclass(frozen=True)
class SnapshotInfo:
    name: str  # pool/fs@snap
    guid: int
    createtxg: int
    userrefs: int = 0
    creation: int = 0  # seconds since 1970

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
        guid, createtxg, userrefs, creation = (
            to_int(row[i], PRUNE_LIST_PROPS[i], row, what) for i in (2, 3, 4, 6)
        )
        if kind == "snapshot":
            info = SnapshotInfo(name, guid, createtxg, userrefs, creation)
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


@dataclass(frozen=True)
class SnapshotVerdict:
    snapshot: SnapshotInfo
    keep: bool
    reason: str  # the rule that keeps it, or why it goes


def as_retention(keep: int | Retention) -> Retention:
    """`--keep N` is the policy `last=N`."""
    if isinstance(keep, Retention):
        return keep
    if keep < 1:
        raise ValueError("keep must be at least 1")
    return Retention(last=keep, text=str(keep))


def judge(
    snapshots: Sequence[SnapshotInfo],
    other_guids: set[int],
    keep: int | Retention,
    protected: Collection[int] = (),
    now: float | None = None,
) -> list[SnapshotVerdict]:
    """Every snapshot of one dataset (oldest first) with what becomes of it: the safety
    rules first, then the policy."""
    retention = as_retention(keep)
    owned = [s for s in snapshots if s.owned]
    base = newest_common(snapshots, other_guids)
    policy = reasons_to_keep([Dated(s.name, s.creation) for s in owned], retention, now)
    verdicts = []
    for snapshot in snapshots:
        if not snapshot.owned:
            verdicts.append(SnapshotVerdict(snapshot, True, "not zmake's"))
        elif snapshot.userrefs:
            verdicts.append(SnapshotVerdict(snapshot, True, "held"))
        elif snapshot == base:
            verdicts.append(SnapshotVerdict(snapshot, True, "the next incremental's base"))
        elif snapshot.guid in protected:
            verdicts.append(SnapshotVerdict(snapshot, True, "a partial receive needs it"))
        elif snapshot == owned[-1]:
            verdicts.append(SnapshotVerdict(snapshot, True, "the newest"))
        elif snapshot.name in policy:
            verdicts.append(SnapshotVerdict(snapshot, True, policy[snapshot.name]))
        else:
            verdicts.append(SnapshotVerdict(snapshot, False, f"no rule of {retention} keeps it"))
    return verdicts


def prunable(
    snapshots: Sequence[SnapshotInfo],
    other_guids: set[int],
    keep: int | Retention,
    protected: Collection[int] = (),
    now: float | None = None,
) -> list[SnapshotInfo]:
    """The snapshots of one dataset to destroy (see `judge`)."""
    verdicts = judge(snapshots, other_guids, keep, protected, now)
    return [v.snapshot for v in verdicts if not v.keep]


def judge_all(
    mine: dict[str, list[SnapshotInfo]],
    other_guids_by_dataset: dict[str, set[int]],
    keep: int | Retention,
    datasets: Iterable[str] | None = None,
    protected_by_dataset: dict[str, set[int]] | None = None,
    now: float | None = None,
) -> dict[str, list[SnapshotVerdict]]:
    """Per dataset (keyed as in `mine`), the verdict on each of its snapshots."""
    chosen = mine if datasets is None else {d: mine[d] for d in datasets if d in mine}
    protected = protected_by_dataset or {}
    return {
        dataset: judge(
            snapshots,
            other_guids_by_dataset.get(dataset, set()),
            keep,
            protected.get(dataset, set()),
            now,
        )
        for dataset, snapshots in chosen.items()
    }


def doomed_of(verdicts: dict[str, list[SnapshotVerdict]]) -> dict[str, list[SnapshotInfo]]:
    """Per dataset, what to destroy; datasets with nothing are left out."""
    plan = {d: [v.snapshot for v in vs if not v.keep] for d, vs in verdicts.items()}
    return {dataset: doomed for dataset, doomed in plan.items() if doomed}
