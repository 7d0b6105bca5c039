"""The fleet's order: the source whose backup lags most starts first (its newest dataset
stamp is oldest; never backed up: first of all), read from the stamps alone."""

from __future__ import annotations

import os
from pathlib import Path

from zmake.commands.backup import work_of
from zmake.commands.backup_fleet import lag_order
from zmake.fleet import FleetSource
from zmake.settings import Settings
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
