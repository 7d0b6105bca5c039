"""Retention policies: which of a dataset's zmake snapshots to keep, and why. Pure: no
processes, and the time is a parameter.

One small syntax, the same on the command line (`--keep-source`, `--keep-backup`) and in the
config file (`keep-source`, `keep-backup`): rules separated by commas, a snapshot is kept
when any rule keeps it.

    7                  the newest 7 (the same as last=7; `--keep 7`)
    last=7             the newest 7
    within=30d         everything younger than 30 days (units s, m, h, d, w, y)
    hourly=24          the newest snapshot of each of the 24 newest hours that have one;
    daily=14           likewise days, ISO weeks, months, years (UTC)
    weekly=8, monthly=12, yearly=3

Ages are the snapshots' `creation` property, never their names. The safety rules come
first and always win (core/prunable.py): a foreign or held snapshot, the next incremental's
base, what a resume token needs and the newest are never destroyed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from zmake.core.errors import UsageError

SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
# Calendar periods, as the bucket a snapshot's creation (UTC) falls in.
PERIODS = {
    "hourly": "%Y-%m-%d %H:00",
    "daily": "%Y-%m-%d",
    "weekly": "%G-W%V",
    "monthly": "%Y-%m",
    "yearly": "%Y",
}
SYNTAX = "e.g. 7, or last=7,within=30d,hourly=24,daily=14,weekly=8,monthly=12,yearly=3"


@dataclass(frozen=True)
class Retention:
    last: int = 0
    within: int = 0  # seconds
    calendar: tuple[tuple[str, int], ...] = ()  # (period, how many), in PERIODS' order
    text: str = ""

    def __str__(self) -> str:
        return self.text or describe(self)


@dataclass(frozen=True)
class Keeping:
    """The policy of each side: they are independent (the source keeps days, the backup
    months)."""

    source: Retention
    backup: Retention


@dataclass(frozen=True)
class Dated:
    """What a policy needs of one snapshot."""

    name: str
    creation: int  # seconds since 1970, from zfs


def parse_duration(text: str, what: str = "within") -> int:
    word = text.strip().lower()
    number, unit = word[:-1], word[-1:]
    if unit not in SECONDS or not number.isdigit() or int(number) < 1:
        raise UsageError(f"--{what}: {text!r} is not a duration: a number and s m h d w y")
    return int(number) * SECONDS[unit]


def parse_count(term: str, value: str, what: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise UsageError(f"--{what}: {term!r} needs a whole number >= 1 ({SYNTAX})")
    return int(value)


def parse_retention(text: str, what: str = "keep") -> Retention:
    """`SPEC` (see the module's doc) → a Retention; a UsageError naming `what` else."""
    last, within, calendar = 0, 0, {}
    terms = [term.strip() for term in str(text).split(",") if term.strip()]
    if not terms:
        raise UsageError(f"--{what} needs a policy ({SYNTAX})")
    for term in terms:
        key, sep, value = term.partition("=")
        key = key.strip().lower()
        if not sep:  # a bare number is `last`, a bare duration `within`
            key, value = ("last", key) if key.isdigit() else ("within", key)
        if key == "within":
            within = parse_duration(value, what)
        elif key == "last":
            last = parse_count(term, value, what)
        elif key in PERIODS:
            calendar[key] = parse_count(term, value, what)
        else:
            raise UsageError(f"--{what}: unknown rule {term!r} ({SYNTAX})")
    ordered = tuple((period, calendar[period]) for period in PERIODS if period in calendar)
    return Retention(last, within, ordered, ",".join(terms))


def describe(retention: Retention) -> str:
    parts = [f"last={retention.last}"] if retention.last else []
    if retention.within:
        parts.append(f"within={within_text(retention.within)}")
    parts += [f"{period}={count}" for period, count in retention.calendar]
    return ",".join(parts)


def bucket(period: str, creation: int) -> str:
    return datetime.fromtimestamp(creation, UTC).strftime(PERIODS[period])


def reasons_to_keep(
    snapshots: Sequence[Dated], retention: Retention, now: float | None = None
) -> dict[str, str]:
    """Of one dataset's zmake snapshots (oldest first), those the policy keeps (by name) with
    the first rule that keeps each; every other one the policy lets go."""
    now = time.time() if now is None else now
    kept: dict[str, str] = {}
    newest_first = list(reversed(snapshots))
    for snapshot in newest_first[: retention.last]:
        kept.setdefault(snapshot.name, f"last={retention.last}")
    if retention.within:
        for snapshot in newest_first:
            if now - snapshot.creation < retention.within:
                kept.setdefault(snapshot.name, f"within={within_text(retention.within)}")
    for period, count in retention.calendar:
        seen: set[str] = set()
        for snapshot in newest_first:
            key = bucket(period, snapshot.creation)
            if key in seen:
                continue
            if len(seen) == count:
                break
            seen.add(key)
            kept.setdefault(snapshot.name, f"{period} {key}")
    return kept


def within_text(seconds: int) -> str:
    """30d, not 2592000s: the largest unit that divides it."""
    for unit in ("y", "w", "d", "h", "m"):
        if seconds % SECONDS[unit] == 0:
            return f"{seconds // SECONDS[unit]}{unit}"
    return f"{seconds}s"
