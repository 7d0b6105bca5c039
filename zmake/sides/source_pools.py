"""Read the source pools: live (one `zfs list` + one `zfs get`) or from a capture file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zmake.core.errors import ParseError, UsageError
from zmake.core.parse import Capture, parse_capture
from zmake.sides import zfs_argv
from zmake.sides.runner import Runner
from zmake.sides.side import Side
from zmake.sides.zfs_calls import control


def imported_pools(runner: Runner, side: Side) -> tuple[str, ...]:
    pools = tuple(control(runner, side, ["zpool", "list", "-H", "-o", "name"]).split())
    if not pools:
        raise UsageError(f"no ZFS pool is imported{side.where() or ' on this machine'}")
    return pools


def read_live(
    runner: Runner, side: Side, pools: Sequence[str], *, with_version: bool = False
) -> Capture:
    """Exactly one batched zfs list and one zfs get for all pools, on the source side
    (plus `zfs version` when recording a capture)."""
    version = ""
    if with_version:
        version = control(runner, side, ["zfs", "version"]).splitlines()[0].strip()
    return Capture(
        zfs_version=version,
        pools=tuple(pools),
        list_output=control(runner, side, zfs_argv.source_list_argv(pools)),
        get_output=control(runner, side, zfs_argv.source_get_argv(pools)),
    )


def read_capture(path: str) -> Capture:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ParseError(f"{path}: not a zmake capture (not UTF-8 text)") from None
    return parse_capture(text, origin=path)
