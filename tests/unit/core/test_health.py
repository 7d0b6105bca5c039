"""`zmake check` and the metrics file: ages, levels, exit codes, the exposition format."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zmake.core.errors import UsageError
from zmake.core.health import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    Health,
    health_of,
    parse_age,
    short_age,
    verdict,
)
from zmake.core.model import FILESYSTEM, BackupDataset, Dataset, Snapshot
from zmake.reports.metrics import RunFigures, render_metrics

HOUR = 3600
NOW = 1_790_000_000
WARN, CRIT = 26 * HOUR, 50 * HOUR


def snap(dataset: str, n: int, age_hours: float) -> Snapshot:
    created = int(NOW - age_hours * HOUR)
    return Snapshot(f"{dataset}@zmake-{n}", 1000 + n, 10 + n, 4096, 8192, created)


def source(name: str, *ages: float) -> Dataset:
    return Dataset(name, FILESYSTEM, snapshots=tuple(snap(name, i, a) for i, a in enumerate(ages)))


def backup_of(dataset: Dataset, count: int, token: str | None = None) -> dict[str, BackupDataset]:
    name = dataset.name.replace("tank", "backup/tank", 1)
    held = tuple(
        Snapshot(s.name.replace("tank", "backup/tank", 1), s.guid, s.createtxg + 100)
        for s in dataset.snapshots[:count]
    )
    return {name: BackupDataset(name, FILESYSTEM, snapshots=held, resume_token=token)}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("26h", 26 * HOUR),
        ("2d", 48 * HOUR),
        ("1d12h", 36 * HOUR),
        ("90m", 5400),
        ("45", 45),
        ("1w", 7 * 24 * HOUR),
    ],
)
def test_ages(text: str, seconds: int) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "2x", "1.5h", "-3h", "2h 3m", "3hm"])
def test_what_is_not_an_age(text: str) -> None:
    with pytest.raises(UsageError):
        parse_age(text)


@given(st.integers(0, 400 * 86400))
def test_short_age_never_says_more_than_it_is(seconds: int) -> None:
    shown = short_age(seconds)
    assert 0 <= seconds - parse_age(shown) < max(60, seconds // 20 + 1) or seconds < 60


@pytest.mark.parametrize(
    ("backed_up_age", "level"),
    [(1, OK), (25.9, OK), (26, WARNING), (49.9, WARNING), (50, CRITICAL), (400, CRITICAL)],
)
def test_the_age_of_the_newest_backed_up_snapshot_sets_the_level(
    backed_up_age: float, level: int
) -> None:
    tank = source("tank/home", backed_up_age + 10, backed_up_age, 0.5)
    health = health_of(tank, backup_of(tank, 2), "backup/tank")
    assert health.state == "pending" and health.newest_backed_up == "zmake-1"
    judged = verdict([health], NOW, WARN, CRIT)
    assert judged.level == level
    assert judged.summary.startswith(f"ZMAKE {['OK', 'WARNING', 'CRITICAL'][level]} - 1 datasets")
    assert (judged.lines == ()) == (level == OK)
    if level != OK:
        assert judged.lines[0].startswith("tank/home: newest backup @zmake-1 is ")


def test_diverged_is_critical_and_named() -> None:
    tank = source("tank/a", 3, 1)
    remote = backup_of(tank, 0)
    name = next(iter(remote))
    foreign = Snapshot(f"{name}@other", 999, 50)
    remote[name] = BackupDataset(name, FILESYSTEM, snapshots=(foreign,))
    judged = verdict([health_of(tank, remote, "backup/tank")], NOW, WARN, CRIT)
    assert judged.level == CRITICAL and judged.lines[0].startswith("tank/a: diverged")


def test_missing_counts_from_the_first_snapshot_it_could_have_had() -> None:
    young, old = source("tank/new", 2), source("tank/old", 60, 1)
    healths = [health_of(d, {}, "backup/tank") for d in (young, old)]
    assert [h.state for h in healths] == ["missing", "missing"]
    judged = verdict(healths, NOW, WARN, CRIT)
    assert judged.level == CRITICAL
    assert judged.lines == ("tank/old: never backed up, 2d12h since its first snapshot",)


def test_no_snapshot_warns_and_a_pending_resume_warns() -> None:
    bare = source("tank/bare")
    tank = source("tank/home", 5, 1)
    healths = [
        health_of(bare, {}, "backup/tank"),
        health_of(tank, backup_of(tank, 1, token="1-abc"), "backup/tank"),
    ]
    judged = verdict(healths, NOW, WARN, CRIT)
    assert judged.level == WARNING and len(judged.lines) == 2
    assert any("no snapshot on the source" in line for line in judged.lines)
    assert any("partial receive" in line for line in judged.lines)


def test_unknown_creation_times_are_unknown_never_ok() -> None:
    tank = Dataset("tank/x", FILESYSTEM, snapshots=(Snapshot("tank/x@a", 1, 5),))
    assert verdict([health_of(tank, {}, "backup/tank")], NOW, WARN, CRIT).level == UNKNOWN


def test_warn_beyond_crit_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        verdict([], NOW, CRIT, WARN)


LABEL_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=30)


def healths_named(names: list[str]) -> list[Health]:
    return [Health(n, f"b/{n}", "pending", "s", NOW - 10, NOW - 5, 1234, False) for n in names]


PROMTOOL = shutil.which("promtool", path=f"{os.environ.get('PATH', '')}:.tools/bin")


@pytest.mark.skipif(PROMTOOL is None and os.environ.get("CI") != "true",
                    reason="promtool not installed (scripts/test installs it)")  # fmt: skip
@given(st.lists(LABEL_TEXT.filter(lambda n: n.strip()), min_size=1, max_size=4, unique=True),
       LABEL_TEXT)  # fmt: skip
def test_the_exposition_passes_promtool(names: list[str], target: str) -> None:
    assert PROMTOOL is not None, "promtool is missing: CI must install it (scripts/test)"
    run = RunFigures(NOW - 100.5, NOW, 10_000, 1, success=False)
    text = render_metrics(healths_named(names), target, run)
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr + text
    assert text.count("zmake_backup_up_to_date{") == len(names)


def test_the_exposition_holds_each_figure() -> None:
    run = RunFigures(NOW - 100, NOW, 10_000, 2)
    text = render_metrics(healths_named(["tank/a b"]), "nas:backup/t", run)
    assert 'zmake_backup_pending_bytes{dataset="tank/a b",target="nas:backup/t"} 1234' in text
    where = '{dataset="tank/a b",target="nas:backup/t"}'
    assert f"zmake_backup_last_snapshot_timestamp_seconds{where} {NOW - 10}" in text
    assert 'zmake_run_duration_seconds{target="nas:backup/t"} 100' in text
    assert 'zmake_run_bytes_sent_total{target="nas:backup/t"} 10000' in text
    assert 'zmake_run_datasets_failed{target="nas:backup/t"} 2' in text
    assert "# TYPE zmake_run_bytes_sent_total counter" in text


def test_label_values_are_escaped() -> None:
    text = render_metrics(healths_named(['a"b\\c\nd']), "t")
    assert 'dataset="a\\"b\\\\c\\nd"' in text


def test_metrics_are_written_whole(tmp_path: Path) -> None:
    from zmake.reports.metrics import write_metrics

    target = tmp_path / "zmake.prom"
    write_metrics(target, "x 1\n")
    assert target.read_text() == "x 1\n" and list(tmp_path.iterdir()) == [target]


def test_a_fleet_s_metrics_are_labelled_by_source_and_host() -> None:
    from zmake.reports.metrics import Group, render_groups

    run = RunFigures(NOW - 100, NOW, 10_000, 2)
    groups = [  # both sources have rpool/home: the source label keeps the series apart
        Group(healths_named(["rpool/home"]), {"source": "laptop", "host": "zsend@laptop",
                                              "target": "local:backup/laptop"}),
        Group(healths_named(["rpool/home"]), {"source": "desk", "host": "zsend@desk",
                                              "target": "local:backup/desk"}),
    ]  # fmt: skip
    text = render_groups(groups, run, {"target": "fleet"})
    for source in ("laptop", "desk"):
        where = (f'{{dataset="rpool/home",source="{source}",host="zsend@{source}",'
                 f'target="local:backup/{source}"}}')  # fmt: skip
        assert f"zmake_backup_up_to_date{where} 0" in text
    assert 'zmake_run_datasets_failed{target="fleet"} 2' in text
    assert text.count("# TYPE zmake_backup_up_to_date gauge") == 1
    if PROMTOOL is not None:
        done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                              text=True)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr + text
