"""zmake/refine.py's blame rules for a failed data pipeline, and send.py's retry of a
ParentRace.

transfer_error(dataset, stages, remote=, dest_pool=) decides, in this order:
1. the receiver (last stage) failed with a message zmake recognises: that error wins, whatever
   the sender did (ssh exit 255 → RemoteUnreachable, the receiving pool missing →
   RemotePoolMissing, `cannot create 'X': dataset already exists` → ParentRace, `destination
   X has been modified` → Diverged, ZFS missing → ZfsUnavailable);
2. else a sender that failed not merely of a broken pipe (exit -13 or 141, or "Broken pipe"
   in its stderr): "zfs send failed";
3. else the first stage that failed on its own ("receive failed (<stage> exit N)"), or the
   receiver when every failure was a broken pipe."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from zmake.commands import Target
from zmake.decide import Action, Step
from zmake.errors import (
    Diverged,
    ParentRace,
    RemotePoolMissing,
    RemoteUnreachable,
    ResumeNeedsForce,
    TransferFailed,
    ZfsUnavailable,
    ZmakeError,
)
from zmake.model import FILESYSTEM, Dataset, Snapshot
from zmake.refine import StageOutcome, transfer_error
from zmake.runner import PipelineResult, Result, Runner
from zmake.send import PARENT_RACE_ATTEMPTS, Sender, SendOptions, SendReport

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


@dataclass(frozen=True)
class Case:
    stages: Sequence[StageOutcome]
    error: type[ZmakeError]  # the exact class
    message: str  # the exact message
    remote: str | None = "me@nas"


RACE_MESSAGE = f"{DATASET}: a parallel receive created dst/home first; retry succeeds"
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
    # --- 1. a recognised receiver message wins -------------------------------------------
    # siblings received in parallel (make -jN) both create their missing parent dst/home:
    # the loser's zfs recv fails at once and its zfs send dies of the broken pipe
    "parallel siblings, sender killed by SIGPIPE": Case(
        [sender(SIGPIPE), ssh(1, RACE)], ParentRace, RACE_MESSAGE
    ),
    "parallel siblings, sender's EPIPE message": Case(
        [sender(1, SEND_EPIPE), ssh(1, RACE)], ParentRace, RACE_MESSAGE
    ),
    # a full receive over a placeholder (-F) was cut off; its resume without -F is refused
    "resume of a full receive over an existing dataset": Case(
        [sender(SIGPIPE), ssh(1, RESUME_EXISTS)], ResumeNeedsForce, RESUME_EXISTS_MESSAGE
    ),
    "parallel siblings, sender exit 141": Case(
        [sender(SHELL_SIGPIPE), ssh(1, RACE)], ParentRace, RACE_MESSAGE
    ),
    "parallel siblings, through zstd, after ssh's host key warning": Case(
        [sender(SIGPIPE), zstd(SIGPIPE, ZSTD_EPIPE), ssh(1, HOSTKEY + RACE)],
        ParentRace,
        RACE_MESSAGE,
    ),
    "parallel siblings on this machine": Case(
        [sender(1, SEND_EPIPE), recv(1, RACE)], ParentRace, RACE_MESSAGE, remote=None
    ),
    "parallel siblings, sender still running fine": Case(
        [sender(OK), ssh(1, RACE)], ParentRace, RACE_MESSAGE
    ),
    "recognised receiver wins over a sender that failed on its own": Case(
        [sender(1, SEND_OWN), ssh(1, RACE)], ParentRace, RACE_MESSAGE
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
    "the receiving pool is missing": Case(
        [sender(SIGPIPE), ssh(1, "cannot open 'dst': dataset does not exist\n")],
        RemotePoolMissing,
        "receiving pool 'dst' does not exist on me@nas",
    ),
    "the receiving pool is missing (zfs recv's wording), on this machine": Case(
        [sender(SIGPIPE), recv(1, "cannot receive: specified fs (dst) does not exist\n")],
        RemotePoolMissing,
        "receiving pool 'dst' does not exist",
        remote=None,
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
        remote=None,
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
        remote=None,
    ),
    "ssh exit 255 without a remote is no unreachable host": Case(
        [sender(SIGPIPE), recv(255, TRUNCATED)],
        TransferFailed,
        f"{DATASET}: receive failed (zfs exit 255): {TRUNCATED.strip()}",
        remote=None,
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
        remote=None,
    ),
    "every failure a broken pipe: the receiver is blamed": Case(
        [sender(SIGPIPE), zstd(SHELL_SIGPIPE), ssh(1, "bash: zstd: Broken pipe\n")],
        TransferFailed,
        f"{DATASET}: receive failed (ssh exit 1): bash: zstd: Broken pipe",
    ),
    "a stage without argv": Case(
        [sender(SIGPIPE), StageOutcome([], 1, "odd\n")],
        TransferFailed,
        f"{DATASET}: receive failed (? exit 1): odd",
        remote=None,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_transfer_error_blames_the_right_stage(case: Case) -> None:
    error = transfer_error(DATASET, case.stages, remote=case.remote, dest_pool="dst")
    assert type(error) is case.error
    assert str(error) == case.message


def test_a_parent_race_is_a_transfer_failure() -> None:
    """Retried by zmake send; if it persists, make sees a failed transfer (exit 8)."""
    error = transfer_error(DATASET, [sender(SIGPIPE), ssh(1, RACE)], remote=None, dest_pool="dst")
    assert isinstance(error, TransferFailed) and error.exit_code == TransferFailed.exit_code == 8


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


# --- zmake send retries a ParentRace ------------------------------------------------------------


class PipelineRunner(Runner):
    """Answers each pipeline() with the next of `answers` (the receiver's exit and stderr)."""

    def __init__(self, answers: list[tuple[int, str]]) -> None:
        super().__init__()
        self.answers = answers
        self.pipelines: list[list[list[str]]] = []

    def pipeline(
        self, stages: Sequence[list[str]], *, passthrough: int | None = None
    ) -> PipelineResult:
        self.pipelines.append(list(stages))
        code, stderr = self.answers.pop(0)
        # a failed receiver makes the sender die of SIGPIPE; any middle stage is fine
        return PipelineResult(
            [
                Result(stages[0], SIGPIPE if code else 0, "", ""),
                *(Result(stage, 0, "", "") for stage in stages[1:-1]),
                Result(stages[-1], code, "", stderr),
            ]
        )


def stream(runner: Runner, sleeps: list[float], monkeypatch: pytest.MonkeyPatch) -> SendReport:
    monkeypatch.setattr(time, "sleep", sleeps.append)  # zmake.send waits between attempts
    snapshot = Snapshot("tank/home/alice@s2", 2, 20)
    local = Dataset(name="tank/home/alice", kind=FILESYSTEM, snapshots=(snapshot,))
    sender_ = Sender(runner, SendOptions(Target("dst", remote="me@nas")))
    report = SendReport(local.name)
    sender_.run_stream(Step(Action.FULL, to_snapshot=snapshot), local, report, 4096)
    return report


def test_a_parent_race_is_retried_until_it_succeeds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = PipelineRunner([(1, RACE), (1, HOSTKEY + RACE), (0, "")])
    sleeps: list[float] = []
    report = stream(runner, sleeps, monkeypatch)
    assert len(runner.pipelines) == 3 and runner.answers == []
    assert runner.pipelines[0] == runner.pipelines[1] == runner.pipelines[2]  # the same stream
    assert sleeps == [1, 2]
    assert capsys.readouterr().err == f"zmake: {RACE_MESSAGE}\n" * 2
    assert report.bytes == 4096 and len(report.actions) == 1  # counted once


def test_a_parent_race_gives_up_after_the_last_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = PipelineRunner([(1, RACE)] * (PARENT_RACE_ATTEMPTS + 1))
    sleeps: list[float] = []
    with pytest.raises(ParentRace, match="dst/home"):
        stream(runner, sleeps, monkeypatch)
    assert len(runner.pipelines) == PARENT_RACE_ATTEMPTS == 3
    assert sleeps == [1, 2]  # no wait after the last attempt


@pytest.mark.parametrize(
    ("stderr", "error"),
    [(TRUNCATED, TransferFailed), (MODIFIED, Diverged)],
)
def test_other_transfer_failures_are_not_retried(
    monkeypatch: pytest.MonkeyPatch, stderr: str, error: type[ZmakeError]
) -> None:
    runner = PipelineRunner([(1, stderr), (0, "")])
    sleeps: list[float] = []
    with pytest.raises(error) as raised:
        stream(runner, sleeps, monkeypatch)
    assert type(raised.value) is error
    assert len(runner.pipelines) == 1 and sleeps == []
