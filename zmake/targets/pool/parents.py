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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zmake.core.decide import Action, Step, step_bytes
from zmake.core.errors import RemotePoolMissing
from zmake.core.model import Dataset, ancestors, dest_name, is_within, parent_of, source_name
from zmake.core.plan import Selection
from zmake.reports.send import SendReport
from zmake.sides import stderr_errors, zfs_argv, zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Route

# sends one step of a dataset as the sender does: (step, dataset, report, expected bytes)
StreamRunner = Callable[[Step, Dataset, SendReport, int], None]


def parent_chain(backup: str, dest: str) -> list[str]:
    """The backup-side datasets that must exist before `backup` is received, outermost
    first: DEST and everything between it and `backup`."""
    return [name for name in ancestors(backup) if is_within(name, dest)]


@dataclass(frozen=True)
class Parents:
    """What making a backup's parents needs of the send that asks for them."""

    runner: Runner
    route: Route
    selection: Selection  # a parent in it is sent first when it must be (encryption)
    run_dir: Path  # where the parent's lock lives
    run_stream: StreamRunner
    dry_run: bool = False

    def ensure(self, local: Dataset, report: SendReport) -> None:
        route = self.route
        chain = parent_chain(dest_name(local.name, route.dest), route.dest)
        above = parent_of(route.dest)
        names = ([above] if above else []) + chain
        if not names:
            return
        existing = zfs_calls.read_datasets(self.runner, route.target, names)
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
                raise RemotePoolMissing(
                    f"receiving pool {name!r} does not exist{route.target.where()}"
                )
            else:
                encrypted = self.make(source_name(name, route.dest, local.pool), name,
                                      encrypted=encrypted, report=report)  # fmt: skip

    def make(self, source: str | None, backup: str, *, encrypted: bool, report: SendReport) -> bool:
        """Make `backup` exist; returns whether it is encrypted (for the ones below it)."""
        if source is not None and source in self.selection:
            parent = zfs_calls.read_source(self.runner, self.route.source, source)
            if parent.newest is not None and (encrypted or parent.encrypted):
                self.send_first(parent, report)
                return encrypted or parent.encrypted
        argv = zfs_argv.create_placeholder_argv(backup)
        if self.dry_run:
            print(zfs_argv.pipeline_text([self.route.target.control(argv)]))
            return encrypted
        result = zfs_calls.run(self.runner, self.route.target, argv)
        if result.returncode != 0 and not stderr_errors.ALREADY_EXISTS.search(result.stderr):
            raise zfs_calls.failure(self.route.target, argv, result)
        return encrypted

    def send_first(self, parent: Dataset, report: SendReport) -> None:
        """The parent's oldest snapshot in full, unless another send did it meanwhile."""
        from zmake.sides.locks import dataset_lock

        with dataset_lock(self.run_dir, parent.name, wait=True, host=self.route.source.host):
            backup = dest_name(parent.name, self.route.dest)
            if zfs_calls.read_backup(self.runner, self.route.target, backup) is not None:
                return
            step = Step(Action.FULL, to_snapshot=parent.snapshots[0])
            print(f"{report.dataset}: sending its parent {parent.name} first", file=sys.stderr)
            self.run_stream(step, parent, report, step_bytes(step, parent))
            report.actions[-1] = f"parent {parent.name} {report.actions[-1]}"
