"""`zmake send DATASET`: bring one backup up to date, into a pool or a directory of files."""

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
    from zmake.reports.send import send_recorded

    settings = settings_from(args)
    run_dir = ensure_run_dir(settings.run_dir)
    request = SendRequest(
        selection=selection_of([], settings, fallback=[args.dataset]),
        force=args.force,
        progress=args.progress if args.progress is not None else sys.stderr.isatty(),
        dry_run=args.dry_run,
        wait_for_lock=not args.no_wait,
        slots=slot_count(args),
    )
    sender = target_of(settings, [args.dataset]).sender(runner, request, run_dir)
    report_file = os.environ.get("ZMAKE_REPORT")
    report = send_recorded(
        sender,
        args.dataset,
        dry_run=args.dry_run,
        stamp=Path(args.stamp) if args.stamp else None,
        failures=Path(args.failures) if args.failures else None,
        report_file=Path(report_file) if report_file else None,
    )
    print(report.line(), flush=True)
    return 0
