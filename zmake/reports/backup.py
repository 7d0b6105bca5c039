"""What `zmake backup` leaves for monitoring, besides its table: `--quiet` (nothing when all
is well, only the problems otherwise), `--summary-json FILE` and `--metrics FILE` — both
written whatever the outcome, since a failed run is what monitoring is for."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from zmake.core.plan import Selection
from zmake.reports.metrics import RunFigures
from zmake.reports.send import write_atomically
from zmake.settings import Settings
from zmake.sides.runner import Runner
from zmake.sides.side import Route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from zmake.commands.backup import Row


class Reporting:
    def __init__(self, quiet: bool, metrics: str | None, summary_json: str | None) -> None:
        self.quiet = quiet
        self.metrics = Path(metrics) if metrics else None
        self.summary_json = Path(summary_json) if summary_json else None
        self.rows: list[Row] | None = None

    @contextmanager
    def run(
        self, runner: Runner, route: Route, roots: Sequence[str], settings: Settings
    ) -> Iterator[None]:
        start = time.time()
        error: BaseException | None = None
        with self.silenced() as log:
            try:
                yield
            except BaseException as exc:
                error = exc
                self.rows = getattr(exc, "rows", self.rows)
        end = time.time()
        rows = self.rows or []
        failed = [r for r in rows if not r.done]
        if self.quiet and (failed or error is not None):
            for r in failed:
                print(f"{r.dataset}: {r.error or r.result}")
            if log is not None:
                print(f"(the whole run's output: {log})")
        if self.summary_json is not None:
            document = json.dumps(summary(rows, start, end, error), indent=2) + "\n"
            write_atomically(self.summary_json, document)
        if self.metrics is not None:
            from zmake.commands.check import run_metrics

            figures = RunFigures(start, end, sum(r.bytes for r in rows), len(failed),
                                 success=error is None)  # fmt: skip
            run_metrics(runner, route, roots, Selection(tuple(roots), settings.exclude),
                        figures, self.metrics)  # fmt: skip
        if error is not None:
            raise error

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


def summary(
    rows: Sequence[Row], start: float, end: float, error: BaseException | None
) -> dict[str, object]:
    """docs/backup-summary.schema.json"""
    failed = [r for r in rows if not r.done]
    return {
        "version": 1,
        "started": round(start, 3),
        "ended": round(end, 3),
        "result": "ok" if error is None else ("incomplete" if rows else "failed"),
        "error": None if error is None else str(error) or type(error).__name__,
        "bytes_sent": sum(r.bytes for r in rows),
        "datasets_failed": len(failed),
        "datasets": [
            {"dataset": r.dataset, "result": r.result, "action": r.action, "bytes": r.bytes,
             "seconds": round(r.seconds, 3), "error": r.error or None}
            for r in rows
        ],
    }  # fmt: skip
