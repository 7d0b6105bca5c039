"""What one `zmake send` did, for the person (one line) and for `zmake backup` (JSON lines)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zmake.core.names import encode


@dataclass
class SendReport:
    dataset: str
    actions: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    newest: str = ""
    result: str = "ok"
    error: str = ""

    def line(self) -> str:
        if self.error:
            return f"{self.dataset}: NOT up to date: {self.error}"
        if not self.actions:
            return f"{self.dataset}: {self.result}"
        rate = self.bytes / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.dataset}: {' + '.join(self.actions)}, ~{human(self.bytes)} in "
            f"{self.seconds:.1f} s ({human(rate)}/s)"
        )

    def record(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "actions": self.actions,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "newest": self.newest,
            "result": self.result,
            "error": self.error,
        }


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def append_record(path: Path, report: SendReport) -> None:
    import json  # only `zmake backup` asks for a report

    with open(path, "a") as handle:
        handle.write(json.dumps(report.record()) + "\n")


def failure_file(folder: Path, dataset: str) -> Path:
    return folder / (encode(dataset) + ".failed")


def note_failure(folder: Path, dataset: str, message: str) -> None:
    """Make's `all` target prints these at the end of the run (and fails)."""
    path = failure_file(folder, dataset)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(path, message.rstrip("\n") + "\n")


def clear_failure(folder: Path, dataset: str) -> None:
    failure_file(folder, dataset).unlink(missing_ok=True)


def write_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Whole or not at all (a temp file of this process, renamed over `path`): a reader —
    make, a collector, a monitoring check — never sees half a file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text)
    if mode is not None:
        temp.chmod(mode)
    temp.replace(path)


def write_if_changed(path: Path, text: str) -> bool:
    """Atomically (temp file + rename), and only when the text differs: an unchanged
    Makefile keeps its mtime, so make does not restart."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    import tempfile

    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return True


def write_stamp(path: Path, text: str) -> None:
    """Mark a make target done. Only an optimisation: a send that runs asks the backup."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(path, text)


def send_recorded(
    sender: Callable[[str], SendReport],
    name: str,
    *,
    dry_run: bool = False,
    stamp: Path | None = None,
    failures: Path | None = None,
    report_file: Path | None = None,
) -> SendReport:
    """Send (to a pool: Sender(…).send; to a directory: tofile.FileSender(…).send), then
    record the outcome where make and `zmake backup` look: the stamp file (up to date), the
    failures folder (why not: make goes on to the parents, `all` lists it), the JSON report.
    Without a failures folder an error is raised as usual."""
    from zmake.core.errors import ZmakeError

    try:
        report = sender(name)
    except ZmakeError as exc:
        if failures is None:
            raise
        print(f"zmake: {exc}", file=sys.stderr)
        report = SendReport(name, result="failed", error=str(exc).removeprefix(f"{name}: "))
        note_failure(failures, name, f"{name}: {report.error}")
    else:
        if failures is not None:
            clear_failure(failures, name)
        if stamp is not None and not dry_run:
            write_stamp(stamp, f"{name}\t{report.result}\n")
    if report_file is not None:
        append_record(report_file, report)
    return report
