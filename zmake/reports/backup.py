"""What `zmake backup` leaves for monitoring, besides its table: `--quiet` (nothing when all
is well, only the problems otherwise), `--summary-json FILE` and `--metrics FILE` — both
written whatever the outcome, since a failed run is what monitoring is for."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from zmake.reports.metrics import RunFigures
from zmake.reports.run import RunReport
from zmake.reports.send import write_atomically

MetricsWriter = Callable[[RunFigures, Path], None]


class Reporting:
    def __init__(self, quiet: bool, metrics: str | None, summary_json: str | None) -> None:
        self.quiet = quiet
        self.metrics = Path(metrics) if metrics else None
        self.summary_json = Path(summary_json) if summary_json else None

    @contextmanager
    def run(self, write_metrics: MetricsWriter) -> Iterator[RunReport]:
        """The run's report, filled by the run, then rendered whatever its outcome
        (`write_metrics` adds the backups' ages, read afresh, to the run's figures)."""
        report = RunReport(started=time.time())
        with self.silenced() as log:
            try:
                yield report
            except BaseException as exc:
                report.error = exc
        report.ended = time.time()
        if self.quiet and (report.failed or report.error is not None):
            for line in report.problems():
                print(line)
            if log is not None:
                print(f"(the whole run's output: {log})")
        if self.summary_json is not None:
            write_atomically(self.summary_json, json.dumps(report.document(), indent=2) + "\n")
        if self.metrics is not None:
            write_metrics(report.figures(), self.metrics)
        if report.error is not None:
            raise report.error

    @contextmanager
    def silenced(self) -> Iterator[Path | None]:
        """--quiet: stdout (ours and make's, which inherits fd 1) goes to a log file."""
        if not self.quiet:
            yield None
            return
        sys.stdout.flush()
        handle, name = tempfile.mkstemp(prefix="zmake-backup-", suffix=".log")
        saved = os.dup(1)
        os.dup2(handle, 1)
        try:
            with open(handle, "a", closefd=False) as log, redirect_stdout(log):
                yield Path(name)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            os.close(handle)
