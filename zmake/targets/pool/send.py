"""`zmake send DATASET`: bring one dataset's backup up to its newest snapshot.

One read of the source dataset, one of its backup, then each transfer is one pipeline.
After an incremental the backup's new state is derived rather than queried again, so a run
costs one control query plus one stream per step (and, once per dataset, a few commands to
create its backup's parents and to keep zmake's bookmark of the last snapshot sent)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from zmake.core.decide import Action, Step, apply, decide, is_placeholder, resumable, step_bytes
from zmake.core.errors import (
    BackupWritable,
    Diverged,
    PackageRefused,
    RawMismatch,
    ResumeNeedsForce,
    StaleResumeToken,
    Stalled,
    TransferFailed,
)
from zmake.core.model import BackupDataset, Dataset, dest_name
from zmake.core.parse import parse_estimate
from zmake.core.plan import Selection
from zmake.reports.send import SendReport
from zmake.sides import stderr_errors, zfs_argv, zfs_calls
from zmake.sides.permissions import writable_hint
from zmake.sides.runner import Runner
from zmake.sides.side import Route
from zmake.sides.slots import route_slots
from zmake.targets.pool.batch import Batch
from zmake.targets.pool.parents import Parents

# resume, full, bookmark -i, incremental, and one spare; the loop adds one per snapshot (a
# restricted key takes them one by one): more is a bug
MAX_STEPS = 5


@dataclass(frozen=True)
class SendOptions:
    route: Route
    selection: Selection
    force: bool = False
    progress: bool = False
    dry_run: bool = False
    wait_for_lock: bool = True
    slots: int = 0  # ssh masters shared by this run's jobs (zmake/sides/slots.py); 0: none
    batch: tuple[str, ...] = ()  # every dataset this process sends (batch.py), in order
    stall_after: float | None = None  # seconds without data before a stream is stopped


@dataclass(frozen=True)
class Estimate:
    size: int
    to_name: str | None


def estimate(runner: Runner, route: Route, send: list[str]) -> Estimate | str:
    """Stream size from `zfs send -nvP` (on the sending side); for a token, also the snapshot
    it completes. Returns zfs's error text when it refuses. Only a resume asks: other steps
    take their size from the properties already read (step_bytes)."""
    result = zfs_calls.run(runner, route.source, zfs_argv.estimate_argv(send))
    if result.returncode != 0:
        return result.stderr or f"exit {result.returncode}"
    size, to_name = parse_estimate(result.stdout)
    return Estimate(size, to_name)


def describe(step: Step) -> str:
    if step.action is Action.RESUME:
        return "resume"
    assert step.to_snapshot is not None
    if step.from_snapshot is not None:
        return f"incremental {step.from_snapshot.label}..@{step.to_snapshot.short}"
    return f"{step.action.value} @{step.to_snapshot.short}"


class Sender:
    def __init__(self, runner: Runner, options: SendOptions, run_dir: Path) -> None:
        self.runner = runner
        self.options = options
        self.route = options.route
        self.run_dir = run_dir
        self.batch = Batch(runner, options.batch, run_dir, options.wait_for_lock,
                           options.route.source.host)  # fmt: skip

    def send(self, name: str) -> SendReport:
        with self.batch.locked(name):
            unslotted = self.route
            try:
                report, local, backup = self.send_locked(name)
            finally:
                self.route = unslotted  # the next send of a batch takes a slot of its own
            if backup is not None and self.route.readonly and not backup.readonly:
                why = writable_hint(zfs_calls.user_of(self.route.target), backup.name,
                                    self.route.dest, received=bool(report.actions))  # fmt: skip
                raise BackupWritable(f"{local.name}: {why}")  # no stamp: the next run asks again
            return report

    def send_locked(self, name: str) -> tuple[SendReport, Dataset, BackupDataset | None]:
        slots = 0 if self.options.dry_run else self.options.slots
        # A local source is read before taking a slot: the slot is held only while another
        # machine is involved (a dataset without snapshots needs none); zmake's bookmarks
        # of a local source are made after it.
        source_is_local = self.route.source.is_local
        local = None
        try:
            if source_is_local:
                local = self.batch.source(self.route.source, name)
                slots = slots if local.newest else 0
            with route_slots(self.runner, self.run_dir, self.route, slots) as route:
                self.route = route
                try:
                    if local is None:
                        local = self.batch.source(route.source, name)
                    report, backup = self.replicate(local)
                    if backup is not None:
                        self.batch.bookmark_later(local, backup)
                finally:
                    if not source_is_local:
                        self.batch.keep_bookmarks(route.source, name)
        finally:
            if source_is_local:
                self.batch.keep_bookmarks(self.route.source, name)
        return report, local, backup

    def parents(self) -> Parents:
        return Parents(self.runner, self.route, self.options.selection, self.run_dir,
                       self.run_stream, dry_run=self.options.dry_run)  # fmt: skip

    def backup_name(self, source: str) -> str:
        return dest_name(source, self.route.dest)

    def replicate(self, local: Dataset) -> tuple[SendReport, BackupDataset | None]:
        """Steps until the backup holds the newest snapshot: the report, and the backup's
        state then (None when nothing was sent: no snapshot, or a dry run)."""
        name = local.name
        report = SendReport(name)
        if local.newest is None:
            report.result = "no snapshot to send"
            return report, None
        report.newest = local.newest.short
        started = time.monotonic()
        members = [self.backup_name(member) for member in self.options.batch]
        remote = self.batch.backup(self.route.target, self.backup_name(name), members)
        one_by_one = False
        for _ in range(MAX_STEPS + len(local.snapshots)):
            step = decide(local, remote, self.route.dest, force=self.options.force,
                          one_by_one=one_by_one)  # fmt: skip
            if step.action is Action.UP_TO_DATE:
                break
            self.refuse(step, name)
            if step.action is Action.RESUME:
                remote = self.resume(step, local, remote, report)
            else:
                if remote is None:
                    self.parents().ensure(local, report)
                try:
                    self.transfer(step, local, report)
                except PackageRefused:
                    if one_by_one:
                        raise
                    one_by_one = True  # nothing was received: the same range, one by one
                    continue
                remote = self.after_transfer(step, local, remote)
            if self.options.dry_run:
                report.result = "dry run"
                return report, None
        else:
            raise TransferFailed(f"{name}: still not up to date after {MAX_STEPS} steps and one "
                                 "per snapshot")  # fmt: skip
        report.seconds = time.monotonic() - started
        report.result = "sent" if report.actions else f"up to date (@{local.newest.short})"
        return report, remote

    def refuse(self, step: Step, name: str) -> None:
        if step.action is Action.DIVERGED:
            raise Diverged(f"{name}: {step.reason}")
        if step.action is Action.RAW_MISMATCH:
            raise RawMismatch(f"{name}: {step.reason}")

    def after_transfer(
        self, step: Step, local: Dataset, remote: BackupDataset | None
    ) -> BackupDataset | None:
        """The backup's state after `step`: derived for an incremental; asked again after a
        full stream, which made a new dataset (its guid names zmake's bookmark)."""
        if self.options.dry_run or step.action is Action.INCREMENTAL:
            derived = apply(step, remote, local, self.route.dest)
            return derived if self.options.dry_run else self.confirmed(derived)
        backup = self.backup_name(local.name)
        if step.action is Action.FULL_OVER_PLACEHOLDER:
            self.unmark(backup)
        return zfs_calls.read_backup(self.runner, self.route.target, backup)

    def unmark(self, backup: str) -> None:
        """A replaced placeholder is a backup now: drop the mark (it would only mislead)."""
        argv = zfs_argv.unmark_placeholder_argv(backup)
        result = zfs_calls.run(self.runner, self.route.target, argv)
        if result.returncode != 0:
            print(f"zmake: {backup}: {stderr_errors.first_line(result.stderr)}", file=sys.stderr)

    def resume(
        self, step: Step, local: Dataset, remote: BackupDataset | None, report: SendReport
    ) -> BackupDataset | None:
        assert step.token is not None
        if not resumable(step.token, local):
            if not self.options.force:
                raise StaleResumeToken(
                    f"{local.name}: the backup's partial receive needs a snapshot the source "
                    "no longer has, so it cannot be resumed; --force aborts it (zfs recv -A)"
                )
            return self.abort_partial(local.name, report, "stale")
        checked = estimate(self.runner, self.route, zfs_argv.send_argv(step, local))
        if isinstance(checked, str):  # its snapshots exist: a passing failure, never abort
            why = stderr_errors.first_line(checked)
            raise TransferFailed(f"{local.name}: cannot check the resume token ({why}); run again")
        try:
            self.run_stream(step, local, report, checked.size)
        except ResumeNeedsForce:
            # Its first part replaced a placeholder with -F (the partial state waits beside
            # it, in %recv); ZFS resumes that only with -F again, and only a placeholder may
            # be replaced.
            if is_placeholder(local, remote):
                self.run_stream(replace(step, force_receive=True), local, report, checked.size)
            elif self.options.force:
                return self.abort_partial(local.name, report, "replacing")
            else:
                raise Diverged(
                    f"{local.name}: the backup's partial receive would replace "
                    f"{self.backup_name(local.name)}, which zmake did not create; --force "
                    "aborts it (zfs recv -A)"
                ) from None
        completed = next((s for s in local.snapshots if s.name == checked.to_name), None)
        if completed is None or remote is None or remote.guid == 0:
            backup = self.backup_name(local.name)
            return zfs_calls.read_backup(self.runner, self.route.target, backup)
        return self.confirmed(remote.with_snapshot(completed))

    def confirmed(self, derived: BackupDataset | None) -> BackupDataset | None:
        """A derived state is exact but for `readonly`: a receive turns it on only with the
        permission (zfs exits 0 without), so a backup that was writable is asked again."""
        if derived is None or derived.readonly or not self.route.readonly:
            return derived
        return zfs_calls.read_backup(self.runner, self.route.target, derived.name)

    def abort_partial(self, name: str, report: SendReport, kind: str) -> BackupDataset | None:
        backup = self.backup_name(name)
        zfs_calls.control(self.runner, self.route.target, zfs_argv.abort_resume_argv(backup))
        report.actions.append(f"aborted {kind} partial receive")
        return zfs_calls.read_backup(self.runner, self.route.target, backup)

    def transfer(self, step: Step, local: Dataset, report: SendReport) -> None:
        if step.rollback_to is not None:
            snapshot = f"{self.backup_name(local.name)}@{step.rollback_to.short}"
            if not self.options.dry_run:
                zfs_calls.control(self.runner, self.route.target, zfs_argv.rollback_argv(snapshot))
            report.actions.append(f"rolled back backup to @{step.rollback_to.short}")
        self.run_stream(step, local, report, step_bytes(step, local))

    def run_stream(self, step: Step, local: Dataset, report: SendReport, size: int) -> None:
        send = zfs_calls.located(self.route.source, zfs_argv.send_argv(step, local))
        recv = zfs_calls.located(
            self.route.target,
            zfs_argv.recv_argv(
                step, local, self.backup_name(local.name), readonly=self.route.readonly
            ),
        )
        progress = self.progress_argv(local.name, size)
        stages = self.route.pipeline(send, recv, progress)
        if self.options.dry_run:
            print(zfs_argv.pipeline_text(stages))
        else:
            meter = stages.index(progress) if progress else None
            result = self.runner.pipeline(
                stages, passthrough=meter, stall_after=self.options.stall_after
            )
            if result.stalled:
                raise Stalled(local.name, self.options.stall_after or 0)
            if not result.ok:
                raise stderr_errors.transfer_error(
                    local.name,
                    [
                        stderr_errors.StageOutcome(s.argv, s.returncode, s.stderr)
                        for s in result.stages
                    ],
                    route=self.route,
                    commands=(send, recv),
                    users=(
                        zfs_calls.user_of(self.route.source),
                        zfs_calls.user_of(self.route.target),
                    ),
                )
        report.actions.append(describe(step))
        report.bytes += size

    def progress_argv(self, name: str, size: int) -> list[str] | None:
        if not self.options.progress or self.options.dry_run:
            return None
        import shutil  # only for a terminal: under make, sends start without it

        if shutil.which("pv") is None:
            return None
        # Between two other machines the stream passes here compressed: no size then.
        relayed = not (self.route.source.is_local or self.route.target.is_local)
        sized = size and not (relayed and self.route.compressing)
        return ["pv", "-f", "-c", "-N", name, *(["-s", str(size)] if sized else [])]
