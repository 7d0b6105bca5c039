"""`zmake backup --summary-json` and `--quiet` (reports/backup.py, reports/run.py): the document
follows its schema whatever the outcome, and quiet prints only the datasets left behind."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from zmake.commands.backup import Unfinished
from zmake.core.errors import RemoteUnreachable
from zmake.reports.backup import Reporting
from zmake.reports.run import Row, RunReport

SCHEMA = json.loads((Path(__file__).parents[3] / "docs" / "backup-summary.schema.json").read_text())
ROWS = [
    Row("tank/a b", "sent", 4096, 1.5, "full @s1"),
    Row("tank", "up to date", action="- (stamp)"),
    Row("tank/vm:0", "failed", error="diverged: backup has @x the source does not"),
]


@pytest.mark.parametrize(
    ("rows", "error", "result"),
    [
        (ROWS[:2], None, "ok"),
        (ROWS, Unfinished("1 of 3"), "incomplete"),
        ([], RemoteUnreachable("nas: unreachable"), "failed"),
    ],
)
def test_the_summary_follows_its_schema(
    rows: list[Row], error: Exception | None, result: str
) -> None:
    document = RunReport(100.0, rows, 160.25, error).document()
    jsonschema.validate(document, SCHEMA)
    assert document["result"] == result
    assert document["bytes_sent"] == sum(r.bytes for r in rows)
    assert document["datasets_failed"] == sum(1 for r in rows if not r.done)


def reporting_run(tmp_path: Path, quiet: bool, rows: list[Row], fail: bool) -> None:
    reporting = Reporting(quiet, None, str(tmp_path / "summary.json"))
    with reporting.run(lambda figures, path: None) as report:
        print("make's chatter")
        report.rows = rows
        if fail:
            raise Unfinished("1 of 3 datasets are not up to date")


def test_quiet_prints_nothing_when_all_is_well(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    reporting_run(tmp_path, True, ROWS[:2], fail=False)
    assert capfd.readouterr().out == ""
    assert json.loads((tmp_path / "summary.json").read_text())["result"] == "ok"


def test_quiet_prints_only_the_problems(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Unfinished):
        reporting_run(tmp_path, True, ROWS, fail=True)
    lines = capfd.readouterr().out.splitlines()
    assert lines[0] == "tank/vm:0: diverged: backup has @x the source does not"
    assert lines[1].startswith("(the whole run's output: ") and len(lines) == 2
    log = Path(lines[1].removeprefix("(the whole run's output: ").rstrip(")"))
    assert "make's chatter" in log.read_text()


def test_without_quiet_everything_is_printed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    reporting_run(tmp_path, False, ROWS[:2], fail=False)
    assert capfd.readouterr().out == "make's chatter\n"
