"""`zmake check`: is every backup current? For Nagios/Icinga-style monitoring (exit 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN), cron, and node_exporter's textfile collector."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from zmake.cli.arguments import roots_of, settings_from
from zmake.commands.status import read_both
from zmake.core.errors import UsageError, ZmakeError
from zmake.core.health import UNKNOWN, CheckVerdict, Health, health_of, verdict
from zmake.core.plan import Selection
from zmake.reports.metrics import RunFigures, render_metrics, write_metrics
from zmake.sides.runner import Runner
from zmake.sides.side import Route
from zmake.targets import route_of, target_at


def target_label(route: Route) -> str:
    return f"{route.target.host or 'local'}:{route.dest}"


def read_health(
    runner: Runner, route: Route, roots: Sequence[str], selection: Selection
) -> list[Health]:
    datasets, remote = read_both(runner, target_at(route), roots, selection)
    return [health_of(dataset, remote, route.dest) for dataset in datasets]


def check(
    runner: Runner,
    route: Route,
    roots: Sequence[str],
    selection: Selection,
    *,
    warn: int,
    crit: int,
    now: float,
    as_json: bool = False,
    metrics: Path | None = None,
    notes: Sequence[str] = (),
) -> int:
    """Print the verdict (or its JSON) and return its level as the exit status."""
    try:
        healths = read_health(runner, route, roots, selection)
    except ZmakeError as exc:  # a side unreachable, a pool missing: nothing can be judged
        print(f"ZMAKE UNKNOWN - {exc}")
        return UNKNOWN
    judged = verdict(healths, now, warn, crit, notes)
    if metrics is not None:
        write_metrics(metrics, render_metrics(healths, target_label(route)))
    if as_json:
        print(json.dumps(verdict_json(judged, healths, now), indent=2))
    else:
        print(judged.summary)
        for line in judged.lines:
            print(line)
    return judged.level


def verdict_json(judged: CheckVerdict, healths: Sequence[Health], now: float) -> dict[str, object]:
    return {
        "version": 1,
        "level": judged.level,
        "summary": judged.summary,
        "problems": list(judged.lines),
        "checked_at": int(now),
        "datasets": [dataset_json(h, now) for h in healths],
    }


def dataset_json(h: Health, now: float) -> dict[str, object]:
    return {
        "dataset": h.dataset,
        "backup": h.backup,
        "state": h.state,
        "newest_backed_up": h.newest_backed_up,
        "backed_up_at": h.backed_up_at,
        "age_seconds": None if h.backed_up_at is None else int(now - h.backed_up_at),
        "pending_bytes": h.pending_bytes,
        "resume_token": h.resume_token,
    }


def run_metrics(
    runner: Runner, route: Route, roots: Sequence[str], selection: Selection, run: RunFigures,
    path: Path,
) -> None:  # fmt: skip
    """After a `zmake backup`: the backups' state as it now is, and this run's figures."""
    try:
        healths = read_health(runner, route, roots, selection)
    except ZmakeError:
        healths = []  # the run's own figures still tell that it failed
    write_metrics(path, render_metrics(healths, target_label(route), run))


def age_option(text: str, option: str) -> int:
    from zmake.core.health import parse_age

    try:
        return parse_age(text)
    except UsageError as exc:
        raise UsageError(f"--{option}: {exc}") from None


def run(args: argparse.Namespace, runner: Runner) -> int:
    import time

    settings = settings_from(args)
    warn_text, crit_text = args.warn or settings.warn, args.crit or settings.crit
    warn, crit = age_option(warn_text, "warn"), age_option(crit_text, "crit")
    if crit <= warn:
        raise UsageError(f"--crit {crit_text} must be longer than --warn {warn_text}")
    now = args.at if args.at is not None else time.time()
    from zmake.commands.backup import wants_fleet

    if wants_fleet(args):
        from zmake.commands import check_fleet

        return check_fleet.run(args, runner, now, warn, crit)
    try:
        roots = roots_of(args, settings, runner)
    except ZmakeError as exc:
        print(f"ZMAKE UNKNOWN - {exc}")
        return 3
    # not the config's `metrics`: that file is the nightly backup's, which check would overwrite
    metrics = Path(args.metrics) if args.metrics else None
    from zmake.settings import default_run_dir
    from zmake.sides.locks import run_notes

    notes = run_notes(settings.run_dir or default_run_dir(), now, warn, crit)
    return check(runner, route_of(settings, roots), roots, Selection(roots, settings.exclude),
                 warn=warn, crit=crit, now=now, as_json=args.json, metrics=metrics,
                 notes=notes)  # fmt: skip
