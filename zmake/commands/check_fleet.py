"""`zmake check` over a backup host's fleet (the config's [sources.NAME] tables): one line
for all (`ZMAKE WARNING - 3 sources, 212 datasets, …`), then each problem with its source.

A source that cannot be read is UNKNOWN for its part; for the whole, the worst counts, with
UNKNOWN above WARNING and below CRITICAL (a host that cannot be asked is worse than a late
backup, not as bad as a diverged or long-missing one)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from zmake.cli.arguments import setting_layer
from zmake.commands.check import read_health
from zmake.core.errors import UsageError, ZmakeError
from zmake.core.health import (
    CRITICAL,
    LEVEL_NAMES,
    OK,
    UNKNOWN,
    WARNING,
    Health,
    pushed_health,
    short_age,
    verdict,
)
from zmake.core.plan import Selection
from zmake.fleet import FleetSource, chosen, fleet_of
from zmake.sides.runner import Runner
from zmake.sides.side import Route
from zmake.targets import route_of, target_at

SEVERITY = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}


def source_health(runner: Runner, source: FleetSource) -> list[Health]:
    """Each of a source's datasets, judged against its backup (one read of each side); a
    source that pushes by itself, by its backups alone (one read of this side)."""
    settings = source.settings
    route = route_of(settings, source.roots)
    if source.push:
        return pushed_healths(runner, route)
    selection = Selection(source.roots, settings.exclude)
    return read_health(runner, route, source.roots, selection)


def pushed_healths(runner: Runner, route: Route) -> list[Health]:
    """Every backup under the push source's dest that holds a snapshot (zmake's empty
    parents left out); none at all cannot be judged."""
    backups = target_at(route).read_backups(runner, {})
    healths = [pushed_health(b) for b in backups.values() if b.snapshots and not b.placeholder]
    if not healths:
        raise ZmakeError(f"nothing is backed up under {route.dest}")
    return healths


def judge(runner: Runner, source: FleetSource, now: float, warn: int, crit: int
          ) -> tuple[int, int, list[str], float | None]:  # fmt: skip
    """(level, datasets, problem lines, oldest backup's age) of one source."""
    try:
        healths = source_health(runner, source)
    except ZmakeError as exc:
        return UNKNOWN, 0, [f"{source.name}: UNKNOWN - {' '.join(str(exc).split())}"], None
    judged = verdict(healths, now, warn, crit)
    ages = [now - h.backed_up_at for h in healths if h.backed_up_at is not None]
    lines = [f"{source.name}: {line}" for line in judged.lines]
    return judged.level, len(healths), lines, max(ages, default=None)


def fleet_check(runner: Runner, fleet: Sequence[FleetSource], now: float, warn: int, crit: int,
                notes: Sequence[str] = ()) -> int:  # fmt: skip
    judged = [(source, *judge(runner, source, now, warn, crit)) for source in fleet]
    levels = [level for _, level, _, _, _ in judged] + [WARNING for _ in notes]
    level = max(levels, key=SEVERITY.__getitem__, default=OK)
    problems = sorted(((SEVERITY[lvl], line) for _, lvl, _, lines, _ in judged for line in lines),
                      reverse=True)  # fmt: skip
    lines = [line for _, line in problems] + list(notes)
    datasets = sum(count for _, _, count, _, _ in judged)
    ages = [age for *_, age in judged if age is not None]
    oldest = f", oldest backup {short_age(max(ages))} ago" if ages else ""
    summary = f"ZMAKE {LEVEL_NAMES[level]} - {len(fleet)} sources, {datasets} datasets{oldest}"
    if lines:
        summary += f", {len(lines)} problems"
    print(summary)
    for line in lines:
        print(line)
    return level


def run(args: argparse.Namespace, runner: Runner, now: float, warn: int, crit: int) -> int:
    from zmake.settings import default_run_dir
    from zmake.sides.locks import run_notes

    if args.json or args.metrics:
        raise UsageError("--json and --metrics of a fleet check are not there yet: check one "
                         "source (its pools, -c with its --dest) for them")  # fmt: skip
    fleet = chosen(fleet_of(args.config, setting_layer(args)), list(args.pools or ()))
    notes = run_notes(fleet[0].settings.run_dir or default_run_dir(), now, warn, crit)
    return fleet_check(runner, fleet, now, warn, crit, notes)
