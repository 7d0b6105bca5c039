"""The one yes/no helper for destructive steps. Never blocks a cron job."""

from __future__ import annotations

import sys
from typing import TextIO

from zmake.core.errors import Refused


def confirm(
    question: str, *, assume_yes: bool, stdin: TextIO | None = None, out: TextIO | None = None
) -> bool:
    """True to proceed. `--yes` proceeds; a terminal is asked; no terminal refuses (raises)."""
    stdin = stdin or sys.stdin
    out = out or sys.stderr
    if assume_yes:
        return True
    if not stdin.isatty():
        raise Refused(f"{question}: refusing without --yes (no terminal to ask)")
    out.write(f"{question} [y/N] ")
    out.flush()
    answer = stdin.readline().strip().lower()
    return answer in ("y", "yes")
