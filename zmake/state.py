"""Read either side's state and run control commands there, with typed errors.

Every function takes the `Side` the command runs on, so push, pull and a third machine use
the same reads (see sides.py)."""

from __future__ import annotations

from collections.abc import Sequence

from zmake import commands, refine
from zmake.errors import RemotePoolMissing
from zmake.model import BackupDataset, Dataset, pool_of
from zmake.parse import parse_backup, parse_local_dataset
from zmake.runner import Runner
from zmake.sides import Side


def control(runner: Runner, side: Side, argv: list[str]) -> str:
    """Run a control command on `side`; its stdout, or a typed error."""
    result = runner.run(side.control(argv))
    if result.returncode != 0:
        raise refine.control_error(result.argv, result.returncode, result.stderr, side.host)
    return result.stdout


def read_source(runner: Runner, side: Side, name: str) -> Dataset:
    """One source dataset with its snapshots and bookmarks (one `zfs get`)."""
    return parse_local_dataset(control(runner, side, commands.local_dataset_argv(name)), name)


def read_backup(runner: Runner, side: Side, name: str) -> BackupDataset | None:
    """The backup's state of `name`, or None when it does not exist there."""
    result = runner.run(side.control(commands.remote_dataset_argv(name)))
    if result.returncode != 0:
        if refine.missing_dataset(result.stderr) == name and result.returncode != 255:
            return None
        raise refine.control_error(result.argv, result.returncode, result.stderr, side.host)
    return parse_backup(result.stdout).get(name)


def read_backup_tree(runner: Runner, side: Side, dest: str) -> dict[str, BackupDataset]:
    """Everything under the receiving dataset, in one call (estimates, status, prune).
    Empty when it does not exist yet (zmake creates it); an error when its pool is missing."""
    result = runner.run(side.control(commands.remote_tree_argv(dest)))
    if result.returncode == 0:
        return parse_backup(result.stdout)
    if refine.missing_dataset(result.stderr) == dest and result.returncode != 255:
        if "/" in dest and read_datasets(runner, side, [pool_of(dest)]):
            return {}
        raise RemotePoolMissing(f"receiving pool {pool_of(dest)!r} does not exist{side.where()}")
    raise refine.control_error(result.argv, result.returncode, result.stderr, side.host)


def read_datasets(runner: Runner, side: Side, names: Sequence[str]) -> dict[str, BackupDataset]:
    """Which of `names` exist on `side` (filesystems and volumes, without snapshots)."""
    result = runner.run(side.control(commands.datasets_argv(names)))
    if result.returncode != 0 and (
        result.returncode == 255 or refine.only_missing(result.stderr) is None
    ):
        raise refine.control_error(result.argv, result.returncode, result.stderr, side.host)
    return parse_backup(result.stdout)
