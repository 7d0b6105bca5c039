"""Before a backup's first full stream: the datasets above it on the backup side.

zmake receives into exact names, never with `zfs recv -d` (which creates missing parents on
its own), so every parent of a backup is one zmake decided to make:

- a **placeholder**: an empty, never-mounted dataset marked `zmake:placeholder=<its own
  name>`. Children are sent before their parents, and the parent's first full stream later
  replaces its placeholder with `zfs recv -F`; only a marked placeholder is ever replaced
  (decide.is_placeholder), never a dataset of the backup host's own.
- **the parent itself, first**: ZFS never replaces an encrypted dataset (`recv -F`), so when
  the backup side is encrypted there (an encrypted parent on the backup host) or the source
  parent is encrypted (sent raw), a parent this run sends anyway gets its oldest snapshot
  now, before its child; its own make target sends the rest later."""

from __future__ import annotations

import sys

from zmake.core.decide import Action, Step, step_bytes
from zmake.core.errors import RemotePoolMissing
from zmake.core.model import Dataset, ancestors, is_within, parent_of, source_name
from zmake.reports.send import SendReport
from zmake.sides import stderr_errors, zfs_argv, zfs_calls

TYPE_CHECKING = False  # `typing` itself is not imported: every send would pay for it
if TYPE_CHECKING:
    from zmake.targets.pool.send import Sender


def parent_chain(backup: str, dest: str) -> list[str]:
    """The backup-side datasets that must exist before `backup` is received, outermost
    first: DEST and everything between it and `backup`."""
    return [name for name in ancestors(backup) if is_within(name, dest)]


def ensure_parents(sender: Sender, local: Dataset, report: SendReport) -> None:
    route = sender.route
    chain = parent_chain(sender.backup_name(local.name), route.dest)
    above = parent_of(route.dest)
    names = ([above] if above else []) + chain
    if not names:
        return
    existing = zfs_calls.read_datasets(sender.runner, route.target, names)
    if above is not None and above not in existing:
        raise RemotePoolMissing(
            f"{above}, the parent of --dest {route.dest}, does not exist{route.target.where()}"
        )
    encrypted = above is not None and existing[above].encrypted
    for name in chain:
        found = existing.get(name)
        if found is not None:
            encrypted = found.encrypted
        elif "/" not in name:
            raise RemotePoolMissing(f"receiving pool {name!r} does not exist{route.target.where()}")
        else:
            encrypted = make_parent(sender, source_name(name, route.dest, local.pool), name,
                                    encrypted=encrypted, report=report)  # fmt: skip


def make_parent(
    sender: Sender, source: str | None, backup: str, *, encrypted: bool, report: SendReport
) -> bool:
    """Make `backup` exist; returns whether it is encrypted (for the ones below it)."""
    if source is not None and source in sender.options.selection:
        parent = zfs_calls.read_source(sender.runner, sender.route.source, source)
        if parent.newest is not None and (encrypted or parent.encrypted):
            send_first(sender, parent, report)
            return encrypted or parent.encrypted
    if sender.options.dry_run:
        print(zfs_argv.pipeline_text([sender.route.target.control(
            zfs_argv.create_placeholder_argv(backup))]))  # fmt: skip
        return encrypted
    argv = zfs_argv.create_placeholder_argv(backup)
    result = zfs_calls.run(sender.runner, sender.route.target, argv)
    if result.returncode != 0 and not stderr_errors.ALREADY_EXISTS.search(result.stderr):
        raise zfs_calls.failure(sender.route.target, argv, result)
    return encrypted


def send_first(sender: Sender, parent: Dataset, report: SendReport) -> None:
    """The parent's oldest snapshot in full, unless another send did it meanwhile."""
    from zmake.sides.locks import dataset_lock

    with dataset_lock(sender.run_dir, parent.name, wait=True):
        backup = sender.backup_name(parent.name)
        if zfs_calls.read_backup(sender.runner, sender.route.target, backup) is not None:
            return
        step = Step(Action.FULL, to_snapshot=parent.snapshots[0])
        print(f"{report.dataset}: sending its parent {parent.name} first", file=sys.stderr)
        sender.run_stream(step, parent, report, step_bytes(step, parent))
        report.actions[-1] = f"parent {parent.name} {report.actions[-1]}"
