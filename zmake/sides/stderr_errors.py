"""Turn a failed command's stderr into a typed error with a one-line message. Pure.

Anchored patterns recognise what zmake can explain; anything else is reported with the
command's own first error line rather than guessed at."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from zmake.core.errors import (
    CommandFailed,
    Diverged,
    PackageRefused,
    PermissionDenied,
    RemotePoolMissing,
    RemoteUnreachable,
    ResumeNeedsForce,
    TransferFailed,
    ZfsUnavailable,
    ZmakeError,
)
from zmake.core.model import pool_of
from zmake.sides.runner import Result
from zmake.sides.side import Route

SSH_FAILED = 255
# How `zmake serve` (a restricted key's forced command) says no: this exit status, this
# prefix on stderr. commands/serve.py prints it; a client recognises it here.
SERVE_REFUSED = 9
SERVE_REFUSAL = "zmake serve: refused: "
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
# guard/stream.PACKAGE_REFUSED, as zmake serve prints it (nothing of serve's is imported here)
PACKAGE = re.compile(rf"^{SERVE_REFUSAL}the stream: a package of streams", re.MULTILINE)
RESUME_EXISTS = re.compile(r"Resuming recv on existing (?:destination|dataset)", re.IGNORECASE)
ALREADY_EXISTS = re.compile(r"^cannot create '([^']+)': dataset already exists", re.MULTILINE)
PERMISSION = re.compile(r"permission denied", re.IGNORECASE)
NOISE = re.compile(r"^(Warning: Permanently added|\s*$)")


# ssh's own words when the connection itself failed or broke (not a remote command that died
# of a broken pipe, which leaves ssh's stderr empty): what marks a host lost for a run.
CONNECTION_LOST = re.compile(
    r"Connection (refused|reset|timed out|closed)|closed by remote host|No route to host|"
    r"Network is unreachable|Could not resolve|Permission denied \(|Host key verification|"
    r"kex_exchange_identification|not responding|client_loop: send disconnect|"
    r"Control socket connect|mux_client_"
)


def ssh_failure(remote: str, stderr: str) -> RemoteUnreachable:
    """ssh exited 255: its connection failed (the host named as lost) or it could not
    say why (a command that died mid-stream leaves ssh no words: not the host's fault)."""
    lost = remote if CONNECTION_LOST.search(stderr) else None
    return RemoteUnreachable(f"cannot reach {remote} over ssh: {first_line(stderr)}", lost)


def first_line(stderr: str) -> str:
    for line in stderr.splitlines():
        if not NOISE.match(line):
            return line.strip()
    return "no error message"


def complained(stderr: str) -> bool:
    return first_line(stderr) != "no error message"


def zfs_unavailable(stderr: str) -> ZfsUnavailable | None:
    if ZFS_UNAVAILABLE.search(stderr):
        return ZfsUnavailable(f"ZFS is not usable here: {first_line(stderr)}")
    return None


def only_missing_dataset(result: Result, name: str) -> bool:
    """The command failed only because `name` does not exist (ssh itself did not fail)."""
    return result.returncode != SSH_FAILED and missing_dataset(result.stderr) == name


def unreachable(result: Result, host: str | None) -> bool:
    """ssh to `host` failed (exit 255): nothing ran there."""
    return host is not None and result.returncode == SSH_FAILED


def refused_by_serve(result: Result) -> bool:
    """A restricted key's `zmake serve` refused the command (nothing ran)."""
    return result.returncode == SERVE_REFUSED and SERVE_REFUSAL in result.stderr


def missing_dataset(stderr: str) -> str | None:
    match = MISSING.search(stderr)
    return (match.group(1) or match.group(2)) if match else None


def only_missing(stderr: str) -> set[str] | None:
    """The datasets `zfs list A B …` reported missing, when that is all it complained of."""
    missing = set()
    for line in stderr.splitlines():
        if NOISE.match(line):
            continue
        match = MISSING.match(line)
        if match is None:
            return None
        missing.add(match.group(1) or match.group(2))
    return missing


def control_error(
    argv: list[str],
    returncode: int,
    stderr: str,
    remote: str | None = None,
    *,
    command: Sequence[str] | None = None,
    user: str = "",
) -> ZmakeError:
    """`command`, the zfs command itself (`argv` may be the ssh that ran it), lets a
    "permission denied" name the permission missing and the `zfs allow` that grants it."""
    if remote is not None and returncode == SSH_FAILED:
        return ssh_failure(remote, stderr)
    unavailable = zfs_unavailable(stderr)
    if unavailable is not None:
        if remote is not None:
            return ZfsUnavailable(f"on {remote}: {unavailable}")
        return unavailable
    where = f" on {remote}" if remote else ""
    inner = list(command) if command is not None else argv
    verb = " ".join(inner[:2]).replace("/usr/sbin/", "").replace("/sbin/", "")
    denied = permission_hint(inner, stderr, user)
    if denied is not None:
        return PermissionDenied(f"{verb}{where}: {first_line(stderr)}: {denied}", argv, stderr)
    return CommandFailed(
        f"{verb}{where} failed (exit {returncode}): {first_line(stderr)}", argv, stderr
    )


@dataclass(frozen=True)
class StageOutcome:
    argv: list[str]
    returncode: int
    stderr: str

    @property
    def failed(self) -> bool:
        return self.returncode != 0

    @property
    def broken_pipe(self) -> bool:
        """Failed only because the next stage stopped reading."""
        return self.returncode in (-13, 141) or "Broken pipe" in self.stderr


def transfer_error(
    dataset: str,
    stages: Sequence[StageOutcome],
    *,
    route: Route,
    commands: tuple[Sequence[str], Sequence[str]] | None = None,
    users: tuple[str, str] = ("the user", "the user"),
) -> ZmakeError:
    """The error for a failed data pipeline. What the receiver said wins when it is
    recognised (a sender then only failed of the broken pipe); else the first stage that
    failed on its own is blamed. `commands`, the zfs send and recv themselves, and `users`,
    who runs each, let a "permission denied" name what to allow."""
    receiver, sender = stages[-1], stages[0]
    denied = permission_denied(dataset, stages, route, commands, users)
    if denied is not None:
        return denied
    if route.source.host is not None:
        if sender.returncode == SSH_FAILED:
            # ssh without a word: its command died, as a `zfs send` does when the receiver
            # stops reading. A receiver that says why wins.
            known = None
            if receiver.failed and not complained(sender.stderr):
                known = receiver_error(dataset, receiver, route=route)
            return known or ssh_failure(route.source.host, sender.stderr)
        if receiver.failed and not sender.failed and complained(sender.stderr):
            # The login shell there may lack pipefail: `zfs send` failed but its compressor
            # exited 0, and the receiver refused the cut stream. Name the real cause.
            return TransferFailed(
                f"{dataset}: zfs send on {route.source.host} failed: {first_line(sender.stderr)}"
            )
    if receiver.failed:
        known = receiver_error(dataset, receiver, route=route)
        if known is not None:
            return known
    if sender.failed and not sender.broken_pipe:
        return TransferFailed(
            f"{dataset}: zfs send failed (exit {sender.returncode}): {first_line(sender.stderr)}"
        )
    culprit = next((s for s in stages if s.failed and not s.broken_pipe), receiver)
    hint = " (partial receive saved: run again to resume)" if "saved" in receiver.stderr else ""
    stage = culprit.argv[0] if culprit.argv else "?"
    return TransferFailed(
        f"{dataset}: receive failed ({stage} exit {culprit.returncode}): "
        f"{first_line(culprit.stderr or receiver.stderr)}{hint}"
    )


def permission_denied(
    dataset: str,
    stages: Sequence[StageOutcome],
    route: Route,
    commands: tuple[Sequence[str], Sequence[str]] | None,
    users: tuple[str, str],
) -> ZmakeError | None:
    if commands is None:
        return None
    for stage, command, user, side in (
        (stages[-1], commands[1], users[1], route.target),
        (stages[0], commands[0], users[0], route.source),
    ):
        denied = permission_hint(command, stage.stderr, user)
        if denied is not None:
            return PermissionDenied(
                f"{dataset}: zfs {command[1]}{side.where()}: {first_line(stage.stderr)}: {denied}",
                list(command),
                stage.stderr,
            )
    return None


def permission_hint(command: Sequence[str], stderr: str, user: str) -> str | None:
    """For a zfs command refused for lack of a delegated permission: which permission, and
    the `zfs allow` that grants it (None for anything else)."""
    from zmake.sides.permissions import hint, needed

    if not PERMISSION.search(stderr) or needed(command) is None:
        return None
    return hint(command, user or "the user")


def receiver_error(dataset: str, receiver: StageOutcome, *, route: Route) -> ZmakeError | None:
    stderr = receiver.stderr
    remote = route.target.host
    if remote is not None and receiver.returncode == SSH_FAILED:
        return ssh_failure(remote, stderr)
    unavailable = zfs_unavailable(stderr)
    if unavailable is not None:
        return unavailable
    if missing_dataset(stderr) in (route.dest, pool_of(route.dest)):
        return RemotePoolMissing(
            f"receiving dataset {route.dest!r} does not exist{route.target.where()}"
        )
    if PACKAGE.search(stderr):
        return PackageRefused(f"{dataset}: the key there takes one snapshot per stream")
    if RESUME_EXISTS.search(stderr):
        return ResumeNeedsForce(f"{dataset}: resuming a full receive over an existing dataset")
    modified = MODIFIED.search(stderr)
    if modified:
        return Diverged(
            f"{dataset}: backup {modified.group(1)} was modified since its newest snapshot "
            "(use --force to roll it back)"
        )
    return None
