"""Hosts found unreachable during one `zmake backup`: the first send that cannot reach a host
marks it, and every later send of that run to or from it fails at once with that reason, each
once, instead of each waiting out its own ssh timeout (a host that went away mid-night, a key
revoked). The folder is the run's own (ENV, set by `zmake backup` for its make and emptied at
its start); a `zmake send` run by hand has none and marks nothing. The next run tries again."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from zmake.core.errors import RemoteUnreachable

Report = TypeVar("Report")
ENV = "ZMAKE_UNREACHABLE"


def fresh_folder(run_work: Path) -> Path:
    """An empty folder for this run's marks, below its work folder."""
    folder = run_work / "unreachable"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    return folder


def mark_of(folder: Path, host: str) -> Path:
    return folder / quote(host, safe="@.-_")


def reason(folder: Path, hosts: Sequence[str]) -> str | None:
    """Why the first of `hosts` that this run found unreachable could not be reached."""
    for host in hosts:
        try:
            return mark_of(folder, host).read_text().strip()
        except OSError:
            continue
    return None


def guarded(send: Callable[[str], Report], hosts: Sequence[str],
            folder: str | None = None) -> Callable[[str], Report]:  # fmt: skip
    """`send`, failing at once for a host this run already found unreachable, and marking
    the host it cannot reach."""
    where = folder or os.environ.get(ENV)
    if not where or not hosts:
        return send
    marks = Path(where)

    def checked(name: str) -> Report:
        earlier = reason(marks, hosts)
        if earlier is not None:
            raise RemoteUnreachable(f"{name}: not tried: earlier in this run, {earlier}")
        try:
            return send(name)
        except RemoteUnreachable as exc:
            if exc.host is not None and exc.host in hosts:
                mark_of(marks, exc.host).write_text(" ".join(str(exc).split()) + "\n")
            raise

    return checked
