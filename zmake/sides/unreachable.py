"""Hosts found unreachable during one `zmake backup`: the first send that cannot reach a host
marks it, and every later send of that run to or from it fails at once with that reason, each
once, instead of each waiting out its own ssh timeout (a host that went away mid-night, a key
revoked). The folder is the run's own (ENV, set by `zmake backup` for its make and emptied at
its start); a `zmake send` run by hand has none and marks nothing. The next run tries again."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from zmake.core.errors import RemoteUnreachable
from zmake.sides.side import Side

Report = TypeVar("Report")
ENV = "ZMAKE_UNREACHABLE"


def fresh_folder(run_work: Path) -> Path:
    """An empty folder for this run's marks, below its work folder."""
    folder = run_work / "unreachable"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    return folder


def mark_of(folder: Path, side: Side) -> Path:
    """A host as one ssh command reaches it (two sources behind one gateway's ports differ)."""
    return folder / f"lost-{side.key}"


def reason(folder: Path, sides: Sequence[Side]) -> str | None:
    """Why the first of `sides` that this run found unreachable could not be reached."""
    for side in sides:
        with contextlib.suppress(OSError):
            return mark_of(folder, side).read_text().strip() or "(no reason recorded)"
    return None


def mark(folder: Path, side: Side, why: str) -> None:
    """Written whole (a reader never sees half a reason); a mark that cannot be written
    only costs the next sends their own attempt."""
    path = mark_of(folder, side)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(OSError):
        temporary.write_text(" ".join(why.split()) + "\n")
        os.replace(temporary, path)


def guarded(send: Callable[[str], Report], sides: Sequence[Side],
            folder: str | None = None) -> Callable[[str], Report]:  # fmt: skip
    """`send`, failing at once for a host this run already found unreachable, and marking
    the host whose connection it saw fail."""
    where = folder or os.environ.get(ENV)
    remote = [side for side in sides if side.host is not None]
    if not where or not remote:
        return send
    marks = Path(where)

    def checked(name: str) -> Report:
        earlier = reason(marks, remote)
        if earlier is not None:
            raise RemoteUnreachable(f"{name}: not tried: earlier in this run, {earlier}")
        try:
            return send(name)
        except RemoteUnreachable as exc:
            for side in remote:
                if exc.lost is not None and exc.lost == side.host:
                    mark(marks, side, str(exc))
            raise

    return checked
