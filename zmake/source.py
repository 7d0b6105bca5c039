"""Read the source pools: live (one `zfs list` + one `zfs get`) or from a capture file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zmake import commands, refine
from zmake.errors import UsageError
from zmake.parse import Capture, parse_capture
from zmake.runner import Runner


def check(runner: Runner, argv: list[str]) -> str:
    result = runner.run(argv)
    if result.returncode != 0:
        raise refine.control_error(result.argv, result.returncode, result.stderr)
    return result.stdout


def imported_pools(runner: Runner) -> tuple[str, ...]:
    pools = tuple(check(runner, ["zpool", "list", "-H", "-o", "name"]).split())
    if not pools:
        raise UsageError("no ZFS pool is imported on this machine")
    return pools


def read_live(runner: Runner, pools: Sequence[str], *, with_version: bool = False) -> Capture:
    """Exactly one batched zfs list and one zfs get for all pools (plus `zfs version`
    when recording a capture)."""
    version = ""
    if with_version:
        version = check(runner, ["zfs", "version"]).splitlines()[0].strip()
    return Capture(
        zfs_version=version,
        pools=tuple(pools),
        list_output=check(runner, commands.source_list_argv(pools)),
        get_output=check(runner, commands.source_get_argv(pools)),
    )


def read_capture(path: str) -> Capture:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    return parse_capture(text, origin=path)
