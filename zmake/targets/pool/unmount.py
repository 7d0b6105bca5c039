"""Unmount this source's backups in a pool on the receiving side, and nothing else.

Backups are received unmounted (`-u`, `canmount=noauto`), but one mounted by hand changes
(atime) and then refuses the next incremental. Only the backups of this run's datasets (the
names they are received as) are unmounted, children first; the backup host's own datasets are
never touched, and a busy backup is reported without stopping the other sends."""

from __future__ import annotations

import sys
from pathlib import Path

from zmake.core.errors import RemotePoolMissing
from zmake.core.model import pool_of
from zmake.sides import stderr_errors, zfs_argv, zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side
from zmake.sides.slots import ssh_slot


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
        if stderr_errors.only_missing_dataset(result, dest):
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
    if stderr_errors.unreachable(result, side.host):
        raise zfs_calls.failure(side, argv, result)
    line = f"{name}: not unmounted ({stderr_errors.first_line(result.stderr)}); its send may fail"
    print(f"zmake: {line}", file=sys.stderr)
    return line
