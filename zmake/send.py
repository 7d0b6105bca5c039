"""`zmake send DATASET` and `zmake umount`: the workflows that drive the runner.

One local zfs call reads the dataset, one remote call reads the backup's state, then each
transfer is one pipeline. After a transfer the backup's new state is derived rather than
queried again, so a run costs one control connection plus one per stream."""

from __future__ import annotations

import fcntl
import hashlib
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from zmake import commands, refine
from zmake.commands import Target
from zmake.decide import Action, Step, apply, decide, is_placeholder, step_bytes
from zmake.errors import (
    Diverged,
    LockBusy,
    ParentRace,
    RawMismatch,
    RemotePoolMissing,
    ResumeNeedsForce,
    StaleResumeToken,
    TransferFailed,
)
from zmake.model import Dataset, RemoteDataset, dest_name
from zmake.parse import parse_local_dataset, parse_remote
from zmake.runner import Runner
from zmake.slots import ssh_slot

PARENT_RACE_ATTEMPTS = 3
MAX_STEPS = 4  # resume, full, incremental, and one spare: a loop beyond that is a bug


@dataclass(frozen=True)
class SendOptions:
    target: Target
    compress: str = "none"
    force: bool = False
    progress: bool = False
    dry_run: bool = False
    wait_for_lock: bool = True
    run_dir: Path | None = None
    report_file: Path | None = None
    slots: int = 0  # ssh masters shared by this run's jobs (zmake/slots.py); 0: none
    stamp: Path | None = None  # written when the dataset is up to date (make's target)


@dataclass
class SendReport:
    dataset: str
    actions: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    newest: str = ""
    result: str = "ok"

    def line(self) -> str:
        if not self.actions:
            return f"{self.dataset}: {self.result}"
        rate = self.bytes / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.dataset}: {' + '.join(self.actions)}, ~{human(self.bytes)} in "
            f"{self.seconds:.1f} s ({human(rate)}/s)"
        )


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def read_local(runner: Runner, name: str) -> Dataset:
    result = runner.run(commands.local_dataset_argv(name))
    if result.returncode != 0:
        raise refine.control_error(result.argv, result.returncode, result.stderr)
    return parse_local_dataset(result.stdout, name)


def read_remote(runner: Runner, target: Target, name: str) -> RemoteDataset | None:
    """The backup's state of `name`, or None when it does not exist there."""
    result = runner.run(target.wrap(commands.remote_dataset_argv(name)))
    if result.returncode != 0:
        if refine.missing_dataset(result.stderr) == name and result.returncode != 255:
            return None
        raise refine.control_error(result.argv, result.returncode, result.stderr, target.remote)
    return parse_remote(result.stdout).get(name)


def read_remote_tree(runner: Runner, target: Target) -> dict[str, RemoteDataset]:
    """Everything under the receiving pool, in one call (for estimates and status)."""
    result = runner.run(target.wrap(commands.remote_tree_argv(target.dest_pool)))
    if result.returncode != 0:
        if refine.missing_dataset(result.stderr) == target.dest_pool:
            where = f" on {target.remote}" if target.remote else ""
            raise RemotePoolMissing(f"receiving pool {target.dest_pool!r} does not exist{where}")
        raise refine.control_error(result.argv, result.returncode, result.stderr, target.remote)
    return parse_remote(result.stdout)


def run_remote(runner: Runner, target: Target, argv: list[str]) -> str:
    result = runner.run(target.wrap(argv))
    if result.returncode != 0:
        raise refine.control_error(result.argv, result.returncode, result.stderr, target.remote)
    return result.stdout


@contextmanager
def dataset_lock(run_dir: Path, dataset: str, *, wait: bool) -> Iterator[None]:
    """Two makes must never send one dataset at once: an flock per dataset."""
    locks = run_dir / "locks"
    locks.mkdir(mode=0o700, exist_ok=True)
    path = locks / (hashlib.sha256(dataset.encode()).hexdigest()[:32] + ".lock")
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise LockBusy(f"{dataset}: another zmake send holds its lock") from None
            print(f"{dataset}: waiting for another zmake send to finish", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(dataset)
        handle.flush()
        yield


@dataclass(frozen=True)
class Estimate:
    size: int
    to_name: str | None


def estimate(runner: Runner, send: list[str]) -> Estimate | str:
    """Stream size from `zfs send -nvP`; for a token, also the snapshot it completes.
    Returns the error text when zfs refuses (a token whose snapshot is gone). Only a resume
    asks: other steps take their size from the properties already read (step_bytes)."""
    result = runner.run(commands.estimate_argv(send))
    if result.returncode != 0:
        return result.stderr or f"exit {result.returncode}"
    size, to_name = 0, None
    for line in result.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "size" and len(fields) == 2 and fields[1].isdigit():
            size = int(fields[1])
        elif fields[0] == "full" and len(fields) >= 2:
            to_name = fields[1]
        elif fields[0] == "incremental" and len(fields) >= 3:
            to_name = fields[2]
    return Estimate(size, to_name)


def describe(step: Step) -> str:
    if step.action is Action.RESUME:
        return "resume"
    assert step.to_snapshot is not None
    if step.from_snapshot is not None:
        return f"incremental @{step.from_snapshot.short}..@{step.to_snapshot.short}"
    return f"{step.action.value} @{step.to_snapshot.short}"


class Sender:
    def __init__(self, runner: Runner, options: SendOptions) -> None:
        self.runner = runner
        self.options = options
        self.target = options.target

    def send(self, name: str, run_dir: Path) -> SendReport:
        slots = 0 if self.options.dry_run else self.options.slots
        with dataset_lock(run_dir, name, wait=self.options.wait_for_lock):
            # Read before taking a slot: the slot is held only while the backup is involved.
            local = read_local(self.runner, name)
            if local.newest is None:
                slots = 0  # nothing to ask the backup
            with ssh_slot(self.runner, run_dir, self.options.target, slots) as target:
                self.target = target
                report = self.replicate(local)
        self.write_report(report)
        if self.options.stamp is not None and not self.options.dry_run:
            write_stamp(self.options.stamp, f"{name}\t{report.result}\n")
        return report

    def replicate(self, local: Dataset) -> SendReport:
        name = local.name
        report = SendReport(name)
        if local.newest is None:
            report.result = "no snapshot to send"
            return report
        report.newest = local.newest.short
        remote_name = dest_name(name, self.target.dest_pool)
        remote = read_remote(self.runner, self.target, remote_name)
        started = time.monotonic()
        for _ in range(MAX_STEPS):
            step = decide(local, remote, force=self.options.force)
            if step.action is Action.UP_TO_DATE:
                break
            self.refuse(step, name)
            if step.action is Action.RESUME:
                remote = self.resume(step, local, remote, report, remote_name)
            else:
                self.transfer(step, local, report)
                remote = apply(step, remote, local)
            if self.options.dry_run:
                report.result = "dry run"
                return report
        else:
            raise TransferFailed(f"{name}: still not up to date after {MAX_STEPS} steps")
        report.seconds = time.monotonic() - started
        report.result = "sent" if report.actions else f"up to date (@{local.newest.short})"
        return report

    def refuse(self, step: Step, name: str) -> None:
        if step.action is Action.DIVERGED:
            raise Diverged(f"{name}: {step.reason}")
        if step.action is Action.RAW_MISMATCH:
            raise RawMismatch(f"{name}: {step.reason}")

    def resume(
        self,
        step: Step,
        local: Dataset,
        remote: RemoteDataset | None,
        report: SendReport,
        remote_name: str,
    ) -> RemoteDataset | None:
        checked = estimate(self.runner, commands.send_argv(step, local))
        if isinstance(checked, str):
            if not self.options.force:
                raise StaleResumeToken(
                    f"{local.name}: the backup's partial receive cannot be resumed "
                    f"({refine.first_line(checked)}); --force aborts it (zfs recv -A)"
                )
            return self.abort_partial(remote_name, report, "stale")
        try:
            self.run_stream(step, local, report, checked.size)
        except ResumeNeedsForce:
            # Its first part replaced a placeholder with -F (the partial state waits beside
            # it, in %recv); ZFS resumes that only with -F again, and only a placeholder may
            # be replaced.
            if is_placeholder(local, remote):
                self.run_stream(replace(step, force_receive=True), local, report, checked.size)
            elif self.options.force:
                return self.abort_partial(remote_name, report, "replacing")
            else:
                raise Diverged(
                    f"{local.name}: the backup's partial receive would replace {remote_name}, "
                    "which now holds data of its own; --force aborts it (zfs recv -A)"
                ) from None
        completed = next((s for s in local.snapshots if s.name == checked.to_name), None)
        if completed is None or remote is None:
            return read_remote(self.runner, self.target, remote_name)
        return remote.with_snapshot(completed)

    def abort_partial(self, name: str, report: SendReport, kind: str) -> RemoteDataset | None:
        run_remote(self.runner, self.target, commands.abort_resume_argv(name))
        report.actions.append(f"aborted {kind} partial receive")
        return read_remote(self.runner, self.target, name)

    def transfer(self, step: Step, local: Dataset, report: SendReport) -> None:
        if step.rollback_to is not None:
            snapshot = dest_name(step.rollback_to.name, self.target.dest_pool)
            if not self.options.dry_run:
                run_remote(self.runner, self.target, commands.rollback_argv(snapshot))
            report.actions.append(f"rolled back backup to @{step.rollback_to.short}")
        self.run_stream(step, local, report, step_bytes(step, local))

    def run_stream(self, step: Step, local: Dataset, report: SendReport, size: int) -> None:
        send = commands.send_argv(step, local)
        recv = commands.recv_argv(step, local, self.target.dest_pool)
        progress = self.progress_argv(local.name, size)
        stages = commands.data_pipeline(send, recv, self.target, self.options.compress, progress)
        if self.options.dry_run:
            print(commands.pipeline_text(stages))
        else:
            self.run_pipeline_retrying(local.name, stages, passthrough=1 if progress else None)
        report.actions.append(describe(step))
        report.bytes += size

    def run_pipeline_retrying(
        self, name: str, stages: list[list[str]], passthrough: int | None
    ) -> None:
        for attempt in range(1, PARENT_RACE_ATTEMPTS + 1):
            try:
                self.run_pipeline(name, stages, passthrough)
                return
            except ParentRace as race:
                # Siblings received in parallel both auto-create their missing parent; the
                # loser fails before any data moved, and the parent now exists.
                if attempt == PARENT_RACE_ATTEMPTS:
                    raise
                print(f"zmake: {race}", file=sys.stderr)
                time.sleep(attempt)

    def run_pipeline(self, name: str, stages: list[list[str]], passthrough: int | None) -> None:
        result = self.runner.pipeline(stages, passthrough=passthrough)
        if result.ok:
            return
        raise refine.transfer_error(
            name,
            [refine.StageOutcome(s.argv, s.returncode, s.stderr) for s in result.stages],
            remote=self.target.remote,
            dest_pool=self.target.dest_pool,
        )

    def progress_argv(self, name: str, size: int) -> list[str] | None:
        if not self.options.progress or self.options.dry_run:
            return None
        import shutil  # only for a terminal: under make, sends start without it

        if shutil.which("pv") is None:
            return None
        return ["pv", "-f", "-c", "-N", name, *(["-s", str(size)] if size else [])]

    def write_report(self, report: SendReport) -> None:
        if self.options.report_file is None:
            return
        record = {
            "dataset": report.dataset,
            "actions": report.actions,
            "bytes": report.bytes,
            "seconds": round(report.seconds, 3),
            "newest": report.newest,
            "result": report.result,
        }
        import json  # only `zmake backup` asks for a report

        with open(self.options.report_file, "a") as handle:
            handle.write(json.dumps(record) + "\n")


def write_stamp(path: Path, text: str) -> None:
    """Mark a make target done. Only an optimisation: a send that runs asks the backup."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text)
    temp.replace(path)


def unmount_backups(
    runner: Runner, run_dir: Path, targets: Sequence[Target], slots: int
) -> list[str]:
    """Unmount each target's receiving pool, through a slot: what was unmounted, a line each."""
    lines: list[str] = []
    for target in targets:
        with ssh_slot(runner, run_dir, target, slots) as slot_target:
            done = umount(runner, slot_target).splitlines()
        lines.extend(done or [f"{target.dest_pool}: nothing mounted"])
    return lines


def umount(runner: Runner, target: Target) -> str:
    """Unmount the receiving pool's datasets (idempotent). Returns what was unmounted."""
    result = runner.run(target.wrap_script(commands.umount_script(target.dest_pool)))
    if result.returncode == commands.UMOUNT_NO_POOL:
        where = f" on {target.remote}" if target.remote else ""
        raise RemotePoolMissing(f"receiving pool {target.dest_pool!r} does not exist{where}")
    if result.returncode != 0:
        raise refine.control_error(result.argv, result.returncode, result.stderr, target.remote)
    return result.stderr
