"""`zmake send DATASET…`: bring backups up to date, into a pool or a directory of files.

Several datasets are a batch (the Makefile's recipe for small siblings, core/batch.py): sent
one after the other by this one process, each recorded on its own; the stamp is written
only when every one of them is up to date."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from zmake.cli.arguments import selection_of, settings_from, slot_count
from zmake.settings import ensure_run_dir
from zmake.sides.runner import Runner
from zmake.targets import target_of
from zmake.targets.base import SendRequest


def run(args: argparse.Namespace, runner: Runner) -> int:
    from zmake.reports.send import send_recorded, write_stamp

    settings = settings_from(args)
    run_dir = ensure_run_dir(settings.run_dir)
    names: list[str] = list(dict.fromkeys(args.datasets))
    request = SendRequest(
        selection=selection_of([], settings, fallback=names),
        force=args.force,
        progress=args.progress if args.progress is not None else sys.stderr.isatty(),
        dry_run=args.dry_run,
        wait_for_lock=not args.no_wait,
        slots=slot_count(args, settings),
        batch=tuple(names),
        stall_after=settings.stall_after,
    )
    from zmake.sides import unreachable

    target = target_of(settings, names)
    sender = unreachable.guarded(target.sender(runner, request, run_dir), target.route.remote_hosts)
    report_file = os.environ.get("ZMAKE_REPORT")
    reports = []
    for name in names:
        report = send_recorded(
            sender,
            name,
            dry_run=args.dry_run,
            stamp=None,
            failures=Path(args.failures) if args.failures else None,
            report_file=Path(report_file) if report_file else None,
        )
        print(report.line(), flush=True)
        reports.append(report)
    if args.stamp and not args.dry_run and not any(r.error for r in reports):
        write_stamp(Path(args.stamp), "".join(f"{r.dataset}\t{r.result}\n" for r in reports))
    return 0
