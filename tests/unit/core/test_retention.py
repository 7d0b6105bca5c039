"""Retention policies (core/retention.py) and the safety rules around them (retention.judge)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zmake.core.errors import UsageError
from zmake.core.prunable import SnapshotInfo, judge
from zmake.core.retention import PERIODS, Dated, Retention, parse_retention, reasons_to_keep

NOW = 1_800_000_000  # 2027-01-15
DAY = 86400


def period_key(period: str, creation: int) -> tuple[int, ...]:
    """The calendar bucket, computed another way than core/retention.py (tuples, not strftime)."""
    moment = datetime.fromtimestamp(creation, UTC)
    iso = moment.isocalendar()
    return {
        "hourly": (moment.year, moment.month, moment.day, moment.hour),
        "daily": (moment.year, moment.month, moment.day),
        "weekly": (iso.year, iso.week),
        "monthly": (moment.year, moment.month),
        "yearly": (moment.year,),
    }[period]


def expected_kept(snapshots: list[Dated], retention: Retention, now: int) -> set[str]:
    newest_first = sorted(snapshots, key=lambda s: s.creation, reverse=True)
    kept = {s.name for s in newest_first[: retention.last]}
    kept |= {s.name for s in snapshots if retention.within and now - s.creation < retention.within}
    for period, count in retention.calendar:
        newest_per_bucket: dict[tuple[int, ...], Dated] = {}
        for snapshot in newest_first:
            newest_per_bucket.setdefault(period_key(period, snapshot.creation), snapshot)
        chosen = sorted(newest_per_bucket.items(), key=lambda kv: kv[1].creation, reverse=True)
        kept |= {snapshot.name for _, snapshot in chosen[:count]}
    return kept


@st.composite
def histories(draw: st.DrawFn) -> list[Dated]:
    """Snapshots at strictly increasing creation times over up to two years before NOW."""
    gaps = draw(st.lists(st.integers(1, 40 * DAY), min_size=1, max_size=40))
    creation, snapshots = NOW - draw(st.integers(0, 3 * DAY)), []
    for index, gap in enumerate(gaps):
        snapshots.append(Dated(f"p/a@zmake-{index}", creation))
        creation -= gap
    return list(reversed(snapshots))


@st.composite
def retentions(draw: st.DrawFn) -> Retention:
    terms = []
    if draw(st.booleans()):
        terms.append(f"last={draw(st.integers(1, 10))}")
    if draw(st.booleans()):
        terms.append(f"within={draw(st.integers(1, 90))}{draw(st.sampled_from('hdw'))}")
    for period in PERIODS:
        if draw(st.booleans()):
            terms.append(f"{period}={draw(st.integers(1, 14))}")
    if not terms:
        terms.append(str(draw(st.integers(1, 10))))
    return parse_retention(",".join(terms))


@given(histories(), retentions())
def test_the_policy_keeps_exactly_what_its_rules_say(
    snapshots: list[Dated], retention: Retention
) -> None:
    kept = reasons_to_keep(snapshots, retention, NOW)
    assert set(kept) == expected_kept(snapshots, retention, NOW)
    for name, reason in kept.items():
        rule = reason.split("=")[0].split(" ")[0]
        assert rule in {"last", "within", *PERIODS}, (name, reason)


@given(histories(), retentions())
def test_pruning_twice_destroys_nothing_more(snapshots: list[Dated], retention: Retention) -> None:
    kept = reasons_to_keep(snapshots, retention, NOW)
    survivors = [s for s in snapshots if s.name in kept]
    assert set(reasons_to_keep(survivors, retention, NOW)) == set(kept)


@given(histories(), retentions(), st.data())
def test_safety_rules_win_over_any_policy(
    dated: list[Dated], retention: Retention, data: st.DataObject
) -> None:
    snapshots = [
        SnapshotInfo(
            d.name if data.draw(st.booleans()) else d.name.replace("zmake-", "mine-"),
            guid=i + 1,
            createtxg=i + 1,
            userrefs=data.draw(st.sampled_from([0, 0, 0, 1])),
            creation=d.creation,
        )
        for i, d in enumerate(dated)
    ]
    other = set(data.draw(st.lists(st.sampled_from([s.guid for s in snapshots]), max_size=3)))
    protected = set(data.draw(st.lists(st.sampled_from([s.guid for s in snapshots]), max_size=2)))
    verdicts = judge(snapshots, other, retention, protected, NOW)
    dropped = {v.snapshot for v in verdicts if not v.keep}
    owned = [s for s in snapshots if s.owned]
    base = max((s for s in snapshots if s.guid in other), key=lambda s: s.createtxg, default=None)
    for snapshot in dropped:
        assert snapshot.owned and snapshot.userrefs == 0
        assert snapshot != base and snapshot.guid not in protected
        assert snapshot != owned[-1]
    policy = reasons_to_keep([Dated(s.name, s.creation) for s in owned], retention, NOW)
    must_go = {s for s in owned if s.name not in policy} - {owned[-1]} if owned else set()
    assert dropped == {
        s for s in must_go if s.userrefs == 0 and s != base and s.guid not in protected
    }
    assert [v.snapshot for v in verdicts] == snapshots  # every one judged, in order


def test_reasons_name_the_rule() -> None:
    snaps = [Dated(f"p@zmake-{i}", NOW - (9 - i) * DAY) for i in range(10)]
    kept = reasons_to_keep(snaps, parse_retention("1,within=3d,weekly=2"), NOW)
    # NOW is a Friday: the week before ends with the Sunday 5 days earlier (zmake-4).
    assert kept == {
        "p@zmake-9": "last=1",
        "p@zmake-8": "within=3d",
        "p@zmake-7": "within=3d",
        "p@zmake-4": "weekly 2027-W01",
    }


def test_the_same_syntax_everywhere() -> None:
    assert parse_retention("7") == parse_retention("7")
    assert parse_retention("7").last == 7
    assert parse_retention("30d").within == 30 * DAY
    spec = parse_retention("monthly=12, daily=14,last=2")
    assert spec.calendar == (("daily", 14), ("monthly", 12)) and spec.last == 2
    for bad in ("", "0", "daily=0", "fortnightly=2", "within=3x", "within=d", "last=-1"):
        with pytest.raises(UsageError):
            parse_retention(bad, "keep-backup")


def test_each_side_from_the_command_line_over_the_config_file(tmp_path) -> None:
    import argparse

    from zmake.cli.arguments import keeping_of
    from zmake.settings import resolve

    config = tmp_path / "zmake.toml"
    config.write_text('keep-source = "within=3d"\nkeep-backup = "daily=30,monthly=12"\n')
    settings = resolve({}, str(config), env={})
    given = argparse.Namespace(keep=None, keep_source=None, keep_backup=None)
    keeping = keeping_of(given, settings, backup_too=True)
    assert keeping.source.within == 3 * DAY
    assert keeping.backup.calendar == (("daily", 30), ("monthly", 12))
    overridden = keeping_of(argparse.Namespace(keep=None, keep_source="5", keep_backup="weekly=2"),
                            settings, backup_too=True)  # fmt: skip
    assert overridden.source.last == 5 and overridden.backup.calendar == (("weekly", 2),)
    both = argparse.Namespace(keep=5, keep_source=None, keep_backup="weekly=2")
    with pytest.raises(UsageError, match="--keep N is both sides' policy: give --keep-backup"):
        keeping_of(both, settings, backup_too=True)  # two answers for the backup: refused
    bare = resolve({}, None, env={})
    with pytest.raises(UsageError, match="--keep-backup POLICY"):
        keeping_of(argparse.Namespace(keep=None, keep_source="7", keep_backup=None), bare,
                   backup_too=True)  # fmt: skip
    only_source = keeping_of(argparse.Namespace(keep=None, keep_source="7", keep_backup=None),
                             bare, backup_too=False)  # fmt: skip
    assert only_source.source.last == 7
