"""The fleet's order: the source whose backup lags most starts first (its newest dataset
stamp is oldest; never backed up: first of all), read from the stamps alone; the sources
prepared side by side in that order, unless a prune would ask."""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import pytest

from zmake.cli.main import build_parser
from zmake.commands import backup_fleet
from zmake.commands.backup import work_of
from zmake.commands.backup_fleet import lag_order
from zmake.fleet import FleetSource
from zmake.settings import Settings
from zmake.sides.runner import Runner
from zmake.targets import route_of


def source(name: str) -> FleetSource:
    return FleetSource(name, Settings(source=f"zsend@{name}", dest=f"backup/{name}",
                                      pools=("rpool",)))  # fmt: skip


def stamp(run_dir: Path, fleet_source: FleetSource, name: str, when: float) -> None:
    route = route_of(fleet_source.settings, fleet_source.roots)
    path = work_of(run_dir, route) / "stamps" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    os.utime(path, (when, when))


def test_the_laggiest_source_starts_first(tmp_path: Path) -> None:
    fresh, stale, never = source("fresh"), source("stale"), source("never")
    stamp(tmp_path, fresh, "rpool/home@11", 2_000_000)
    stamp(tmp_path, fresh, "rpool@10", 1_000_000)
    stamp(tmp_path, stale, "rpool/home/me@12", 1_500_000)  # in its name's folders
    stamp(tmp_path, stale, "umount@0123456789abcdef", 3_000_000)  # every run: not a backup
    stamp(tmp_path, never, "umount@0123456789abcdef", 3_000_000)
    ordered = lag_order([fresh, stale, never], tmp_path)
    assert [s.name for s in ordered] == ["never", "stale", "fresh"]


def run_args(**given: object) -> argparse.Namespace:
    args = build_parser().parse_args(["backup", "--all"])
    return argparse.Namespace(**{**vars(args), **given})


def watch_prepare(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[int]]:
    """`prepared` replaced: each call records its source and how many ran at once."""
    order: list[str] = []
    most = [0]
    running = [0]
    lock = threading.Lock()

    def fake(runner, args, source, run_dir, jobs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
            order.append(source.name)
        return backup_fleet.Outcome(source, error="not really")

    monkeypatch.setattr(backup_fleet, "prepared", fake)
    return order, most


def test_sources_are_prepared_side_by_side_in_lag_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = [source(name) for name in ("a", "b", "c", "d")]
    stamp(tmp_path, fleet[0], "rpool@1", 2_000_000)  # a: the freshest, last
    _, most = watch_prepare(monkeypatch)
    outcomes = backup_fleet.prepare_all(Runner(), run_args(yes=True), fleet, tmp_path, 8)
    assert [o.source.name for o in outcomes] == ["b", "c", "d", "a"]
    assert most[0] == 4


def test_a_prune_that_would_ask_prepares_one_source_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = [source(name) for name in ("a", "b", "c")]
    order, most = watch_prepare(monkeypatch)
    asking = run_args(prune=True, keep=3, yes=False)
    backup_fleet.prepare_all(Runner(), asking, fleet, tmp_path, 8)
    assert most[0] == 1 and len(order) == 3
    backup_fleet.prepare_all(Runner(), run_args(prune=True, keep=3, yes=True), fleet, tmp_path, 8)
    assert most[0] == 3  # the control: with --yes nothing asks


def test_the_summary_looks_for_the_stamps_the_fleet_makefile_writes(tmp_path: Path) -> None:
    """The rows of a source's summary and its part of the Makefile batch alike (by its
    host-streams): a batch's stamp missing from one would read as a dataset never sent."""
    from tests.unit.support.plans import full_plan, inventory_of
    from zmake.commands.backup import Prepared
    from zmake.core.batch import batches

    rows = [("rpool", 10, "off"), *((f"rpool/d{i}", 5, "off") for i in range(9))]
    plan = full_plan(inventory_of(rows))
    laptop = FleetSource("laptop", Settings(source="zsend@laptop", dest="backup/laptop",
                                            pools=("rpool",), host_streams=3))  # fmt: skip
    route = route_of(laptop.settings, laptop.roots)
    ready = Prepared(plan, route, tmp_path, None, tmp_path / "umount@x")
    ready.stamps.mkdir()
    ready.report.write_text("")
    written = [batch.stamp for batch in batches(plan, 3)]  # as FleetPart(host_streams=3)
    assert len(written) == 4  # 3 batches of 3, the parent
    for stamp in written:  # what make leaves after an earlier run that sent them all
        (ready.stamps / stamp).write_text("")
    rows = backup_fleet.Outcome(laptop, ready).rows()
    assert [row.result for row in rows] == ["up to date"] * 10, rows
