"""`zmake drill DATASET`: the restore drill as one command a timer can run.

The newest backup of DATASET is restored (restore_pool.py) into a scratch dataset of its
own — `<backup pool>/zmake-drill-<time>` on the backup host, or below --scratch, on the
source with --on source —, its content compared with the source's same snapshot
(verify_pool.py), and the scratch copy destroyed, whatever happened: it leaves nothing."""

from __future__ import annotations

import os
import time

from zmake import commands, state
from zmake.errors import Refused, ZmakeError
from zmake.model import pool_of
from zmake.restore_pool import restore_pool
from zmake.runner import Runner
from zmake.sides import Route, Side
from zmake.verify_pool import compare_snapshot, exit_code, read_places

SCRATCH_PREFIX = "zmake-drill-"


def drill(
    runner: Runner, route: Route, dataset: str, *, scratch: str | None, on_source: bool, every: int
) -> int:
    """Exit 0 when restored and the same, 1 when anything failed or differed, 3 when the
    restore worked but the content could not be read here (a raw backup without its key)."""
    side = route.source if on_source else route.target
    parent = scratch or pool_of(dataset if on_source else route.dest)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    place = f"{parent}/{SCRATCH_PREFIX}{stamp}-{os.getpid()}"
    found = state.read_datasets(runner, side, [parent, place])
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
    if not state.read_datasets(runner, side, [place]):
        print(f"drill: nothing left at {place}")
        return
    result = state.run(runner, side, commands.destroy_tree_argv(place))
    if result.returncode != 0:
        state.run(runner, side, commands.abort_resume_argv(place))
        state.control(runner, side, commands.destroy_tree_argv(place))
    print(f"drill: removed {place}{side.where()}")
