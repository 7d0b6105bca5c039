"""How current each backup is, for `zmake check` and the metrics file. Pure: no processes.

A backup's age is the age of the newest snapshot it holds, by that snapshot's `creation` on
the source — what a restore would bring back — never the time zmake last ran. Levels follow
the monitoring-plugins convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from zmake.core.decide import Action, decide
from zmake.core.errors import UsageError
from zmake.core.model import BackupDataset, Dataset, dest_name
from zmake.core.plan import expected_bytes

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
AGE = re.compile(r"(\d+)([smhdw])")


def parse_age(text: str) -> int:
    """`26h`, `2d`, `1d12h`, `90m`, `3600s` or plain seconds → seconds."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    parts = AGE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"not an age: {text!r} (e.g. 26h, 2d, 1d12h, 90m)")
    return sum(int(number) * UNITS[unit] for number, unit in parts)


def short_age(seconds: float) -> str:
    """3h, 2d4h, 45m, 20s: the coarsest two units."""
    seconds = max(0, int(seconds))
    for name, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                            ("m", 60, "s", 1)):  # fmt: skip
        if seconds >= size:
            rest = (seconds % size) // small_size
            return f"{seconds // size}{name}" + (f"{rest}{smaller}" if rest else "")
    return f"{seconds}s"


@dataclass(frozen=True)
class Health:
    dataset: str
    backup: str
    state: str  # up to date, pending, resumable, missing, diverged, no snapshot
    newest_backed_up: str | None  # short name of the newest snapshot the backup holds
    backed_up_at: int | None  # its creation on the source (epoch seconds)
    waiting_since: int | None  # creation of the oldest source snapshot the backup lacks
    pending_bytes: int
    resume_token: bool
    problems: tuple[str, ...] = field(default=())

    @property
    def up_to_date(self) -> bool:
        return self.state == "up to date"


STATES = {
    Action.UP_TO_DATE: "up to date",
    Action.INCREMENTAL: "pending",
    Action.RESUME: "resumable",
    Action.FULL: "missing",
    Action.FULL_OVER_PLACEHOLDER: "missing",
    Action.DIVERGED: "diverged",
    Action.RAW_MISMATCH: "diverged",
    Action.NOTHING_TO_SEND: "no snapshot",
}


def health_of(dataset: Dataset, remote: Mapping[str, BackupDataset], dest: str) -> Health:
    backup_name = dest_name(dataset.name, dest)
    theirs = remote.get(backup_name)
    step = decide(dataset, theirs, dest)
    state = STATES[step.action]
    by_guid = {snap.guid: snap for snap in dataset.snapshots}
    held = [by_guid[s.guid] for s in (theirs.snapshots if theirs else ()) if s.guid in by_guid]
    newest = max(held, key=lambda s: s.createtxg) if held else None
    lacking = [s for s in dataset.snapshots if newest is None or s.createtxg > newest.createtxg]
    problems = []
    if theirs is not None and theirs.resume_token:
        state = "resumable"
        problems.append("a partial receive waits to be resumed")
    if step.action in (Action.DIVERGED, Action.RAW_MISMATCH):
        problems.append(f"diverged: {step.reason}")
    elif state == "missing":
        problems.append(f"not on the backup ({backup_name})")
    elif state == "no snapshot":
        problems.append("no snapshot on the source: nothing can be backed up")
    return Health(
        dataset=dataset.name,
        backup=backup_name,
        state=state,
        newest_backed_up=newest.short if newest else None,
        backed_up_at=(newest.creation or None) if newest else None,
        waiting_since=(lacking[0].creation or None) if lacking else None,
        pending_bytes=0 if state == "up to date" else expected_bytes(dataset, theirs),
        resume_token=bool(theirs and theirs.resume_token),
        problems=tuple(problems),
    )


PUSHED = "pushed"  # a source that pushes by itself: judged from the backup side alone


def pushed_health(backup: BackupDataset) -> Health:
    """A backup that its source pushes here, judged by what it holds: its newest snapshot's
    creation (a received snapshot keeps the source's). What the source has beyond that,
    this host cannot know."""
    newest = backup.snapshots[-1] if backup.snapshots else None
    waiting = ("a partial receive waits to be resumed",) if backup.resume_token else ()
    return Health(
        dataset=backup.name,
        backup=backup.name,
        state=PUSHED if newest else "no snapshot",
        newest_backed_up=newest.short if newest else None,
        backed_up_at=(newest.creation or None) if newest else None,
        waiting_since=None,
        pending_bytes=0,
        resume_token=bool(backup.resume_token),
        problems=waiting or (() if newest else ("no snapshot on the backup",)),
    )


def level_of(health: Health, now: float, warn: int, crit: int) -> tuple[int, str]:
    """The level of one dataset and, unless OK, the line that says why."""
    if health.state == "diverged":
        return CRITICAL, f"{health.dataset}: {health.problems[0]}"
    if health.state == "no snapshot":
        return WARNING, f"{health.dataset}: {health.problems[0]}"
    if health.backed_up_at is not None:
        age = now - health.backed_up_at
        what = f"newest backup @{health.newest_backed_up} is {short_age(age)} old"
    elif health.waiting_since is not None:
        age = now - health.waiting_since
        what = f"never backed up, {short_age(age)} since its first snapshot"
    else:
        return UNKNOWN, f"{health.dataset}: snapshot creation times unknown"
    extra = "".join(f"; {p}" for p in health.problems if not p.startswith("not on"))
    if age >= crit:
        return CRITICAL, f"{health.dataset}: {what}{extra}"
    if age >= warn:
        return WARNING, f"{health.dataset}: {what}{extra}"
    if health.resume_token:
        return WARNING, f"{health.dataset}: {health.problems[0]}"
    return OK, ""


@dataclass(frozen=True)
class CheckVerdict:
    level: int
    summary: str
    lines: tuple[str, ...]


def verdict(
    healths: Sequence[Health], now: float, warn: int, crit: int, notes: Sequence[str] = ()
) -> CheckVerdict:
    """One summary line first (`ZMAKE OK - 42 datasets, oldest backup 3h ago`), then one line
    per problem, worst first. `notes`: warnings about the runs themselves (an overlap)."""
    if warn > crit:
        raise UsageError("--warn must not be longer than --crit")
    graded = [level_of(h, now, warn, crit) for h in healths]
    graded += [(WARNING, note) for note in notes]
    level = max((lvl for lvl, _ in graded), default=OK)
    ages = [now - h.backed_up_at for h in healths if h.backed_up_at is not None]
    oldest = f", oldest backup {short_age(max(ages))} ago" if ages else ""
    name = LEVEL_NAMES[level]
    problems = sorted((lvl, line) for lvl, line in graded if lvl != OK)
    summary = f"ZMAKE {name} - {len(healths)} datasets{oldest}"
    if problems:
        summary += f", {len(problems)} with problems"
    return CheckVerdict(level, summary, tuple(line for _, line in reversed(problems)))
