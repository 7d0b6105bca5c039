"""Several sends in one `zmake send A B C` (a batch of small datasets, core/batch.py): one
interpreter, one read of the sources and one of the backups for all of them.

The batch's dataset locks are all taken before those reads (in name order, so two batches
never wait for each other), so what was read stays what each send would have read itself.
A member that is not in a read (the call failed: a dataset gone, a refusal) is read alone,
with the typed error that read gives."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from zmake.core.model import BackupDataset, Dataset
from zmake.sides import zfs_calls
from zmake.sides.locks import dataset_lock
from zmake.sides.runner import Runner
from zmake.sides.side import Side
from zmake.targets.pool.bookmarks import keep_bookmarks


class Batch:
    def __init__(
        self, runner: Runner, names: Sequence[str], run_dir: Path, wait: bool, host: str | None
    ) -> None:
        self.runner = runner
        self.host = host  # the source's: the dataset locks are per source host
        self.names = tuple(names) if len(names) > 1 else ()
        self.run_dir = run_dir
        self.wait = wait
        self.held: ExitStack | None = None
        self.sources: dict[str, Dataset] | None = None
        self.backups: dict[str, BackupDataset | None] | None = None
        self.bookmarks_due: list[tuple[Dataset, BackupDataset]] = []

    @contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """This dataset's lock; in a batch, every member's from the first send to the last."""
        if name not in self.names:
            with dataset_lock(self.run_dir, name, wait=self.wait, host=self.host):
                yield
            return
        if self.held is None:
            with ExitStack() as taking:
                for member in sorted(self.names):
                    lock = dataset_lock(self.run_dir, member, wait=self.wait, host=self.host)
                    taking.enter_context(lock)
                self.held = taking.pop_all()  # all of them, or none (a busy one raised)
        try:
            yield
        finally:
            if name == self.names[-1]:
                self.held.close()

    def source(self, side: Side, name: str) -> Dataset:
        if name in self.names and self.sources is None:
            self.sources = zfs_calls.read_sources(self.runner, side, self.names)
        known = (self.sources or {}).pop(name, None)
        return known if known is not None else zfs_calls.read_source(self.runner, side, name)

    def backup(self, side: Side, name: str, members: Sequence[str]) -> BackupDataset | None:
        """`name`'s backup; `members` are the batch's backup names, read together once."""
        if self.names and name in members and self.backups is None:
            self.backups = zfs_calls.read_backups(self.runner, side, members)
        if self.backups is not None and name in self.backups:
            return self.backups.pop(name)
        return zfs_calls.read_backup(self.runner, side, name)

    def bookmark_later(self, local: Dataset, backup: BackupDataset) -> None:
        self.bookmarks_due.append((local, backup))

    def keep_bookmarks(self, side: Side, name: str) -> None:
        """zmake's bookmarks of the sends so far, all at once, after the batch's last send
        (or a send of its own): side by side, their pool syncs overlap."""
        if self.names and name != self.names[-1]:
            return
        due, self.bookmarks_due = self.bookmarks_due, []
        if due:
            keep_bookmarks(self.runner, side, due)
