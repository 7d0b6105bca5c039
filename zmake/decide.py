"""Decide what `zmake send` does for one dataset: a pure function of (local, remote).

Every run re-reads both sides and decides again, which is what makes an interrupted run
finishable by running it again."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from zmake.model import Dataset, RemoteDataset, Snapshot

# A dataset that `zfs recv -d` auto-created as a parent holds only its root directory.
# Anything above this is treated as data of its own and never overwritten with -F.
PLACEHOLDER_MAX_REFERENCED = 256 * 1024


class Action(Enum):
    NOTHING_TO_SEND = "no local snapshot"
    UP_TO_DATE = "up to date"
    RESUME = "resume"
    FULL = "full"
    FULL_OVER_PLACEHOLDER = "full over placeholder"
    INCREMENTAL = "incremental"
    DIVERGED = "diverged"
    RAW_MISMATCH = "raw mismatch"


@dataclass(frozen=True)
class Step:
    action: Action
    to_snapshot: Snapshot | None = None
    from_snapshot: Snapshot | None = None
    token: str | None = None
    rollback_to: Snapshot | None = None  # with --force: roll the backup back to this first
    force_receive: bool = False  # a resume that replaces a placeholder, as its first part did
    reason: str = ""

    @property
    def transfers(self) -> bool:
        return self.action in (
            Action.RESUME,
            Action.FULL,
            Action.FULL_OVER_PLACEHOLDER,
            Action.INCREMENTAL,
        )


def decide(local: Dataset, remote: RemoteDataset | None, *, force: bool = False) -> Step:
    """The next step that brings `remote` closer to holding `local`'s newest snapshot.

    A fresh remote gets the oldest snapshot as a full stream, then the rest as one `-I`
    range (the caller applies the step and asks again), so the backup keeps the history."""
    newest = local.newest
    if newest is None:
        return Step(Action.NOTHING_TO_SEND, reason=f"{local.name} has no snapshot")
    if remote is not None and remote.resume_token:
        return Step(Action.RESUME, token=remote.resume_token, reason="partial receive on backup")
    if remote is None:
        return Step(Action.FULL, to_snapshot=local.snapshots[0])
    if remote.encrypted != local.encrypted:
        return Step(
            Action.RAW_MISMATCH,
            reason=(
                f"{remote.name} is {'' if remote.encrypted else 'not '}encrypted but "
                f"{local.name} is {'' if local.encrypted else 'not '}: raw and non-raw "
                "streams cannot be mixed on one target"
            ),
        )
    if not remote.snapshots:
        return decide_without_remote_snapshots(local, remote)
    return decide_incremental(local, remote, newest, force=force)


def is_placeholder(local: Dataset, remote: RemoteDataset | None) -> bool:
    """The backup's dataset is only a parent that `zfs recv -d` auto-created: no snapshot,
    no data of its own. Only such a dataset is ever replaced (-F)."""
    return (
        remote is not None
        and not remote.snapshots
        and remote.kind == local.kind
        and remote.referenced <= PLACEHOLDER_MAX_REFERENCED
    )


def decide_without_remote_snapshots(local: Dataset, remote: RemoteDataset) -> Step:
    if is_placeholder(local, remote):
        return Step(Action.FULL_OVER_PLACEHOLDER, to_snapshot=local.snapshots[0])
    return Step(
        Action.DIVERGED,
        reason=(
            f"{remote.name} exists on the backup with {remote.referenced} bytes of its own "
            "and no snapshot; zmake will not overwrite it (destroy it by hand if unwanted)"
        ),
    )


def decide_incremental(
    local: Dataset, remote: RemoteDataset, newest: Snapshot, *, force: bool
) -> Step:
    remote_guids = {s.guid for s in remote.snapshots}
    if newest.guid in remote_guids:
        return Step(Action.UP_TO_DATE, to_snapshot=newest)
    common = newest_common(local.snapshots, remote_guids)
    if common is None:
        return Step(
            Action.DIVERGED,
            reason=(
                f"no common snapshot: backup {remote.name} has "
                f"{', '.join('@' + s.short for s in remote.snapshots[-3:])}, source has "
                f"{', '.join('@' + s.short for s in local.snapshots[-3:])}"
            ),
        )
    # Positions, not txgs: the backup's txgs are its own, and a derived state (see `apply`)
    # carries the source's.
    position = next(i for i, s in enumerate(remote.snapshots) if s.guid == common.guid)
    remote_common = remote.snapshots[position]
    remote_only = remote.snapshots[position + 1 :]
    if not remote_only and remote.written == 0:
        return Step(Action.INCREMENTAL, to_snapshot=newest, from_snapshot=common)
    if force:
        return Step(
            Action.INCREMENTAL,
            to_snapshot=newest,
            from_snapshot=common,
            rollback_to=remote_common,
            reason=f"--force: rolling the backup back to @{remote_common.short}",
        )
    if remote_only:
        found = f"has snapshots newer than the common @{common.short}: " + ", ".join(
            "@" + s.short for s in remote_only
        )
    else:
        found = f"was modified ({remote.written} bytes) since @{remote_common.short}"
    return Step(
        Action.DIVERGED, reason=f"backup {remote.name} {found} (use --force to roll it back)"
    )


def newest_common(local: tuple[Snapshot, ...], remote_guids: set[int]) -> Snapshot | None:
    for snapshot in reversed(local):
        if snapshot.guid in remote_guids:
            return snapshot
    return None


def apply(step: Step, remote: RemoteDataset | None, local: Dataset) -> RemoteDataset | None:
    """The remote state after `step` succeeded (FULL/INCREMENTAL); used to plan the next step
    without asking the remote again. RESUME's result is not known here: ask again."""
    if step.to_snapshot is None or step.action not in (
        Action.FULL,
        Action.FULL_OVER_PLACEHOLDER,
        Action.INCREMENTAL,
    ):
        return remote
    received = [s for s in local.snapshots if snapshot_in_range(s, step)]
    state = remote or RemoteDataset(name="", kind=local.kind, encryption=local.encryption)
    if step.rollback_to is not None:
        guids = [s.guid for s in state.snapshots]
        cut = guids.index(step.rollback_to.guid) + 1 if step.rollback_to.guid in guids else 0
        keep = state.snapshots[:cut]
        state = RemoteDataset(
            name=state.name,
            kind=state.kind,
            referenced=state.referenced,
            encryption=state.encryption,
            snapshots=tuple(keep),
        )
    for snapshot in received:
        state = state.with_snapshot(snapshot)
    return state


def snapshot_in_range(snapshot: Snapshot, step: Step) -> bool:
    assert step.to_snapshot is not None
    if step.from_snapshot is None:
        return snapshot.guid == step.to_snapshot.guid
    return step.from_snapshot.createtxg < snapshot.createtxg <= step.to_snapshot.createtxg


def step_bytes(step: Step, local: Dataset) -> int:
    """Roughly what the stream of a full or incremental step carries, from the properties
    already read (so no `zfs send -nv` per send): the snapshot's `referenced` for a full
    stream, the `written` of every snapshot in the range for `-I`. 0 for anything else."""
    if step.to_snapshot is None or step.action is Action.RESUME:
        return 0
    if step.from_snapshot is None:
        return step.to_snapshot.referenced
    guids = {s.guid for s in local.snapshots}
    if step.from_snapshot.guid not in guids or step.to_snapshot.guid not in guids:
        return 0
    return sum(s.written for s in local.snapshots if snapshot_in_range(s, step))
