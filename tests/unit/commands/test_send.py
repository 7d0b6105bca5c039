"""`zmake send A B C`: a batch. Each dataset is recorded on its own; the stamp only when
all are up to date (the shared fake zfs, support/night.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.support.night import DEST, REMOTE, calls_in, environment
from zmake.reports.send import failure_file


def test_a_failing_dataset_holds_back_only_the_stamp_of_its_batch(tmp_path: Path) -> None:
    env, log, datasets = environment(tmp_path, 3)
    stamp, failures, report = tmp_path / "stamp", tmp_path / "failed", tmp_path / "report.jsonl"
    batch = [datasets[1], "tank/gone", datasets[2]]
    done = subprocess.run(
        [sys.executable, "-m", "zmake", "send", "--remote", REMOTE, "--dest", DEST,
         "--stamp", str(stamp), "--failures", str(failures), "--", *batch],
        env={**env, "ZMAKE_REPORT": str(report)}, capture_output=True, text=True, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # make goes on: `all` lists the failure
    records = {r["dataset"]: r for r in map(json.loads, report.read_text().splitlines())}
    assert [records[name]["result"] for name in batch] == ["sent", "failed", "sent"]
    assert "tank/gone" in failure_file(failures, "tank/gone").read_text()
    assert not stamp.exists()
    # the batched read could not answer for tank/gone: it alone was read again
    assert calls_in(log).local["get"] == 2


def test_a_batch_that_is_up_to_date_writes_its_stamp(tmp_path: Path) -> None:
    env, _, datasets = environment(tmp_path, 3)
    stamp = tmp_path / "stamp"
    done = subprocess.run(
        [sys.executable, "-m", "zmake", "send", "--remote", REMOTE, "--dest", DEST,
         "--stamp", str(stamp), "--", *datasets[1:]],
        env=env, capture_output=True, text=True, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stamp.read_text().splitlines() == [f"{name}\tsent" for name in datasets[1:]]
