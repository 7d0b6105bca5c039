"""`zmake capture`: record the zfs output that generate reads (--from-file, tests, bugs)."""

from __future__ import annotations

import argparse
import shlex

from zmake.cli.arguments import emit, roots_of, settings_from
from zmake.sides.runner import Runner


def run(args: argparse.Namespace, runner: Runner) -> int:
    from zmake.core.parse import render_capture
    from zmake.sides import source_pools, zfs_argv

    settings = settings_from(args)
    pools = roots_of(args, settings, runner)
    capture = source_pools.read_live(runner, settings.source_side, pools, with_version=True)
    text = render_capture(
        capture,
        shlex.join(zfs_argv.source_list_argv(pools)),
        shlex.join(zfs_argv.source_get_argv(pools)),
    )
    emit(text, args.output)
    return 0
