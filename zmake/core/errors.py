"""Typed errors. The CLI catches ZmakeError in one place and maps it to a one-line message
and the exit code of its class (documented in the README)."""

from __future__ import annotations


class ZmakeError(Exception):
    """Base class: something the user can read in one line and act on."""

    exit_code = 1


class UsageError(ZmakeError):
    """Bad arguments or configuration."""

    exit_code = 2


class ParseError(ZmakeError):
    """zfs output (or a capture file) did not have the expected shape."""

    exit_code = 3


class ZfsUnavailable(ZmakeError):
    """zfs is not installed, or its kernel module is not loaded."""

    exit_code = 4


class CommandFailed(ZmakeError):
    """A control command (zfs list/get/snapshot/destroy …) exited non-zero."""

    exit_code = 5

    def __init__(self, message: str, argv: list[str] | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.argv = argv or []
        self.stderr = stderr


class PermissionDenied(CommandFailed):
    """A delegated (`zfs allow`) permission is missing; the message names it."""


class BackupWritable(PermissionDenied):
    """A backup zmake receives read-only is writable: zfs skips `-o readonly=on` without the
    `readonly` permission, and exits 0. The data is there; the promise is not."""


class RemoteUnreachable(ZmakeError):
    """ssh could not connect or authenticate (ssh exit 255). `lost`: the [USER@]HOST when
    ssh said that the connection itself failed (sides/unreachable.py marks it for the run)."""

    exit_code = 6

    def __init__(self, message: str, lost: str | None = None) -> None:
        super().__init__(message)
        self.lost = lost


class RemotePoolMissing(ZmakeError):
    """The receiving pool does not exist on the backup side."""

    exit_code = 7


class TransferFailed(ZmakeError):
    """The send/receive pipeline failed; a partial receive may be resumable."""

    exit_code = 8


class Stalled(TransferFailed):
    """The watchdog stopped a stream that moved no data for too long (sides/watchdog.py)."""

    def __init__(self, dataset: str, seconds: float) -> None:
        from zmake.core.health import short_age

        super().__init__(
            f"{dataset}: stalled, no data moved for {short_age(seconds)}: stopped, what "
            "arrived is kept (resumable); run again (--stall-timeout sets the limit)"
        )


class PackageRefused(TransferFailed):
    """A restricted key's `zmake serve` takes one snapshot per stream, never a package
    (`send -I` of several): the range is then sent one `-i` stream at a time."""


class ResumeNeedsForce(TransferFailed):
    """The partial receive is a full stream replacing an existing dataset (received with -F):
    ZFS resumes it only with -F again."""


class Refused(ZmakeError):
    """zmake will not proceed without an explicit option (--force, --yes)."""

    exit_code = 9


class Diverged(Refused):
    """The backup has history the source does not have (or no common snapshot)."""


class StaleResumeToken(Refused):
    """The backup holds a partial receive whose source snapshot no longer exists."""


class RawMismatch(Refused):
    """Raw (encrypted) and non-raw streams would be mixed on one target."""


class LockBusy(ZmakeError):
    """Another zmake holds the lock."""

    exit_code = 10
