"""`zmake umount`: unmount this source's backups on the receiving side, and nothing else.

Backups are received unmounted (`-u`, `canmount=noauto`), but one mounted by hand changes
(atime) and then refuses the next incremental. Only the backups of this run's datasets (the
names they are received as) are unmounted, children first; the backup host's own datasets are
never touched, and a busy backup is reported without stopping the other sends."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from zmake.cli.arguments import selection_of, settings_from, slot_count
from zmake.core.errors import RemotePoolMissing, UsageError
from zmake.core.model import dest_name, pool_of
from zmake.core.plan import Selection
from zmake.settings import Settings, ensure_run_dir
from zmake.sides import stderr_errors, zfs_argv, zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side
from zmake.sides.slots import ssh_slot


def backup_names(sources: Iterable[str], selection: Selection, dest: str) -> set[str]:
    return {dest_name(name, dest) for name in sources if name in selection}


def unmount_backups(
    runner: Runner, run_dir: Path, route: Route, ours: set[str], slots: int
) -> list[str]:
    """Unmount the mounted ones of `ours` through a slot: one line each (or "nothing")."""
    with ssh_slot(runner, run_dir, route.target, slots) as side:
        lines = [unmount(runner, side, name) for name in mounted(runner, side, route.dest, ours)]
    return lines or [f"{route.dest}: none of this source's backups is mounted"]


def mounted(runner: Runner, side: Side, dest: str, ours: set[str]) -> list[str]:
    argv = zfs_argv.mounts_argv(dest)
    result = zfs_calls.run(runner, side, argv)
    if result.returncode != 0:
        if stderr_errors.missing_dataset(result.stderr) == dest and result.returncode != 255:
            if "/" in dest:
                return []  # nothing received yet
            raise RemotePoolMissing(
                f"receiving pool {pool_of(dest)!r} does not exist{side.where()}"
            )
        raise stderr_errors.control_error(result.argv, result.returncode, result.stderr, side.host)
    rows = [line.split("\t") for line in result.stdout.splitlines() if line]
    found = [row[0] for row in rows if len(row) == 2 and row[1] == "yes" and row[0] in ours]
    return sorted(found, reverse=True)  # a child sorts after its parent: unmounted first


def unmount(runner: Runner, side: Side, name: str) -> str:
    argv = zfs_argv.unmount_argv(name)
    result = zfs_calls.run(runner, side, argv)
    if result.returncode == 0:
        return f"unmounted {name}"
    if result.returncode == stderr_errors.SSH_FAILED and side.host is not None:
        raise zfs_calls.failure(side, argv, result)
    line = f"{name}: not unmounted ({stderr_errors.first_line(result.stderr)}); its send may fail"
    print(f"zmake: {line}", file=sys.stderr)
    return line


def unmount_selection(
    runner: Runner, run_dir: Path, settings: Settings, selection: Selection, slots: int
) -> list[str]:
    """`zmake umount`: which datasets are ours comes from one `zfs list` of the source."""
    from zmake.sides.zfs_calls import control

    route = settings.route(selection.roots)
    listed = control(runner, route.source, zfs_argv.names_argv(selection.roots))
    ours = backup_names(listed.splitlines(), selection, route.dest)
    return unmount_backups(runner, run_dir, route, ours, slots)


def run(args: argparse.Namespace, runner: Runner) -> int:

    settings = settings_from(args)
    selection = selection_of(args.pools, settings)
    if not selection.roots:
        raise UsageError("umount needs the source POOL or datasets whose backups to unmount")
    run_dir = ensure_run_dir(settings.run_dir)
    if settings.to_dir:
        print("umount: a directory target: nothing to unmount")
    else:
        for line in unmount_selection(runner, run_dir, settings, selection, slot_count(args)):
            print(line)
    if args.stamp:
        from zmake.reports.send import write_stamp

        write_stamp(Path(args.stamp), "unmounted\n")
    return 0
