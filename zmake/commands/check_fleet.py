"""`zmake check` over a backup host's fleet (the config's [sources.NAME] tables): one line
for all (`ZMAKE WARNING - 3 sources, 212 datasets, …`), then each problem with its source.

A source that cannot be read is UNKNOWN for its part; for the whole, the worst counts, with
UNKNOWN above WARNING and below CRITICAL (a host that cannot be asked is worse than a late
backup, not as bad as a diverged or long-missing one)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zmake.cli.arguments import setting_layer
from zmake.commands.check import read_health
from zmake.core.errors import ZmakeError
from zmake.core.health import (
    CRITICAL,
    LEVEL_NAMES,
    OK,
    UNKNOWN,
    WARNING,
    CheckVerdict,
    Health,
    pushed_health,
    short_age,
    verdict,
)
from zmake.core.model import BackupDataset
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


def pushed_backups(runner: Runner, route: Route) -> list[BackupDataset]:
    """Every backup under the push source's dest that holds a snapshot (zmake's empty
    parents left out); none at all cannot be judged (status and check alike)."""
    backups = target_at(route).read_backups(runner, {})
    held = [b for b in backups.values() if b.snapshots and not b.placeholder]
    if not held:
        raise ZmakeError(f"nothing is backed up under {route.dest}")
    return held


def pushed_healths(runner: Runner, route: Route) -> list[Health]:
    return [pushed_health(backup) for backup in pushed_backups(runner, route)]


@dataclass(frozen=True)
class Judged:
    """One source's part of the fleet's verdict."""

    source: FleetSource
    level: int
    healths: list[Health]
    lines: list[str]  # its problems, each with the source's name
    error: str | None = None  # why it could not be read


def judge(runner: Runner, source: FleetSource, now: float, warn: int, crit: int) -> Judged:
    try:
        healths = source_health(runner, source)
    except ZmakeError as exc:
        why = " ".join(str(exc).split())
        return Judged(source, UNKNOWN, [], [f"{source.name}: UNKNOWN - {why}"], why)
    judged = verdict(healths, now, warn, crit)
    return Judged(source, judged.level, healths, [f"{source.name}: {x}" for x in judged.lines])


def source_labels(source: FleetSource) -> dict[str, str]:
    """A fleet source's metrics labels."""
    from zmake.commands.check import target_label

    route = route_of(source.settings, source.roots)
    return {"source": source.name, "host": source.host, "target": target_label(route)}


def summed(judged: Sequence[Judged], now: float, notes: Sequence[str]) -> CheckVerdict:
    """The fleet's one line, then every problem, worst first, then the runs' notes."""
    levels = [j.level for j in judged] + [WARNING for _ in notes]
    level = max(levels, key=SEVERITY.__getitem__, default=OK)
    problems = sorted(((SEVERITY[j.level], line) for j in judged for line in j.lines),
                      reverse=True)  # fmt: skip
    lines = [line for _, line in problems] + list(notes)
    datasets = sum(len(j.healths) for j in judged)
    ages = [now - h.backed_up_at for j in judged for h in j.healths if h.backed_up_at is not None]
    oldest = f", oldest backup {short_age(max(ages))} ago" if ages else ""
    summary = f"ZMAKE {LEVEL_NAMES[level]} - {len(judged)} sources, {datasets} datasets{oldest}"
    if lines:
        summary += f", {len(lines)} problems"
    return CheckVerdict(level, summary, tuple(lines))


def fleet_json(judged: Sequence[Judged], whole: CheckVerdict, now: float) -> dict[str, object]:
    from zmake.commands.check import dataset_json

    rows = [{"source": j.source.name, **dataset_json(h, now)} for j in judged for h in j.healths]
    return {
        "version": 1,
        "level": whole.level,
        "summary": whole.summary,
        "problems": list(whole.lines),
        "checked_at": int(now),
        "datasets": rows,
        "unreadable": [{"source": j.source.name, "error": j.error} for j in judged if j.error],
    }


def fleet_check(runner: Runner, fleet: Sequence[FleetSource], now: float, warn: int, crit: int,
                notes: Sequence[str] = (), *, as_json: bool = False,
                metrics: Path | None = None) -> int:  # fmt: skip
    judged = [judge(runner, source, now, warn, crit) for source in fleet]
    whole = summed(judged, now, notes)
    if metrics is not None:
        from zmake.reports.metrics import Group, render_groups, write_metrics

        groups = [Group(j.healths, source_labels(j.source), j.error is None) for j in judged]
        write_metrics(metrics, render_groups(groups, None, {}))
    if as_json:
        import json

        print(json.dumps(fleet_json(judged, whole, now), indent=2))
        return whole.level
    print(whole.summary)
    for line in whole.lines:
        print(line)
    return whole.level


def run(args: argparse.Namespace, runner: Runner, now: float, warn: int, crit: int) -> int:
    from zmake.settings import default_run_dir
    from zmake.sides.locks import run_notes

    fleet = chosen(fleet_of(args.config, setting_layer(args)), list(args.pools or ()))
    notes = run_notes(fleet[0].settings.run_dir or default_run_dir(), now, warn, crit)
    metrics = Path(args.metrics) if args.metrics else None
    return fleet_check(runner, fleet, now, warn, crit, notes, as_json=args.json, metrics=metrics)
