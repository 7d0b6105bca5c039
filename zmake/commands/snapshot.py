"""`zmake snapshot`: one recursive, atomic snapshot of every given pool or dataset."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime

from zmake.cli.arguments import roots_of, settings_from
from zmake.core.errors import UsageError
from zmake.sides import zfs_argv, zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Side


def snapshot_name(name_format: str, now: datetime) -> str:
    name = now.astimezone(UTC).strftime(name_format)
    if not name or "@" in name or "/" in name or "#" in name:
        raise UsageError(f"--name {name_format!r} gives an invalid snapshot name {name!r}")
    return name


def snapshot(
    runner: Runner, side: Side, roots: Sequence[str], name_format: str, now: datetime
) -> str:
    """A single `zfs snapshot -r` call on the source side, so all roots are taken at once."""
    name = snapshot_name(name_format, now)
    zfs_calls.control(runner, side, zfs_argv.snapshot_argv(roots, name))
    return name


def run(args: argparse.Namespace, runner: Runner) -> int:
    from datetime import UTC, datetime

    settings = settings_from(args)
    pools = roots_of(args, settings, runner, changes=True)
    name = snapshot(
        runner, settings.source_side, pools, args.name or settings.name, datetime.now(UTC)
    )
    print(f"snapshot @{name} of {' '.join(pools)}")
    return 0
