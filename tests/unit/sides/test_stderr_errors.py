"""zmake/sides/stderr_errors.py's blame rules for a failed data pipeline.

transfer_error(dataset, stages, route=) decides, in this order:
0. pulling: the source's ssh could not connect (255) → RemoteUnreachable naming the source;
   the receiver refused a cut stream while the source's ssh exited 0 but complained (its
   login shell may lack pipefail) → "zfs send on HOST failed";
1. the receiver (last stage) failed with a message zmake recognises: that error wins, whatever
   the sender did (ssh exit 255 → RemoteUnreachable, the receiving dataset or pool missing →
   RemotePoolMissing, `destination X has been modified` → Diverged, a resume that needs -F →
   ResumeNeedsForce, ZFS missing → ZfsUnavailable);
2. else a sender that failed not merely of a broken pipe (exit -13 or 141, or "Broken pipe"
   in its stderr): "zfs send failed";
3. else the first stage that failed on its own ("receive failed (<stage> exit N)"), or the
   receiver when every failure was a broken pipe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from zmake.core.errors import (
    Diverged,
    PackageRefused,
    RemotePoolMissing,
    RemoteUnreachable,
    ResumeNeedsForce,
    TransferFailed,
    ZfsUnavailable,
    ZmakeError,
)
from zmake.sides.side import Route, Side
from zmake.sides.stderr_errors import StageOutcome, transfer_error

DATASET = "tank/home/alice"
SEND = ["zfs", "send", "-L", "-c", "tank/home/alice@s2"]
ZSTD = ["zstd", "-c"]
SSH = ["ssh", "-S", "none", "me@nas", "zfs recv -u -s -o canmount=noauto -d dst"]
RECV = ["zfs", "recv", "-u", "-s", "-o", "canmount=noauto", "-d", "dst"]

OK = 0
SIGPIPE = -13  # killed by SIGPIPE (how Popen reports it)
SHELL_SIGPIPE = 141  # 128 + SIGPIPE, as a shell reports it
SEND_EPIPE = "warning: cannot send 'tank/home/alice@s2': Broken pipe\n"
ZSTD_EPIPE = "zstd: error 70 : Write error : cannot write block : Broken pipe \n"
SEND_OWN = "cannot open 'tank/home/alice@s2': dataset does not exist\n"
HOSTKEY = "Warning: Permanently added 'nas' (ED25519) to the list of known hosts.\n"
RACE = "cannot create 'dst/home': dataset already exists\n"
TRUNCATED = "cannot receive new filesystem stream: incomplete stream\n"
SAVED = (
    "cannot receive incremental stream: checksum mismatch\n"
    "Partially received snapshot is saved.\n"
    "A resuming stream can be generated on the sending system by running:\n"
)


def sender(code: int, stderr: str = "") -> StageOutcome:
    return StageOutcome(SEND, code, stderr)


def zstd(code: int, stderr: str = "") -> StageOutcome:
    return StageOutcome(ZSTD, code, stderr)


def ssh(code: int, stderr: str = "") -> StageOutcome:
    return StageOutcome(SSH, code, stderr)


def recv(code: int, stderr: str = "") -> StageOutcome:
    return StageOutcome(RECV, code, stderr)


PUSH = Route(Side(), Side("me@nas"), "dst")
LOCAL = Route(Side(), Side(), "dst")
PULL = Route(Side("me@laptop"), Side(), "dst")


@dataclass(frozen=True)
class Case:
    stages: Sequence[StageOutcome]
    error: type[ZmakeError]  # the exact class
    message: str  # the exact message
    route: Route = PUSH


NO_ROUTE = "ssh: connect to host laptop port 22: No route to host\n"
PULLED = ["ssh", "-S", "none", "me@laptop", "zfs send -L -c tank/home/alice@s2 | zstd -c"]
UNREACHABLE = "cannot reach me@nas over ssh: ssh: connect to host nas port 22: Connection refused"
DIVERGED_MESSAGE = (
    f"{DATASET}: backup dst/home/alice was modified since its newest snapshot "
    "(use --force to roll it back)"
)
RESUME_EXISTS = (
    "cannot receive resume stream: Resuming recv on existing destination 'dst/home'\n"
    " must specify -F to overwrite it\n"
)
RESUME_EXISTS_MESSAGE = f"{DATASET}: resuming a full receive over an existing dataset"
MODIFIED = "cannot receive incremental stream: destination dst/home/alice has been modified\n"

CASES = {
    # --- 0. pulling ------------------------------------------------------------------------
    "pull: the source is unreachable": Case(
        [StageOutcome(PULLED, 255, NO_ROUTE), recv(1, TRUNCATED)],
        RemoteUnreachable,
        f"cannot reach me@laptop over ssh: {NO_ROUTE.strip()}",
        PULL,
    ),
    "pull: zfs send failed there, its compressor exited 0": Case(
        [StageOutcome(PULLED, 0, SEND_OWN), recv(1, TRUNCATED)],
        TransferFailed,
        f"{DATASET}: zfs send on me@laptop failed: {SEND_OWN.strip()}",
        PULL,
    ),
    "pull: ssh exits 255 without a word after the receiver refused": Case(
        [StageOutcome(PULLED, 255, ""), recv(1, MODIFIED)], Diverged, DIVERGED_MESSAGE, PULL
    ),
    "pull: ssh exits 255 without a word, the receiver only saw the cut": Case(
        [StageOutcome(PULLED, 255, ""), recv(1, TRUNCATED)],
        RemoteUnreachable,
        "cannot reach me@laptop over ssh: no error message",
        PULL,
    ),
    "pull: a recognised receiver message still wins over a quiet source": Case(
        [StageOutcome(PULLED, 0, HOSTKEY), recv(1, MODIFIED)], Diverged, DIVERGED_MESSAGE, PULL
    ),
    # --- 1. a recognised receiver message wins -------------------------------------------
    "modified backup, sender killed by SIGPIPE": Case(
        [sender(SIGPIPE), ssh(1, MODIFIED)], Diverged, DIVERGED_MESSAGE
    ),
    # a full receive over a placeholder (-F) was cut off; its resume without -F is refused
    "resume of a full receive over an existing dataset": Case(
        [sender(SIGPIPE), ssh(1, RESUME_EXISTS)], ResumeNeedsForce, RESUME_EXISTS_MESSAGE
    ),
    "modified backup, sender exit 141": Case(
        [sender(SHELL_SIGPIPE), ssh(1, MODIFIED)], Diverged, DIVERGED_MESSAGE
    ),
    "modified backup, through zstd, after ssh's host key warning": Case(
        [sender(SIGPIPE), zstd(SIGPIPE, ZSTD_EPIPE), ssh(1, HOSTKEY + MODIFIED)],
        Diverged,
        DIVERGED_MESSAGE,
    ),
    "modified backup on this machine": Case(
        [sender(1, SEND_EPIPE), recv(1, MODIFIED)], Diverged, DIVERGED_MESSAGE, LOCAL
    ),
    "modified backup, sender still running fine": Case(
        [sender(OK), ssh(1, MODIFIED)], Diverged, DIVERGED_MESSAGE
    ),
    "recognised receiver wins over a sender that failed on its own": Case(
        [sender(1, SEND_OWN), ssh(1, MODIFIED)], Diverged, DIVERGED_MESSAGE
    ),
    "an unrecognised receiver message does not": Case(
        [sender(1, SEND_OWN), ssh(1, RACE)],
        TransferFailed,
        f"{DATASET}: zfs send failed (exit 1): {SEND_OWN.strip()}",
    ),
    "ssh cannot connect": Case(
        [sender(SIGPIPE), ssh(255, "ssh: connect to host nas port 22: Connection refused\n")],
        RemoteUnreachable,
        UNREACHABLE,
    ),
    "ssh cannot connect, sender failed too": Case(
        [
            sender(1, SEND_OWN),
            ssh(255, "ssh: connect to host nas port 22: Connection refused\n"),
        ],
        RemoteUnreachable,
        UNREACHABLE,
    ),
    "the receiving dataset is missing": Case(
        [sender(SIGPIPE), ssh(1, "cannot open 'dst': dataset does not exist\n")],
        RemotePoolMissing,
        "receiving dataset 'dst' does not exist on me@nas",
    ),
    "the receiving dataset is missing (zfs recv's wording), on this machine": Case(
        [sender(SIGPIPE), recv(1, "cannot receive: specified fs (dst) does not exist\n")],
        RemotePoolMissing,
        "receiving dataset 'dst' does not exist",
        LOCAL,
    ),
    "the backup was modified": Case(
        [sender(1, SEND_EPIPE), ssh(1, MODIFIED)], Diverged, DIVERGED_MESSAGE
    ),
    "no ZFS on the backup": Case(
        [sender(SIGPIPE), ssh(1, "The ZFS modules cannot be auto-loaded.\n")],
        ZfsUnavailable,
        "ZFS is not usable here: The ZFS modules cannot be auto-loaded.",
    ),
    # --- 2. else a sender that failed on its own --------------------------------------------
    "sender failed on its own, receiver saw a truncated stream": Case(
        [sender(1, SEND_OWN), ssh(1, TRUNCATED)],
        TransferFailed,
        f"{DATASET}: zfs send failed (exit 1): {SEND_OWN.strip()}",
    ),
    "sender failed on its own, receiver fine": Case(
        [sender(2, "internal error: Invalid argument\n"), recv(0)],
        TransferFailed,
        f"{DATASET}: zfs send failed (exit 2): internal error: Invalid argument",
        LOCAL,
    ),
    "sender killed (not by SIGPIPE)": Case(
        [sender(-9), ssh(1, TRUNCATED)],
        TransferFailed,
        f"{DATASET}: zfs send failed (exit -9): no error message",
    ),
    # --- 3. else the first stage that failed on its own, or the receiver ---------------------
    "unrecognised receiver error, sender's broken pipe": Case(
        [sender(SIGPIPE), ssh(1, HOSTKEY + TRUNCATED)],
        TransferFailed,
        f"{DATASET}: receive failed (ssh exit 1): {TRUNCATED.strip()}",
    ),
    "unrecognised receiver error, sender's EPIPE message": Case(
        [sender(1, SEND_EPIPE), recv(1, TRUNCATED)],
        TransferFailed,
        f"{DATASET}: receive failed (zfs exit 1): {TRUNCATED.strip()}",
        LOCAL,
    ),
    "ssh exit 255 without a remote is no unreachable host": Case(
        [sender(SIGPIPE), recv(255, TRUNCATED)],
        TransferFailed,
        f"{DATASET}: receive failed (zfs exit 255): {TRUNCATED.strip()}",
        LOCAL,
    ),
    "another dataset missing is not the pool missing": Case(
        [sender(SIGPIPE), ssh(1, "cannot open 'dst/home': dataset does not exist\n")],
        TransferFailed,
        f"{DATASET}: receive failed (ssh exit 1): cannot open 'dst/home': dataset does not exist",
    ),
    "the compressor failed on its own": Case(
        [sender(SIGPIPE), zstd(1, "zstd: error 11 : Allocation error\n"), ssh(1, TRUNCATED)],
        TransferFailed,
        f"{DATASET}: receive failed (zstd exit 1): zstd: error 11 : Allocation error",
    ),
    "the compressor failed on its own, without a message": Case(
        [sender(SIGPIPE), zstd(1), ssh(1, TRUNCATED)],
        TransferFailed,
        f"{DATASET}: receive failed (zstd exit 1): {TRUNCATED.strip()}",
    ),
    "the compressor only of a broken pipe": Case(
        [sender(SIGPIPE), zstd(SIGPIPE, ZSTD_EPIPE), ssh(1, TRUNCATED)],
        TransferFailed,
        f"{DATASET}: receive failed (ssh exit 1): {TRUNCATED.strip()}",
    ),
    "partial receive saved": Case(
        [sender(SIGPIPE), ssh(1, SAVED)],
        TransferFailed,
        f"{DATASET}: receive failed (ssh exit 1): cannot receive incremental stream: checksum "
        "mismatch (partial receive saved: run again to resume)",
    ),
    "partial receive saved, the compressor to blame": Case(
        [sender(SIGPIPE), zstd(1, "zstd: error 11 : Allocation error\n"), ssh(1, SAVED)],
        TransferFailed,
        f"{DATASET}: receive failed (zstd exit 1): zstd: error 11 : Allocation error "
        "(partial receive saved: run again to resume)",
    ),
    "receiver killed without a word": Case(
        [sender(SIGPIPE), recv(-9)],
        TransferFailed,
        f"{DATASET}: receive failed (zfs exit -9): no error message",
        LOCAL,
    ),
    "every failure a broken pipe: the receiver is blamed": Case(
        [sender(SIGPIPE), zstd(SHELL_SIGPIPE), ssh(1, "bash: zstd: Broken pipe\n")],
        TransferFailed,
        f"{DATASET}: receive failed (ssh exit 1): bash: zstd: Broken pipe",
    ),
    "a restricted key refuses a package: the range goes again one by one": Case(
        [
            sender(1, SEND_EPIPE),
            ssh(
                9,
                "zmake serve: refused: the stream: a package of streams "
                "(send -I, -R, -p): one snapshot per stream here\n",
            ),
        ],
        PackageRefused,
        f"{DATASET}: the key there takes one snapshot per stream",
    ),
    "a stage without argv": Case(
        [sender(SIGPIPE), StageOutcome([], 1, "odd\n")],
        TransferFailed,
        f"{DATASET}: receive failed (? exit 1): odd",
        LOCAL,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_transfer_error_blames_the_right_stage(case: Case) -> None:
    error = transfer_error(DATASET, case.stages, route=case.route)
    assert type(error) is case.error
    assert str(error) == case.message


@pytest.mark.parametrize(
    ("code", "stderr", "broken"),
    [
        (SIGPIPE, "", True),
        (SHELL_SIGPIPE, "", True),
        (1, SEND_EPIPE, True),
        (1, SEND_OWN, False),
        (13, "", False),  # an exit status of 13 is not a signal
        (-15, "", False),
        (0, "", False),
    ],
)
def test_broken_pipe(code: int, stderr: str, broken: bool) -> None:
    stage = StageOutcome(SEND, code, stderr)
    assert stage.broken_pipe is broken
    assert stage.failed is (code != 0)
