"""Decide what `zmake send` does for one dataset: a pure function of (source, backup).

Every run re-reads both sides and decides again, which is what makes an interrupted run
finishable by running it again."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from zmake.core.model import PLACEHOLDER_PROPERTY, BackupDataset, Dataset, Snapshot, dest_name

# A placeholder zmake created holds only its root directory. Anything above this is treated as
# data of its own and never overwritten with -F, marked or not.
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
    from_snapshot: Snapshot | None = None  # a snapshot (`-I`) or a bookmark (`-i`)
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


def decide(
    local: Dataset,
    remote: BackupDataset | None,
    dest: str,
    *,
    force: bool = False,
    one_by_one: bool = False,
) -> Step:
    """The next step that brings `remote` (the backup of `local` under `dest`, as in
    `zfs recv -d DEST`) closer to holding `local`'s newest snapshot.

    A fresh remote gets the oldest snapshot as a full stream, then the rest as one `-I`
    range (the caller applies the step and asks again), so the backup keeps the history;
    `one_by_one` (a restricted key takes no package of streams) one snapshot per step."""
    newest = local.newest
    if newest is None:
        return Step(Action.NOTHING_TO_SEND, reason=f"{local.name} has no snapshot")
    if remote is not None and remote.resume_token:
        return Step(Action.RESUME, token=remote.resume_token, reason="partial receive on backup")
    if remote is None:
        return Step(Action.FULL, to_snapshot=local.snapshots[0])
    mismatch = raw_mismatch(local, remote, dest)
    if mismatch:
        return Step(Action.RAW_MISMATCH, reason=mismatch)
    if not remote.snapshots:
        return decide_without_remote_snapshots(local, remote)
    return decide_incremental(local, remote, newest, force=force, one_by_one=one_by_one)


def raw_mismatch(local: Dataset, remote: BackupDataset, dest: str) -> str | None:
    """Why raw and plain streams would be mixed, or None.

    An encrypted source is always sent raw, so its backup must have been received raw: its
    encryption root is the image of the source's. A plain source may go into a backup that is
    encrypted at rest because a parent on the backup side is (zfs-receive(8)): plain streams
    into it are right, and the backup host's key protects it."""
    if not local.encrypted:
        return None
    expected = dest_name(local.encryption_root or local.name, dest)
    if not remote.snapshots:
        return (
            f"{remote.name} exists on the backup and {local.name} is encrypted: ZFS cannot "
            "replace an existing dataset with a raw stream (destroy it if it is empty)"
        )
    if not remote.encrypted:
        return (
            f"{remote.name} is not encrypted but {local.name} is: raw and non-raw streams "
            "cannot be mixed on one target"
        )
    if remote.encryption_root != expected:
        return (
            f"{remote.name} is encrypted by {remote.encryption_root} on the backup side, not "
            f"received raw from {local.name}: raw and non-raw streams cannot be mixed"
        )
    return None


def resumable(token: str, local: Dataset) -> bool:
    """The source still holds what the partial receive of `token` needs (the snapshot it
    completes, and the base of an incremental, as a snapshot or a bookmark). An unreadable
    token is not resumable."""
    from zmake.core.errors import ParseError
    from zmake.core.token import decode

    try:
        needed = decode(token).needed_guids
    except ParseError:
        return False
    return needed <= {s.guid for s in (*local.snapshots, *local.bookmarks)}


def is_placeholder(local: Dataset, remote: BackupDataset | None) -> bool:
    """The backup's dataset is an empty parent that zmake created and marked (see
    targets/pool/parents.py): no snapshot, no data of its own. Only such a dataset is replaced (-F)
    without --force."""
    return (
        remote is not None
        and remote.placeholder
        and not remote.snapshots
        and remote.kind == local.kind
        and remote.referenced <= PLACEHOLDER_MAX_REFERENCED
    )


def decide_without_remote_snapshots(local: Dataset, remote: BackupDataset) -> Step:
    """Replace the backup's dataset (-F) only when it is a placeholder zmake made; never one
    it did not, --force or not: that may hold someone's files."""
    if is_placeholder(local, remote) and remote.encrypted:
        return Step(
            Action.DIVERGED,
            reason=(
                f"{remote.name} is an empty placeholder encrypted by {remote.encryption_root} on "
                "the backup side, and ZFS never replaces an encrypted dataset (zfs recv -F): "
                "move its children aside and destroy it, or send parents first"
            ),
        )
    if is_placeholder(local, remote):
        return Step(Action.FULL_OVER_PLACEHOLDER, to_snapshot=local.snapshots[0])
    return Step(
        Action.DIVERGED,
        reason=(
            f"{remote.name} exists on the backup without a snapshot ({remote.referenced} bytes) "
            "and zmake did not create it, so it will not replace it. If it is an empty parent "
            f"and nothing of yours, mark it: zfs set {PLACEHOLDER_PROPERTY}={remote.name} "
            f"{remote.name}"
        ),
    )


def incremental_base(local: Dataset, remote_guids: set[int]) -> Snapshot | None:
    """The newest snapshot or bookmark of `local` that the backup also holds (a snapshot wins
    over a bookmark of the same snapshot: `-I` from it also sends what lies in between)."""
    candidates = [s for s in (*local.snapshots, *local.bookmarks) if s.guid in remote_guids]
    if not candidates:
        return None
    return max(candidates, key=lambda s: (s.createtxg, not s.is_bookmark))


def decide_incremental(
    local: Dataset, remote: BackupDataset, newest: Snapshot, *, force: bool, one_by_one: bool
) -> Step:
    remote_guids = {s.guid for s in remote.snapshots}
    if newest.guid in remote_guids:
        return Step(Action.UP_TO_DATE, to_snapshot=newest)
    base = incremental_base(local, remote_guids)
    if base is None:
        return Step(
            Action.DIVERGED,
            reason=(
                f"no common snapshot: backup {remote.name} has "
                f"{', '.join('@' + s.short for s in remote.snapshots[-3:])}, source has "
                f"{', '.join('@' + s.short for s in local.snapshots[-3:])}"
            ),
        )
    later = [s for s in local.snapshots if s.createtxg > base.createtxg]
    if not later:  # only a bookmark can be newer than the newest snapshot
        return Step(
            Action.DIVERGED,
            reason=(
                f"backup {remote.name} already has the snapshot of {base.label}, newer than "
                f"the source's newest @{newest.short}: nothing newer to send"
            ),
        )
    # Positions, not txgs: the backup's txgs are its own, and a derived state (see `apply`)
    # carries the source's.
    position = next(i for i, s in enumerate(remote.snapshots) if s.guid == base.guid)
    remote_common = remote.snapshots[position]
    remote_only = remote.snapshots[position + 1 :]
    # From a bookmark only one snapshot can be sent (`-i`); the next step sends the rest.
    to = later[0] if base.is_bookmark or one_by_one else newest
    step = Step(Action.INCREMENTAL, to_snapshot=to, from_snapshot=base)
    if not remote_only and remote.written == 0:
        return step
    if force:
        return replace(
            step,
            rollback_to=remote_common,
            reason=f"--force: rolling the backup back to @{remote_common.short}",
        )
    if remote_only:
        found = f"has snapshots newer than the common {base.label}: " + ", ".join(
            "@" + s.short for s in remote_only
        )
    else:
        found = f"was modified ({remote.written} bytes) since @{remote_common.short}"
    return Step(
        Action.DIVERGED, reason=f"backup {remote.name} {found} (use --force to roll it back)"
    )


def apply(
    step: Step, remote: BackupDataset | None, local: Dataset, dest: str
) -> BackupDataset | None:
    """The remote state after `step` succeeded (FULL/INCREMENTAL); used to plan the next step
    without asking the remote again. RESUME's result is not known here: ask again."""
    if step.to_snapshot is None or step.action not in (
        Action.FULL,
        Action.FULL_OVER_PLACEHOLDER,
        Action.INCREMENTAL,
    ):
        return remote
    received = [s for s in local.snapshots if snapshot_in_range(s, step)]
    name = dest_name(local.name, dest)
    state = remote or BackupDataset(
        name=name,
        kind=local.kind,
        encryption=local.encryption,
        encryption_root=dest_name(local.encryption_root or local.name, dest)
        if local.encrypted
        else None,
    )
    if step.rollback_to is not None:
        guids = [s.guid for s in state.snapshots]
        cut = guids.index(step.rollback_to.guid) + 1 if step.rollback_to.guid in guids else 0
        state = replace(state, snapshots=state.snapshots[:cut], resume_token=None, written=0)
    for snapshot in received:
        state = state.with_snapshot(snapshot)
    return replace(state, placeholder=False)


def snapshot_in_range(snapshot: Snapshot, step: Step) -> bool:
    """Whether the stream of `step` carries `snapshot`: `-I` every snapshot after the base up
    to the target, a full stream or `-i` (from a bookmark) only the target."""
    assert step.to_snapshot is not None
    if step.from_snapshot is None or step.from_snapshot.is_bookmark:
        return snapshot.guid == step.to_snapshot.guid
    return step.from_snapshot.createtxg < snapshot.createtxg <= step.to_snapshot.createtxg


def step_bytes(step: Step, local: Dataset) -> int:
    """Roughly what the stream of a full or incremental step carries, from the properties
    already read (so no `zfs send -nv` per send): the snapshot's `referenced` for a full
    stream, the `written` of every snapshot in the range for an incremental. 0 otherwise."""
    if step.to_snapshot is None or step.action is Action.RESUME:
        return 0
    if step.from_snapshot is None:
        return step.to_snapshot.referenced
    known = {s.guid for s in local.snapshots}
    base = step.from_snapshot
    if step.to_snapshot.guid not in known or not (base.is_bookmark or base.guid in known):
        return 0
    return sum(s.written for s in local.snapshots if snapshot_in_range(s, step))
