"""`zmake umount`: unmount this source's backups on the receiving side (and nothing else
there). Every send target of a generated Makefile depends on it: a backup mounted by hand
changes (atime) and then refuses the next incremental."""

from __future__ import annotations

import argparse
from pathlib import Path

from zmake.cli.arguments import selection_of, settings_from, slot_count
from zmake.core.errors import UsageError
from zmake.core.model import dest_name
from zmake.settings import ensure_run_dir
from zmake.sides import zfs_argv
from zmake.sides.runner import Runner
from zmake.sides.zfs_calls import control
from zmake.targets import target_of


def run(args: argparse.Namespace, runner: Runner) -> int:
    settings = settings_from(args)
    selection = selection_of(args.pools, settings)
    if not selection.roots:
        raise UsageError("umount needs the source POOL or datasets whose backups to unmount")
    run_dir = ensure_run_dir(settings.run_dir)
    target = target_of(settings, selection.roots)

    def ours() -> set[str]:  # which datasets are ours: one `zfs list` of the source
        listed = control(runner, target.route.source, zfs_argv.names_argv(selection.roots))
        return {dest_name(name, target.route.dest) for name in listed.splitlines()
                if name in selection}  # fmt: skip

    lines = target.unmount(runner, run_dir, ours, slot_count(args))
    for line in lines or [f"umount: a {target.kind} target: nothing to unmount"]:
        print(line)
    if args.stamp:
        from zmake.reports.send import write_stamp

        write_stamp(Path(args.stamp), "unmounted\n")
    return 0
