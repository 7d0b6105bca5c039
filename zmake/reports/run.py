"""One `zmake backup` run as a report: the rows of its datasets, its times, its error. The
summary table, `--quiet`, `--summary-json` and `--metrics` all render this one type."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from zmake.reports.metrics import RunFigures
from zmake.reports.send import human


@dataclass
class RunReport:
    started: float
    rows: list[Row] = field(default_factory=list)
    ended: float = 0.0
    error: BaseException | None = None

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if not r.done]

    @property
    def bytes_sent(self) -> int:
        return sum(r.bytes for r in self.rows)

    def problems(self) -> list[str]:
        """--quiet: one line per dataset left behind."""
        return [f"{r.dataset}: {r.error or r.result}" for r in self.failed]

    def figures(self) -> RunFigures:
        """--metrics: the run's own figures (the backups' ages come from a fresh read)."""
        return RunFigures(self.started, self.ended, self.bytes_sent, len(self.failed),
                          success=self.error is None)  # fmt: skip

    def document(self) -> dict[str, object]:
        """--summary-json: docs/backup-summary.schema.json"""
        error = self.error
        result = "ok" if error is None else ("incomplete" if self.rows else "failed")
        return {
            "version": 1,
            "started": round(self.started, 3),
            "ended": round(self.ended, 3),
            "result": result,
            "error": None if error is None else str(error) or type(error).__name__,
            "bytes_sent": self.bytes_sent,
            "datasets_failed": len(self.failed),
            "datasets": [
                {"dataset": r.dataset, "result": r.result, "action": r.action, "bytes": r.bytes,
                 "seconds": round(r.seconds, 3), "error": r.error or None}
                for r in self.rows
            ],
        }  # fmt: skip


@dataclass(frozen=True)
class Row:
    dataset: str
    result: str  # sent, up to date, no snapshot, failed
    bytes: int = 0
    seconds: float = 0.0
    action: str = "-"
    error: str = ""

    @property
    def done(self) -> bool:
        return self.result in ("sent", "up to date", "no snapshot")


def summary_rows(expected: Mapping[str, Path], report: Path) -> list[Row]:
    """One row per expected dataset (name → its stamp file) from the JSON lines `zmake send`
    appended. Without a line, a dataset was either finished by an earlier run (its stamp
    exists, make skipped it) or did not run at all."""
    done = {}
    for line in report.read_text().splitlines():
        record = json.loads(line)
        done[record["dataset"]] = record
    rows = []
    for name in expected:
        record = done.get(name)
        if record is None:
            stamped = expected[name].exists()
            rows.append(
                Row(name, "up to date", action="- (stamp)")
                if stamped
                else Row(name, "failed", error="did not run (see make's output)")
            )
            continue
        result = str(record["result"])
        if result.startswith("up to date"):
            result = "up to date"
        elif result == "no snapshot to send":
            result = "no snapshot"
        action = " + ".join(record["actions"]) or "-"
        rows.append(
            Row(
                name,
                result,
                int(record["bytes"]),
                float(record["seconds"]),
                action,
                str(record.get("error", "")),
            )
        )
    return rows


def print_table(rows: Sequence[Row], out: TextIO) -> None:
    width = max([len("dataset"), *(len(r.dataset) for r in rows)])
    print(f"{'dataset':<{width}}  {'result':<11}  {'bytes':>10}  {'time':>7}  action", file=out)
    for r in rows:
        print(
            f"{r.dataset:<{width}}  {r.result:<11}  {human(r.bytes):>10}  "
            f"{r.seconds:>6.1f}s  {r.action}",
            file=out,
        )
    failed = [r for r in rows if not r.done]
    if failed:
        print("not up to date:", file=out)
        for r in failed:
            print(f"  {r.dataset}: {r.error or r.result}", file=out)
