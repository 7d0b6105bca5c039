"""Read either side's state and run control commands there, with typed errors.

Every function takes the `Side` the command runs on, so push, pull and a third machine use
the same reads (see sides/side.py)."""

from __future__ import annotations

from collections.abc import Sequence

from zmake.core.errors import ParseError, RemotePoolMissing, ZmakeError
from zmake.core.model import BackupDataset, Dataset, pool_of
from zmake.core.parse import parse_backup, parse_local_dataset
from zmake.core.prunable import SideView, parse_side
from zmake.sides import stderr_errors, zfs_argv
from zmake.sides.runner import Result, Runner
from zmake.sides.side import Side

COMMAND_NOT_FOUND = 127
# The zfs found on each host (by Side.key) in this process, when it is not `zfs` on PATH.
zfs_found: dict[str, str] = {}


def located(side: Side, argv: list[str]) -> list[str]:
    """`argv` with the zfs that works on `side`."""
    if argv[:1] == ["zfs"] and side.key in zfs_found:
        return [zfs_found[side.key], *argv[1:]]
    return argv


def run(runner: Runner, side: Side, argv: list[str]) -> Result:
    """Run a control command on `side`; never raises for its exit status. When the remote
    shell finds no `zfs`, the usual places are tried, and the one that works is kept."""
    result = runner.run(side.control(located(side, argv)))
    if result.returncode != COMMAND_NOT_FOUND or side.host is None or argv[:1] != ["zfs"]:
        return result
    if side.key in zfs_found:
        return result
    for candidate in zfs_argv.ZFS_ELSEWHERE:
        retry = runner.run(side.control([candidate, *argv[1:]]))
        if retry.returncode != COMMAND_NOT_FOUND:
            zfs_found[side.key] = candidate
            return retry
    return result


def run_each(runner: Runner, side: Side, argvs: Sequence[list[str]]) -> list[Result]:
    """Control commands on `side`, side by side; never raises for their exit status."""
    return runner.run_all([side.control(located(side, argv)) for argv in argvs])


def failure(side: Side, argv: list[str], result: Result) -> ZmakeError:
    """The typed error of a control command that failed on `side`."""
    return stderr_errors.control_error(
        result.argv, result.returncode, result.stderr, side.host, command=argv, user=user_of(side)
    )


def user_of(side: Side) -> str:
    if side.host is not None:
        return side.host.rpartition("@")[0] or "<the ssh user>"
    import getpass

    return getpass.getuser()


def control(runner: Runner, side: Side, argv: list[str]) -> str:
    """Run a control command on `side`; its stdout, or a typed error."""
    result = run(runner, side, argv)
    if result.returncode != 0:
        raise failure(side, argv, result)
    return result.stdout


def read_source(runner: Runner, side: Side, name: str) -> Dataset:
    """One source dataset with its snapshots and bookmarks (one `zfs get`)."""
    return parse_local_dataset(control(runner, side, zfs_argv.local_dataset_argv(name)), name)


def read_sources(runner: Runner, side: Side, names: Sequence[str]) -> dict[str, Dataset]:
    """Several source datasets in one `zfs get` (a batch of sends). Empty when that call
    fails (a dataset gone, a refusal): each send then reads its own, with the typed error."""
    result = run(runner, side, zfs_argv.local_datasets_argv(names))
    if result.returncode != 0:
        return {}
    found = {}
    for name in names:
        try:
            found[name] = parse_local_dataset(result.stdout, name)
        except ParseError:
            continue  # read alone, with the error that read gives
    return found


def read_backups(
    runner: Runner, side: Side, names: Sequence[str]
) -> dict[str, BackupDataset | None]:
    """Several backups in one `zfs list` (a batch of sends): None for those that do not exist.
    Empty when the call failed for any other reason: each send then reads its own."""
    result = run(runner, side, zfs_argv.backups_argv(names))
    if result.returncode != 0:
        missing = stderr_errors.only_missing(result.stderr)
        if result.returncode == stderr_errors.SSH_FAILED or missing is None:
            return {}
    found = parse_backup(result.stdout)
    return {name: found.get(name) for name in names}


def read_backup(runner: Runner, side: Side, name: str) -> BackupDataset | None:
    """The backup's state of `name`, or None when it does not exist there."""
    argv = zfs_argv.remote_dataset_argv(name)
    result = run(runner, side, argv)
    if result.returncode != 0:
        if stderr_errors.only_missing_dataset(result, name):
            return None
        raise failure(side, argv, result)
    return parse_backup(result.stdout).get(name)


def read_backup_tree(runner: Runner, side: Side, dest: str) -> dict[str, BackupDataset]:
    """Everything under the receiving dataset, in one call (estimates, status, prune).
    Empty when it does not exist yet (zmake creates it); an error when its pool is missing."""
    argv = zfs_argv.remote_tree_argv(dest)
    result = run(runner, side, argv)
    if result.returncode == 0:
        return parse_backup(result.stdout)
    if stderr_errors.only_missing_dataset(result, dest):
        if "/" in dest and read_datasets(runner, side, [pool_of(dest)]):
            return {}
        raise RemotePoolMissing(f"receiving pool {pool_of(dest)!r} does not exist{side.where()}")
    raise failure(side, argv, result)


def read_datasets(runner: Runner, side: Side, names: Sequence[str]) -> dict[str, BackupDataset]:
    """Which of `names` exist on `side` (filesystems and volumes, without snapshots)."""
    argv = zfs_argv.datasets_argv(names)
    result = run(runner, side, argv)
    ssh_failed = result.returncode == stderr_errors.SSH_FAILED
    if result.returncode != 0 and (ssh_failed or stderr_errors.only_missing(result.stderr) is None):
        raise failure(side, argv, result)
    return parse_backup(result.stdout)


def read_prune_view(runner: Runner, side: Side, root: str) -> SideView:
    """What prune reads of one side under `root`: empty when nothing is there yet."""
    argv = zfs_argv.prune_list_argv(root)
    result = run(runner, side, argv)
    if result.returncode != 0:
        if stderr_errors.only_missing_dataset(result, root):
            return SideView()  # nothing backed up yet
        raise failure(side, argv, result)
    return parse_side(result.stdout, "zfs list (prune)")
