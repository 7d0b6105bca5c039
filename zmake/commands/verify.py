"""`zmake verify`: prove a backup restores, on a pool or a directory of stream files."""

from __future__ import annotations

import argparse

from zmake.cli.arguments import settings_from
from zmake.core.contents import every_from_sample
from zmake.sides.runner import Runner
from zmake.targets import directory_named, target_of
from zmake.targets.base import VerifyRequest


def run(args: argparse.Namespace, runner: Runner) -> int:
    settings, names = directory_named(settings_from(args), args.names)
    names = names or list(settings.pools)
    request = VerifyRequest(every=every_from_sample(args.sample), deep=args.deep,
                            repair=args.repair, as_json=args.json)  # fmt: skip
    return target_of(settings, names).verify(runner, names, request)
