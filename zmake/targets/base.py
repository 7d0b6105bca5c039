"""The backup side as a type: what every workflow needs of whatever receives the backups.

The workflows (send, status, check, prune, umount, backup, generate, verify, restore) hold
no branch on the kind of target: they ask `targets.target_of` for one and call it. The
planner never learns where a side is (zrepl's Endpoint/Sender/Receiver split, the model)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from zmake.core.model import BackupDataset, Dataset
from zmake.core.plan import Selection
from zmake.core.prunable import SideView
from zmake.core.render import MakeVariable
from zmake.reports.send import SendReport
from zmake.sides.runner import Runner
from zmake.sides.side import Route


@dataclass(frozen=True)
class SendRequest:
    """What one `zmake send DATASET` asks, whatever receives it."""

    selection: Selection
    force: bool = False
    progress: bool = False
    dry_run: bool = False
    wait_for_lock: bool = True
    slots: int = 0
    batch: tuple[str, ...] = ()  # every dataset this process sends, in order
    stall_after: float | None = None  # stop a stream that moved no data for this long


@dataclass(frozen=True)
class VerifyRequest:
    every: int = 1  # pools: hash every Nth file (--sample)
    deep: bool = False  # directories: the streams too
    repair: bool = False  # directories: par2
    as_json: bool = False


@dataclass(frozen=True)
class RestoreRequest:
    into: str
    on_backup: bool = False
    children: bool = True
    force: bool = False
    dry_run: bool = False


class Target(Protocol):
    """One backup side of a route (`route.dest` names where on it)."""

    @property
    def route(self) -> Route: ...

    @property
    def kind(self) -> str:
        """In messages: "pool", "directory"."""
        ...

    @property
    def plans_from_backups(self) -> bool:
        """generate/backup --check-remote read it before planning."""
        ...

    @property
    def prunes_snapshots(self) -> bool:
        """prune destroys its snapshots (else it drops whole chains)."""
        ...

    def read_backups(
        self, runner: Runner, sources: Mapping[str, Dataset]
    ) -> dict[str, BackupDataset]:
        """The backups it holds, by backup name, as the planner sees them."""
        ...

    def prune_view(self, runner: Runner) -> SideView:
        """Its snapshots, for prune's judgement of the source's (never the base they need)."""
        ...

    def sender(
        self, runner: Runner, request: SendRequest, run_dir: Path
    ) -> Callable[[str], SendReport]:
        """`zmake send DATASET`: bring the backup of one dataset up to date."""
        ...

    def unmount(
        self, runner: Runner, run_dir: Path, ours: Callable[[], set[str]], slots: int
    ) -> list[str]:
        """Unmount the mounted backups of `ours()` (asked only if it can hold mounts): a line
        each; none when this kind has nothing to unmount."""
        ...

    def drop_chains(self, runner: Runner, keep: int, *, assume_yes: bool, dry_run: bool) -> int:
        """prune --keep-chains K."""
        ...

    def make_variables(self) -> list[MakeVariable]:
        """The Makefile's variables of this kind, exported to every `zmake send`."""
        ...

    def verify(self, runner: Runner, names: list[str], request: VerifyRequest) -> int: ...

    def restore(self, runner: Runner, names: list[str], request: RestoreRequest) -> int: ...
