"""`zmake drill DATASET`: the restore drill as one command a timer can run.

The newest backup of DATASET is restored (targets/pool/restore.py) into a scratch dataset of its
own — `<backup pool>/zmake-drill-<time>` on the backup host, or below --scratch, on the
source with --on source —, its content compared with the source's same snapshot
(targets/pool/verify.py), and the scratch copy destroyed, whatever happened: it leaves nothing."""

from __future__ import annotations

import argparse
import os
import time

from zmake.cli.arguments import settings_from
from zmake.core.errors import Refused, ZmakeError
from zmake.core.model import pool_of
from zmake.sides import zfs_argv, zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side
from zmake.targets import route_of
from zmake.targets.pool.restore import restore_pool
from zmake.targets.pool.verify import compare_snapshot, exit_code, read_places

SCRATCH_PREFIX = "zmake-drill-"


def drill(
    runner: Runner, route: Route, dataset: str, *, scratch: str | None, on_source: bool, every: int
) -> int:
    """Exit 0 when restored and the same, 1 when anything failed or differed, 3 when the
    restore worked but the content could not be read here (a raw backup without its key)."""
    side = route.restoring(dataset, on_backup=not on_source).target
    parent = scratch or pool_of(dataset if on_source else route.dest)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    place = f"{parent}/{SCRATCH_PREFIX}{stamp}-{os.getpid()}"
    found = zfs_calls.read_datasets(runner, side, [parent, place])
    if parent not in found:  # made by nobody but the user: a drill creates only its copy
        raise Refused(f"{parent}{side.where()} does not exist: give --scratch an existing dataset")
    if place in found:  # never remove what this drill did not make
        raise Refused(f"{place}{side.where()} exists already: not drilling into it")
    print(f"drill: restoring the newest backup of {dataset} into {place}{side.where()}")
    try:
        plan = restore_pool(runner, route, dataset, place, on_backup=not on_source,
                            children=False)  # fmt: skip
        short = plan[0].snapshot.short
        sources = read_places(runner, route.source, dataset)
        copies = read_places(runner, side, place)
        verdict = compare_snapshot(runner, sources[dataset], copies[place], short, every)
    except ZmakeError as exc:
        print(f"drill: {dataset}: FAILED: {exc}")
        return 1
    finally:
        remove(runner, side, place)
    print(f"drill: {verdict.line()} (restored copy vs source)")
    return exit_code({verdict.state})


def remove(runner: Runner, side: Side, place: str) -> None:
    """The scratch copy only, if it came to exist (a partial receive too)."""
    if not zfs_calls.read_datasets(runner, side, [place]):
        print(f"drill: nothing left at {place}")
        return
    result = zfs_calls.run(runner, side, zfs_argv.destroy_tree_argv(place))
    if result.returncode != 0:
        zfs_calls.run(runner, side, zfs_argv.abort_resume_argv(place))
        zfs_calls.control(runner, side, zfs_argv.destroy_tree_argv(place))
    print(f"drill: removed {place}{side.where()}")


def run(args: argparse.Namespace, runner: Runner) -> int:
    from zmake.core.contents import every_from_sample

    settings = settings_from(args)
    every = every_from_sample(args.sample)
    return drill(runner, route_of(settings, [args.dataset]), args.dataset,
                 scratch=args.scratch, on_source=args.on == "source", every=every)  # fmt: skip
