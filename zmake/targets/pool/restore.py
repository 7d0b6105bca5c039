"""`zmake restore DATASET[@SNAPSHOT] --into POOL/PATH`: bring a pool backup back.

The backup side sends, the side that gets it back receives — the source (by default: the
backup host sends back, or the source pulls back, as the Route says) or, with --on-backup,
the backup host itself (commands/drill.py restores there). DATASET is the source's name; it becomes
POOL/PATH, its children below it (all of them unless --no-children), parents first.

Per dataset, the newest snapshot (or @SNAPSHOT) goes as a full stream, received with `-s`:
an interrupted restore is carried on from its resume token when run again, and a dataset
that already holds the snapshot is skipped. An existing dataset is never received over
without --force, and even then only when it shares a snapshot with the backup (an
incremental with -F from that snapshot: rolls it back, destroys nothing it does not have in
common). Raw backups (encrypted on the source) restore raw: the key is needed to mount,
not to receive."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace

from zmake.core.errors import Refused, TransferFailed
from zmake.core.model import Argv, BackupDataset, Snapshot, dest_name, is_within, parent_of
from zmake.reports.send import human
from zmake.sides import zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side
from zmake.sides.zfs_argv import restore_recv_argv, resume_argv, stream_argv

FULL, RESUME, ROLLBACK, SKIP = "full", "resume", "rollback", "skip"


@dataclass(frozen=True)
class Restore:
    """One dataset's restore: `snapshot` of `backup` into `target`."""

    backup: BackupDataset
    snapshot: Snapshot
    target: str
    raw: bool
    action: str
    base: Snapshot | None = None  # ROLLBACK: the snapshot both hold
    token: str | None = None  # RESUME

    def send(self) -> Argv:
        if self.action == RESUME:
            assert self.token is not None
            return resume_argv(self.token)
        base = self.base.name if self.base is not None else None
        return stream_argv(self.snapshot.name, raw=self.raw, base=base)

    def recv(self) -> Argv:
        return restore_recv_argv(self.target, rollback=self.action == ROLLBACK)

    def line(self) -> str:
        what = {FULL: "full", RESUME: "resume"}.get(self.action, "")
        if self.base is not None:
            what = f"rolled back to @{self.base.short}, then incremental"
        raw = " (raw)" if self.raw else ""
        size = human(self.snapshot.referenced) if self.snapshot.referenced else "?"
        return f"{self.backup.name}@{self.snapshot.short} → {self.target}: {what}{raw}, {size}"


def restored_name(backup: str, root: str, into: str) -> str:
    return into + backup[len(root) :]


def is_raw(backup: BackupDataset, tree: Mapping[str, BackupDataset], dest: str) -> bool:
    """Encrypted on the source, so received raw: its encryption root is a backup (below
    --dest, or --dest itself when that is a backup with snapshots). A backup encrypted by
    the backup host's own encrypted parent was received plain, and goes back plain."""
    root = backup.encryption_root
    if not backup.encrypted or root is None or not is_within(root, dest):
        return False
    return root != dest or bool(tree.get(dest) and tree[dest].snapshots)


def choose_snapshot(backup: BackupDataset, wanted: str | None) -> Snapshot:
    if not backup.snapshots:
        raise Refused(f"{backup.name} holds no snapshot: nothing to restore")
    if wanted is None:
        return backup.snapshots[-1]
    for snapshot in backup.snapshots:
        if snapshot.short == wanted:
            return snapshot
    raise Refused(f"{backup.name} has no snapshot @{wanted}")


def plan_restore(
    tree: Mapping[str, BackupDataset],
    root: str,
    into: str,
    existing: Mapping[str, BackupDataset],
    *,
    dest: str,
    wanted: str | None = None,
    children: bool = True,
    force: bool = False,
) -> list[Restore]:
    """What restoring backup `root` (and its children) into `into` takes. Pure."""
    if root not in tree:
        raise Refused(f"no backup {root}")
    names = [n for n in tree if n == root or (children and is_within(n, root))]
    plan = []
    for name in sorted(names, key=lambda n: n.split("/")):  # parents before children
        backup = tree[name]
        if not backup.snapshots and backup.placeholder and name != root:
            continue  # an empty parent zmake made; its children restore below a plain one
        snapshot = choose_snapshot(backup, wanted)
        target = restored_name(name, root, into)
        raw = is_raw(backup, tree, dest)
        plan.append(restore_step(backup, snapshot, target, raw, existing.get(target), force=force))
    return plan


def restore_step(
    backup: BackupDataset,
    snapshot: Snapshot,
    target: str,
    raw: bool,
    there: BackupDataset | None,
    *,
    force: bool,
) -> Restore:
    if there is None:
        return Restore(backup, snapshot, target, raw, FULL)
    if any(s.guid == snapshot.guid for s in there.snapshots):
        return Restore(backup, snapshot, target, raw, SKIP)
    if there.resume_token and not there.snapshots:
        if resumes_to(there.resume_token) != snapshot.guid:
            raise Refused(f"{target} holds a partial receive of another snapshot: not touching "
                          "it (zfs recv -A it yourself if it is unwanted)")  # fmt: skip
        return Restore(backup, snapshot, target, raw, RESUME, token=there.resume_token)
    if not force:
        raise Refused(
            f"{target} exists: not restoring over it (--force rolls it back to the snapshot "
            "it shares with the backup; or choose another --into)"
        )
    held = {s.guid: s for s in backup.snapshots}
    common = [s for s in there.snapshots if s.guid in held]
    if not common:
        raise Refused(
            f"{target} exists and shares no snapshot with {backup.name}: even with --force "
            "zmake does not replace it (destroy or rename it yourself)"
        )
    return Restore(backup, snapshot, target, raw, ROLLBACK, base=held[common[-1].guid])


def resumes_to(token: str) -> int | None:
    from zmake.core.errors import ParseError
    from zmake.core.token import decode

    try:
        return decode(token).toguid
    except ParseError:
        return None


def restore_pool(
    runner: Runner,
    route: Route,
    spec: str,
    into: str,
    *,
    on_backup: bool = False,
    children: bool = True,
    force: bool = False,
    dry_run: bool = False,
) -> list[Restore]:
    """Plan and carry out; returns the plan (commands/drill.py verifies what it restored)."""
    name, _, wanted = spec.partition("@")
    root = dest_name(name.strip("/"), route.dest)
    back = route.restoring(into, on_backup=on_backup)
    receiver = back.target
    tree = zfs_calls.read_backup_tree(runner, back.source, route.dest)
    existing = zfs_calls.read_backup_tree(runner, receiver, into)
    plan = plan_restore(tree, root, into, existing, dest=route.dest, wanted=wanted or None,
                        children=children, force=force)  # fmt: skip
    where = receiver.where() or " on this machine"
    for step in plan:
        if step.action == SKIP:
            print(f"restore: {step.target} already holds @{step.snapshot.short}{where}")
            continue
        print(f"restore: {step.line()}{where}")
        if dry_run:
            continue
        ensure_parent(runner, receiver, step.target, existing)
        transfer(runner, back, step)
        existing = {**existing, step.target: step.backup}
    return plan


def ensure_parent(
    runner: Runner, side: Side, target: str, existing: Mapping[str, BackupDataset]
) -> None:
    """--into's parent, made if missing (an empty dataset): the restore's own place."""
    parent = parent_of(target)
    if parent is None or parent in existing:
        return
    if not zfs_calls.read_datasets(runner, side, [parent]):
        zfs_calls.control(runner, side, ["zfs", "create", "-p", parent])


def transfer(runner: Runner, back: Route, step: Restore) -> None:
    sender, receiver = back.source, back.target
    send = zfs_calls.located(sender, step.send())
    recv = zfs_calls.located(receiver, step.recv())
    if sender == receiver:  # both ends on one host: one pipeline there, not out and back
        stages = sender.stream([send, recv])
        meter = None
    else:
        meter = progress_argv(step.target)
        stages = replace(back, dest=step.target).pipeline(send, recv, meter)
    result = runner.pipeline(stages, passthrough=stages.index(meter) if meter else None)
    if not result.ok:
        culprit = next((s for s in result.stages if s.returncode != 0), result.stages[-1])
        raise TransferFailed(f"{step.target}: restore failed: {culprit.stderr.strip()} "
                             "(run zmake restore again to carry on)")  # fmt: skip


def progress_argv(name: str) -> Argv | None:
    if not sys.stderr.isatty() or shutil.which("pv") is None:
        return None
    return ["pv", "-f", "-c", "-N", name]
