"""`zmake restore`: bring a backup back, from a pool or from a directory of stream files."""

from __future__ import annotations

import argparse

from zmake.cli.arguments import settings_from
from zmake.sides.runner import Runner
from zmake.targets import directory_named, target_of
from zmake.targets.base import RestoreRequest


def run(args: argparse.Namespace, runner: Runner) -> int:
    settings, names = directory_named(settings_from(args), args.names)
    request = RestoreRequest(into=args.into.strip("/"), on_backup=args.on_backup,
                             children=not args.no_children, force=args.force,
                             dry_run=args.dry_run)  # fmt: skip
    return target_of(settings).restore(runner, names, request)
