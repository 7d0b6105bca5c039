"""A directory of stream files as the backup side (`--to-dir DIR`, on this machine or over
ssh): chains of compressed streams with manifests (core/chain.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from zmake.core.errors import UsageError
from zmake.core.model import BackupDataset, Dataset
from zmake.core.prunable import SideView, SnapshotInfo
from zmake.core.render import MakeVariable
from zmake.reports.send import SendReport
from zmake.sides.runner import Runner
from zmake.sides.side import Route
from zmake.targets.base import RestoreRequest, SendRequest, VerifyRequest


@dataclass(frozen=True)
class DirectoryTarget:
    route: Route  # route.dest is the directory
    compress: str = "none"
    full_every: int | None = None  # a new full stream after N incrementals
    recovery: int | None = None  # percent of par2 recovery data per file
    spelled: str = ""  # the directory as given (the Makefile keeps it so, and its stamps)
    kind: str = "directory"
    plans_from_backups: bool = False
    prunes_snapshots: bool = False  # files are pruned by whole chains (--keep-chains)

    def read_backups(
        self, runner: Runner, sources: Mapping[str, Dataset]
    ) -> dict[str, BackupDataset]:
        from zmake.core.chain import as_backups
        from zmake.targets.directory.send import read_chains

        chains = read_chains(runner, self.route.target, self.route.dest, None)
        return as_backups(chains, self.route.dest, sources)

    def prune_view(self, runner: Runner) -> SideView:
        """Per dataset, the snapshots its newest whole chain holds: its last one stays."""
        view = SideView()
        for name, backup in self.read_backups(runner, {}).items():
            view.snapshots[name] = [SnapshotInfo(s.name, s.guid, s.createtxg)
                                    for s in backup.snapshots]  # fmt: skip
        return view

    def sender(
        self, runner: Runner, request: SendRequest, run_dir: Path
    ) -> Callable[[str], SendReport]:
        from zmake.targets.directory.send import FileOptions, FileSender

        # Files are always compressed: zstd unless --compress names another compressor.
        compressor = "zstd" if self.compress == "none" else self.compress
        files = FileOptions(self.route, compressor=compressor, full_every=self.full_every,
                            recovery=self.recovery, wait_for_lock=request.wait_for_lock,
                            slots=request.slots)  # fmt: skip
        return FileSender(runner, files, run_dir).send

    def unmount(
        self, runner: Runner, run_dir: Path, ours: Callable[[], set[str]], slots: int
    ) -> list[str]:
        return []  # files are never mounted

    def drop_chains(self, runner: Runner, keep: int, *, assume_yes: bool, dry_run: bool) -> int:
        from zmake.targets.directory.send import drop_chains

        if keep < 1:
            raise UsageError("--keep-chains K (K >= 1) prunes a --to-dir DIR target")
        return drop_chains(runner, self.route.target, self.route.dest, keep,
                           assume_yes=assume_yes, dry_run=dry_run)  # fmt: skip

    def make_variables(self) -> list[MakeVariable]:
        comment = (
            "A directory target: stream files in TO_DIR (on REMOTE, if set) instead of a pool."
        )
        directory = self.spelled or self.route.dest
        return [
            MakeVariable("TO_DIR", directory, "ZMAKE_TO_DIR", comment, in_stamps=True),
            MakeVariable("FULL_EVERY", str(self.full_every or ""), "ZMAKE_FULL_EVERY"),
            MakeVariable("RECOVERY", str(self.recovery or ""), "ZMAKE_RECOVERY"),
        ]

    def verify(self, runner: Runner, names: list[str], request: VerifyRequest) -> int:
        from zmake.targets.directory.verify import verify

        return verify(runner, self.route.target, self.route.dest, deep=request.deep,
                      repair=request.repair, as_json=request.as_json)  # fmt: skip

    def restore(self, runner: Runner, names: list[str], request: RestoreRequest) -> int:
        from zmake.targets.directory.restore import restore

        return restore(runner, self.route.target, self.route.dest, names, request.into,
                       dry_run=request.dry_run)  # fmt: skip
