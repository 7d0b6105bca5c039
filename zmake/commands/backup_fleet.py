"""`zmake backup --all` (or a config's source names): every source of a backup host's fleet
in one Makefile, one DAG, one make -jN.

Each source is snapshotted, pruned and read on its own first; a source that fails there (an
unreachable host, a refused key) fails once, in one line, and its datasets stay out of the
Makefile, so no dataset waits for its own timeout. The others are rendered together: a
source host takes at most its host_streams at once (its ssh slots), and the source whose
backup lags most starts first."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from zmake import __version__
from zmake.cli.arguments import keeping_of, setting_layer
from zmake.commands.backup import BackupRequest, Prepared, Unfinished, gnu_make, prepare, work_of
from zmake.commands.generate import render_settings, zmake_command
from zmake.core.errors import ZmakeError
from zmake.core.render import FleetPart, render_fleet
from zmake.fleet import FleetSource, chosen, fleet_of
from zmake.reports.metrics import RunFigures
from zmake.reports.run import Row, RunReport, print_table, summary_rows
from zmake.settings import ensure_run_dir
from zmake.sides.runner import Runner
from zmake.sides.slots import close_masters
from zmake.targets import route_of


@dataclass
class Outcome:
    """One source's part of the night: prepared for make, or failed before it."""

    source: FleetSource
    prepared: Prepared | None = None
    error: str = ""

    def rows(self) -> list[Row]:
        if self.prepared is None:
            return [Row(f"{self.source.name}:*", "failed", error=self.error)]
        rows = summary_rows(self.prepared.expected(streams_of(self.source)),
                            self.prepared.report)  # fmt: skip
        return [replace(row, dataset=f"{self.source.name}:{row.dataset}") for row in rows]

    def line(self, rows: list[Row], marks: Path) -> str:
        """The summary's line for this source, from its `rows()` and this run's marks of
        the hosts it could not reach."""
        from zmake.sides import unreachable

        where = f"{self.source.name} ({self.source.host})"
        if self.prepared is None:
            return f"{where}: failed before any send: {self.error}"
        behind = [row for row in rows if not row.done]
        if not behind:
            return f"{where}: {len(rows)} datasets up to date"
        lost = unreachable.reason(marks, self.prepared.route.remote_hosts)
        during = f"; unreachable during the run: {lost}" if lost else ""
        return f"{where}: {len(behind)} of {len(rows)} datasets not up to date{during}"


def streams_of(source: FleetSource) -> int:
    """The most streams of this source at once (its Makefile's batches fill that many)."""
    return source.settings.host_streams or 1


def lag_order(sources: list[FleetSource], run_dir: Path) -> list[FleetSource]:
    """The source whose backup lags most first: the one whose newest stamp (written when a
    dataset is up to date) is oldest; never backed up: first of all. Costs no zfs call."""

    def newest_stamp(source: FleetSource) -> float:
        stamps = work_of(run_dir, route_of(source.settings, source.roots)) / "stamps"
        times = [0.0]
        for entry in stamps.rglob("*@*"):  # a dataset's (its name's folders) or a batch's
            if not entry.name.startswith("umount@"):  # written by every run, sends or not
                with contextlib.suppress(OSError):
                    times.append(entry.stat().st_mtime)
        return max(times)

    return sorted(sources, key=newest_stamp)


def request_of(args: argparse.Namespace, source: FleetSource, jobs: int) -> BackupRequest:
    settings = source.settings
    pruning = args.prune or settings.prune
    return BackupRequest(
        roots=source.roots,
        jobs=jobs,
        take_snapshot=args.snapshot or settings.snapshot,
        snapshot_format=args.name or settings.name,
        keeping=keeping_of(args, settings, backup_too=True) if pruning else None,
        assume_yes=args.yes or settings.yes,
        check_remote=args.check_remote,
    )


def prepared(runner: Runner, args: argparse.Namespace, source: FleetSource, run_dir: Path,
             jobs: int) -> Outcome:  # fmt: skip
    settings = source.settings
    request = request_of(args, source, jobs)
    print(f"backup: source {source.name} ({source.host})", flush=True)
    try:
        route = route_of(settings, source.roots)
        ready = prepare(runner, settings, route, request, run_dir, f"{source.name}: ")
        ready.settle()
    except ZmakeError as exc:
        message = " ".join(str(exc).split())
        print(f"backup: {source.name}: {message}", file=sys.stderr)
        return Outcome(source, error=message)
    return Outcome(source, ready)


def prepare_all(runner: Runner, args: argparse.Namespace, sources: list[FleetSource],
                run_dir: Path, jobs: int) -> list[Outcome]:  # fmt: skip
    """Every source prepared, the laggiest first: side by side (up to `jobs` at once, each
    source's own reads and round trips) when nobody is there to answer; one at a time when
    a prune would ask before destroying, or on a terminal (where ssh may ask too)."""
    ordered = lag_order(sources, run_dir)
    requests = [request_of(args, source, jobs) for source in ordered]
    asks = any(r.keeping is not None and not r.assume_yes for r in requests)
    if asks or sys.stdin.isatty() or len(ordered) < 2 or jobs < 2:  # ssh too may ask
        return [prepared(runner, args, source, run_dir, jobs) for source in ordered]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=min(jobs, len(ordered)))
    try:
        return list(pool.map(lambda s: prepared(runner, args, s, run_dir, jobs), ordered))
    finally:  # Ctrl-C, or an error that is no ZmakeError: no source not yet begun begins
        pool.shutdown(wait=True, cancel_futures=True)


def fleet_backup(
    runner: Runner, args: argparse.Namespace, sources: list[FleetSource], run_dir: Path,
    jobs: int, report: RunReport,
) -> None:  # fmt: skip
    outcomes = prepare_all(runner, args, sources, run_dir, jobs)
    ready = [o for o in outcomes if o.prepared is not None]
    code = 0
    try:
        if ready:
            code = run_make(runner, ready, run_dir, jobs)
    finally:
        for outcome in outcomes:
            for side in route_of(outcome.source.settings, outcome.source.roots).remote_hosts:
                close_masters(runner, run_dir, side)
    rows_of = [(outcome, outcome.rows()) for outcome in outcomes]  # each report read once
    report.rows = [row for _, rows in rows_of for row in rows]
    print_table(report.rows, sys.stdout)
    print("sources:")
    for outcome, rows in rows_of:
        print(f"  {outcome.line(rows, run_dir / 'fleet' / 'unreachable')}")
    behind = [o.source.name for o, rows in rows_of if any(not row.done for row in rows)]
    if behind or code != 0:
        raise Unfinished(f"{len(behind)} of {len(outcomes)} sources are not up to date "
                         f"({', '.join(behind)}): run zmake backup again to finish")  # fmt: skip


def run_make(runner: Runner, ready: list[Outcome], run_dir: Path, jobs: int) -> int:
    parts = []
    for index, outcome in enumerate(ready, start=1):
        source, work = outcome.source, outcome.prepared
        assert work is not None
        work.report.write_text("")
        origin = f"source {source.name}"
        rendering = render_settings(source.settings, roots=source.roots, command="",
                                    origin=origin, stamps=str(work.stamps))  # fmt: skip
        parts.append(FleetPart(index, source.name, work.plan, rendering, str(work.report),
                               streams_of(source)))  # fmt: skip
    command = shlex.join(["zmake", *sys.argv[1:]])
    makefile = run_dir / "fleet" / "Makefile"
    makefile.parent.mkdir(mode=0o700, exist_ok=True)
    makefile.write_text(render_fleet(parts, zmake_command(), command, __version__))
    from zmake.sides import unreachable

    env = {**os.environ, "ZMAKE_RUN_DIR": str(run_dir),
           unreachable.ENV: str(unreachable.fresh_folder(makefile.parent))}  # fmt: skip
    env.pop("ZMAKE_REPORT", None)
    return runner.interactive([gnu_make(), "-k", f"-j{jobs}", "-f", str(makefile)], env)


def fleet_metrics(runner: Runner, sources: list[FleetSource], run: RunFigures, path: Path) -> None:
    """--metrics: every source's backups as they now are, labelled by source and host, and
    the run's figures (target="fleet")."""
    from zmake.commands.check_fleet import source_health, source_labels
    from zmake.reports.metrics import Group, render_groups, write_metrics

    groups = []
    for source in sources:
        try:
            groups.append(Group(source_health(runner, source), source_labels(source), True))
        except ZmakeError:
            groups.append(Group([], source_labels(source), False))
    write_metrics(path, render_groups(groups, run, {"target": "fleet"}))


def dry_runs(runner: Runner, args: argparse.Namespace, sources: list[FleetSource],
             run_dir: Path, jobs: int) -> int:  # fmt: skip
    """--dry-run: each source's plan in turn, the worst exit status."""
    from zmake.commands.backup_dry_run import dry_run

    codes = [0]
    for source in sources:
        print(f"== source {source.name} ({source.host})")
        route = route_of(source.settings, source.roots)
        codes.append(
            dry_run(runner, source.settings, route, request_of(args, source, jobs), run_dir)
        )
    return max(codes)


def run(args: argparse.Namespace, runner: Runner) -> int:
    from zmake.reports.backup import Reporting
    from zmake.sides.locks import backup_lock

    fleet = chosen(fleet_of(args.config, setting_layer(args)), list(args.pools or ()))
    pulled = [source for source in fleet if not source.push]
    first = fleet[0].settings
    run_dir = ensure_run_dir(first.run_dir)
    jobs = args.jobs or first.jobs
    if args.dry_run:
        return dry_runs(runner, args, pulled, run_dir, jobs)
    if not pulled:
        print("backup: every source listed pushes by itself: nothing to pull")
        return 0
    reporting = Reporting(args.quiet or first.quiet, args.metrics or first.metrics,
                          args.summary_json or first.summary_json)  # fmt: skip

    def write_metrics(figures: RunFigures, path: Path) -> None:
        fleet_metrics(runner, pulled, figures, path)

    with backup_lock(run_dir), reporting.run(write_metrics) as report:
        fleet_backup(runner, args, pulled, run_dir, jobs, report)
    return 0
