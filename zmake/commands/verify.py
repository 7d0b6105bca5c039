"""`zmake verify`: prove a backup restores, on a pool or a directory of stream files."""

from __future__ import annotations

import argparse

from zmake.cli.arguments import directory_of, settings_from
from zmake.core.errors import UsageError
from zmake.sides.runner import Runner


def run(args: argparse.Namespace, runner: Runner) -> int:
    settings = settings_from(args)
    directory, names = directory_of(args, settings)
    if directory is not None:
        from zmake.targets.directory.verify import verify

        return verify(runner, settings.target_side, directory, deep=args.deep,
                      repair=args.repair, as_json=args.json)  # fmt: skip
    from zmake.core.contents import every_from_sample
    from zmake.targets.pool.verify import verify_pool

    names = names or list(settings.pools)
    if not names:
        raise UsageError("verify needs DATASET… (or a --to-dir DIR)")
    every = every_from_sample(args.sample)
    return verify_pool(runner, settings.route(names), names, every, as_json=args.json)
