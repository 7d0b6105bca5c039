"""`zmake restore`: bring a backup back, from a pool or from a directory of stream files."""

from __future__ import annotations

import argparse

from zmake.cli.arguments import directory_of, settings_from
from zmake.core.errors import UsageError
from zmake.sides.runner import Runner


def run(args: argparse.Namespace, runner: Runner) -> int:
    settings = settings_from(args)
    directory, names = directory_of(args, settings)
    into = args.into.strip("/")
    if directory is not None:
        from zmake.targets.directory.restore import restore

        return restore(runner, settings.target_side, directory, names, into,
                       dry_run=args.dry_run)  # fmt: skip
    from zmake.targets.pool.restore import restore_pool

    if len(names) != 1:
        raise UsageError("restore one DATASET[@SNAPSHOT] at a time (its children come along)")
    restore_pool(runner, settings.route(), names[0], into, on_backup=args.on_backup,
                 children=not args.no_children, force=args.force, dry_run=args.dry_run)  # fmt: skip
    return 0
