"""Prometheus text exposition for node_exporter's textfile collector. Pure: builds the text;
`write_metrics` only writes it atomically (temp file + rename), so the collector never reads
half a file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from zmake.core.health import PUSHED, Health
from zmake.reports.send import write_atomically


@dataclass(frozen=True)
class RunFigures:
    """One `zmake backup` run."""

    start: float
    end: float
    bytes_sent: int
    datasets_failed: int
    success: bool = True  # False: the run stopped before every dataset was tried


def escape(value: str) -> str:
    """A label value: backslash, double quote and line feed escaped (the format's rule)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs: str) -> str:
    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in pairs.items()) + "}"


def family(name: str, kind: str, help_text: str, samples: Sequence[tuple[str, float]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{label} {number(value)}" for label, value in samples]
    return "\n".join(lines) + "\n"


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Group:
    """Datasets that share labels: one target's, or one fleet source's (source, host)."""

    healths: Sequence[Health]
    labels: Mapping[str, str]
    readable: bool | None = None  # a fleet source's: could it be read at all?


def render_metrics(healths: Sequence[Health], target: str, run: RunFigures | None = None) -> str:
    """One target's metrics (render_groups)."""
    return render_groups([Group(healths, {"target": target})], run, {"target": target})


def render_groups(
    groups: Sequence[Group], run: RunFigures | None, run_labels: Mapping[str, str]
) -> str:
    """Per dataset: the newest backed-up snapshot's creation time, bytes pending, up to date;
    per run (when given): start, end, duration, bytes sent, datasets failed."""
    per = [(h, labels(dataset=h.dataset, **g.labels)) for g in groups for h in g.healths]
    parts = [
        family("zmake_backup_last_snapshot_timestamp_seconds", "gauge",
               "Creation time on the source of the newest snapshot the backup holds.",
               [(lbl, h.backed_up_at) for h, lbl in per if h.backed_up_at is not None]),
        family("zmake_backup_pending_bytes", "gauge",
               "Estimated bytes still to send for the backup to be up to date.",
               [(lbl, h.pending_bytes) for h, lbl in per if h.state != PUSHED]),
        family("zmake_backup_up_to_date", "gauge",
               "1 when the backup holds the source's newest snapshot, else 0.",
               [(lbl, 1 if h.up_to_date else 0) for h, lbl in per if h.state != PUSHED]),
    ]  # fmt: skip
    sources = [(labels(**g.labels), 1 if g.readable else 0) for g in groups
               if g.readable is not None]  # fmt: skip
    if sources:  # an unreadable source has no dataset series: this one says it is down
        parts.append(family("zmake_source_readable", "gauge",
                            "1 when the fleet source could be read, else 0.", sources))  # fmt: skip
    if run is not None:
        of_target = labels(**run_labels)
        parts += [
            family("zmake_run_start_timestamp_seconds", "gauge",
                   "When the last zmake backup run started.", [(of_target, run.start)]),
            family("zmake_run_end_timestamp_seconds", "gauge",
                   "When the last zmake backup run ended.", [(of_target, run.end)]),
            family("zmake_run_duration_seconds", "gauge",
                   "How long the last zmake backup run took.", [(of_target, run.end - run.start)]),
            family("zmake_run_bytes_sent_total", "counter",
                   "Bytes sent by the last zmake backup run.", [(of_target, run.bytes_sent)]),
            family("zmake_run_datasets_failed", "gauge",
                   "Datasets the last zmake backup run left not up to date.",
                   [(of_target, run.datasets_failed)]),
            family("zmake_run_success", "gauge",
                   "1 when the last zmake backup run brought every dataset up to date.",
                   [(of_target, 1 if run.success else 0)]),
        ]  # fmt: skip
    return "".join(parts)


def write_metrics(path: Path, text: str) -> None:
    write_atomically(path, text, mode=0o644)  # node_exporter runs as its own user
