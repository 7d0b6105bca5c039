"""`zmake send DATASET`: bring one backup up to date, into a pool or a directory of files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from zmake.cli.arguments import selection_of, settings_from, slot_count
from zmake.settings import ensure_run_dir
from zmake.sides.runner import Runner


def run(args: argparse.Namespace, runner: Runner) -> int:
    from zmake.reports.send import send_recorded

    settings = settings_from(args)
    run_dir = ensure_run_dir(settings.run_dir)
    route = settings.route([args.dataset])
    if settings.to_dir:
        from zmake.targets.directory.send import FileOptions, FileSender

        # Files are always compressed: zstd unless --compress names another compressor.
        compressor = "zstd" if settings.compress == "none" else settings.compress
        files = FileOptions(route, compressor=compressor, full_every=settings.full_every,
                            recovery=settings.recovery, wait_for_lock=not args.no_wait,
                            slots=slot_count(args))  # fmt: skip
        sender = FileSender(runner, files, run_dir).send
    else:
        from zmake.targets.pool.send import Sender, SendOptions

        options = SendOptions(
            route=route,
            selection=selection_of([], settings, fallback=[args.dataset]),
            force=args.force,
            progress=args.progress if args.progress is not None else sys.stderr.isatty(),
            dry_run=args.dry_run,
            wait_for_lock=not args.no_wait,
            slots=slot_count(args),
        )
        sender = Sender(runner, options, run_dir).send
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
