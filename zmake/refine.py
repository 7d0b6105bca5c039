"""Turn a failed command's stderr into a typed error with a one-line message. Pure.

Anchored patterns recognise what zmake can explain; anything else is reported with the
command's own first error line rather than guessed at."""

from __future__ import annotations

import re

from zmake.errors import (
    CommandFailed,
    Diverged,
    RemotePoolMissing,
    RemoteUnreachable,
    TransferFailed,
    ZfsUnavailable,
    ZmakeError,
)

SSH_FAILED = 255
ZFS_UNAVAILABLE = re.compile(
    r"(modules cannot be auto-loaded|Failed to initialize the libzfs library|"
    r"/dev/zfs|zfs: (command )?not found)",
    re.MULTILINE,
)
MISSING = re.compile(
    r"^cannot (?:open '([^']+)': dataset|receive: specified fs \((.+)\)) does not exist",
    re.MULTILINE,
)
MODIFIED = re.compile(r"destination (.+) has been modified", re.MULTILINE)
NOISE = re.compile(r"^(Warning: Permanently added|\s*$)")


def first_line(stderr: str) -> str:
    for line in stderr.splitlines():
        if not NOISE.match(line):
            return line.strip()
    return "no error message"


def zfs_unavailable(stderr: str) -> ZfsUnavailable | None:
    if ZFS_UNAVAILABLE.search(stderr):
        return ZfsUnavailable(f"ZFS is not usable here: {first_line(stderr)}")
    return None


def missing_dataset(stderr: str) -> str | None:
    match = MISSING.search(stderr)
    return (match.group(1) or match.group(2)) if match else None


def control_error(
    argv: list[str], returncode: int, stderr: str, remote: str | None = None
) -> ZmakeError:
    if remote is not None and returncode == SSH_FAILED:
        return RemoteUnreachable(f"cannot reach {remote} over ssh: {first_line(stderr)}")
    unavailable = zfs_unavailable(stderr)
    if unavailable is not None:
        if remote is not None:
            return ZfsUnavailable(f"on {remote}: {unavailable}")
        return unavailable
    where = f" on {remote}" if remote else ""
    verb = " ".join(argv[:2]) if remote is None else "remote command"
    return CommandFailed(
        f"{verb}{where} failed (exit {returncode}): {first_line(stderr)}", argv, stderr
    )


def transfer_error(
    dataset: str,
    stage_argv: list[str],
    returncode: int,
    stderr: str,
    *,
    remote: str | None,
    dest_pool: str,
    is_sender: bool,
) -> ZmakeError:
    """The error for a failed data pipeline, blamed on the stage that failed first."""
    if is_sender:
        return TransferFailed(
            f"{dataset}: zfs send failed (exit {returncode}): {first_line(stderr)}"
        )
    if remote is not None and returncode == SSH_FAILED:
        return RemoteUnreachable(f"cannot reach {remote} over ssh: {first_line(stderr)}")
    unavailable = zfs_unavailable(stderr)
    if unavailable is not None:
        return unavailable
    if missing_dataset(stderr) == dest_pool:
        where = f" on {remote}" if remote else ""
        return RemotePoolMissing(f"receiving pool {dest_pool!r} does not exist{where}")
    modified = MODIFIED.search(stderr)
    if modified:
        return Diverged(
            f"{dataset}: backup {modified.group(1)} was modified since its newest snapshot "
            "(use --force to roll it back)"
        )
    hint = " (partial receive saved: run again to resume)" if "saved" in stderr else ""
    stage = stage_argv[0] if stage_argv else "?"
    return TransferFailed(
        f"{dataset}: receive failed ({stage} exit {returncode}): {first_line(stderr)}{hint}"
    )
