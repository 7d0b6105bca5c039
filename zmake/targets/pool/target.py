"""A pool as the backup side: `zfs recv` of each next stream into `route.dest`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from zmake.core.errors import UsageError
from zmake.core.model import BackupDataset, Dataset
from zmake.core.prunable import SideView
from zmake.core.render import MakeVariable
from zmake.reports.send import SendReport
from zmake.sides import zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Route
from zmake.targets.base import RestoreRequest, SendRequest, VerifyRequest


@dataclass(frozen=True)
class PoolTarget:
    route: Route
    kind: str = "pool"
    plans_from_backups: bool = True
    prunes_snapshots: bool = True

    def read_backups(
        self, runner: Runner, sources: Mapping[str, Dataset]
    ) -> dict[str, BackupDataset]:
        return zfs_calls.read_backup_tree(runner, self.route.target, self.route.dest)

    def prune_view(self, runner: Runner) -> SideView:
        return zfs_calls.read_prune_view(runner, self.route.target, self.route.dest)

    def sender(
        self, runner: Runner, request: SendRequest, run_dir: Path
    ) -> Callable[[str], SendReport]:
        from zmake.targets.pool.send import Sender, SendOptions

        options = SendOptions(route=self.route, selection=request.selection,
                              force=request.force, progress=request.progress,
                              dry_run=request.dry_run, wait_for_lock=request.wait_for_lock,
                              slots=request.slots, batch=request.batch,
                              stall_after=request.stall_after)  # fmt: skip
        return Sender(runner, options, run_dir).send

    def unmount(
        self, runner: Runner, run_dir: Path, ours: Callable[[], set[str]], slots: int
    ) -> list[str]:
        from zmake.targets.pool.unmount import unmount_backups

        return unmount_backups(runner, run_dir, self.route, ours(), slots)

    def drop_chains(self, runner: Runner, keep: int, *, assume_yes: bool, dry_run: bool) -> int:
        raise UsageError("--keep-chains K (K >= 1) prunes a --to-dir DIR target")

    def make_variables(self) -> list[MakeVariable]:
        return []

    def verify(self, runner: Runner, names: list[str], request: VerifyRequest) -> int:
        from zmake.targets.pool.verify import verify_pool

        if not names:
            raise UsageError("verify needs DATASET… (or a --to-dir DIR)")
        return verify_pool(runner, self.route, names, request.every, as_json=request.as_json)

    def restore(self, runner: Runner, names: list[str], request: RestoreRequest) -> int:
        from zmake.targets.pool.restore import restore_pool

        if len(names) != 1:
            raise UsageError("restore one DATASET[@SNAPSHOT] at a time (its children come along)")
        restore_pool(runner, self.route, names[0], request.into, on_backup=request.on_backup,
                     children=request.children, force=request.force,
                     dry_run=request.dry_run)  # fmt: skip
        return 0
