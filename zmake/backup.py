"""`zmake snapshot`, `prune`, `status` and `backup`: the workflows a nightly script calls."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from zmake import refine, source
from zmake.commands import Target
from zmake.config import Settings
from zmake.confirm import confirm
from zmake.decide import Action, decide
from zmake.errors import LockBusy, TransferFailed, UsageError
from zmake.generate import make_plan, makefile_text
from zmake.model import Dataset, RemoteDataset, dest_name
from zmake.parse import parse_source
from zmake.plan import expected_bytes, select
from zmake.prune import PRUNE_LIST_PROPS, SnapshotInfo, parse_snapshots, plan_prune
from zmake.render import stamp_name, umount_stamp_name
from zmake.runner import Runner
from zmake.send import human, read_remote_tree, unmount_backups, write_stamp
from zmake.slots import close_masters


def snapshot(runner: Runner, pools: Sequence[str], name_format: str, now: datetime) -> str:
    """One recursive snapshot of every pool, atomically (a single `zfs snapshot` call)."""
    name = now.astimezone(UTC).strftime(name_format)
    if not name or "@" in name or "/" in name:
        raise UsageError(f"--name {name_format!r} gives an invalid snapshot name {name!r}")
    source.check(runner, ["zfs", "snapshot", "-r", *(f"{pool}@{name}" for pool in pools)])
    return name


def snapshots_argv(root: str) -> list[str]:
    return [
        "zfs",
        "list",
        "-H",
        "-p",
        "-o",
        ",".join(PRUNE_LIST_PROPS),
        "-t",
        "snapshot",
        "-r",
        root,
    ]


@dataclass(frozen=True)
class PruneSide:
    where: str  # "source" or the backup host
    doomed: dict[str, list[SnapshotInfo]]
    target: Target | None  # None: this machine's source pools

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.doomed.values())


def read_snapshots(
    runner: Runner, target: Target | None, root: str
) -> dict[str, list[SnapshotInfo]]:
    argv = snapshots_argv(root)
    result = runner.run(target.wrap(argv) if target else argv)
    if result.returncode != 0:
        remote = target.remote if target else None
        raise refine.control_error(result.argv, result.returncode, result.stderr, remote)
    return parse_snapshots(result.stdout, "zfs list (snapshots)")


def guids(snapshots: dict[str, list[SnapshotInfo]]) -> dict[str, set[int]]:
    return {dataset: {s.guid for s in snaps} for dataset, snaps in snapshots.items()}


def plan_prune_sides(
    runner: Runner, settings: Settings, pools: Sequence[str], keep: int, remote_too: bool
) -> list[PruneSide]:
    sides = []
    for pool in pools:
        target = settings.target(pool)
        local = read_snapshots(runner, None, pool)
        backup = read_snapshots(runner, target, target.dest_pool)
        # Compare under source names, so each side protects what the other has.
        backup_as_source = {
            pool + dataset[len(target.dest_pool) :]: snaps for dataset, snaps in backup.items()
        }
        sides.append(PruneSide("source", plan_prune(local, guids(backup_as_source), keep), None))
        if remote_too:
            doomed = plan_prune(
                backup, guids({dest_name(d, target.dest_pool): s for d, s in local.items()}), keep
            )
            sides.append(PruneSide(target.remote or target.dest_pool, doomed, target))
    return sides


def destroy_argv(dataset: str, doomed: Sequence[SnapshotInfo]) -> list[str]:
    return ["zfs", "destroy", f"{dataset}@{','.join(s.short for s in doomed)}"]


def prune(
    runner: Runner,
    settings: Settings,
    pools: Sequence[str],
    keep: int,
    *,
    remote_too: bool,
    assume_yes: bool,
    dry_run: bool,
) -> int:
    """List, confirm, destroy. Returns how many snapshots were destroyed."""
    sides = plan_prune_sides(runner, settings, pools, keep, remote_too)
    total = sum(side.count for side in sides)
    if total == 0:
        print("prune: nothing to destroy")
        return 0
    for side in sides:
        for dataset, doomed in side.doomed.items():
            for snap in doomed:
                print(f"prune: {side.where}: {dataset}@{snap.short}")
    if dry_run or not confirm(f"destroy these {total} snapshots", assume_yes=assume_yes):
        print("prune: nothing destroyed")
        return 0
    for side in sides:
        destroy(runner, side)
    print(f"prune: destroyed {total} snapshots")
    return total


def destroy(runner: Runner, side: PruneSide) -> None:
    commands = [destroy_argv(dataset, doomed) for dataset, doomed in side.doomed.items()]
    if not commands:
        return
    if side.target is None:
        for argv in commands:
            source.check(runner, argv)
        return
    # One connection for the whole side: every destroy is tried, the status tells if any failed.
    script = "rc=0; " + " ".join(f"{shlex.join(argv)} || rc=1;" for argv in commands) + " exit $rc"
    result = runner.run(side.target.wrap_script(script))
    if result.returncode != 0:
        raise refine.control_error(
            result.argv, result.returncode, result.stderr, side.target.remote
        )


STATE = {
    Action.UP_TO_DATE: "up to date",
    Action.INCREMENTAL: "pending",
    Action.RESUME: "resumable",
    Action.FULL: "missing on remote",
    Action.FULL_OVER_PLACEHOLDER: "missing on remote",
    Action.DIVERGED: "diverged",
    Action.RAW_MISMATCH: "diverged",
    Action.NOTHING_TO_SEND: "no snapshot",
}


def status(runner: Runner, settings: Settings, roots: Sequence[str]) -> list[dict[str, object]]:
    """One batched read per side; the state is what `zmake send` would decide."""
    pools = tuple(dict.fromkeys(r.split("/")[0] for r in roots))
    capture = source.read_live(runner, pools)
    inventory = parse_source(capture.list_output, capture.get_output)
    rows: list[dict[str, object]] = []
    for pool in pools:
        target = settings.target(pool)
        remote = read_remote_tree(runner, target)
        for name in select(
            inventory, [r for r in roots if r.split("/")[0] == pool], settings.exclude
        ):
            rows.append(status_row(inventory.datasets[name], remote, target))
    return rows


def status_row(
    dataset: Dataset, remote: dict[str, RemoteDataset], target: Target
) -> dict[str, object]:
    backup_name = dest_name(dataset.name, target.dest_pool)
    theirs = remote.get(backup_name)
    step = decide(dataset, theirs)
    return {
        "dataset": dataset.name,
        "backup": backup_name,
        "newest_local": dataset.newest.short if dataset.newest else None,
        "newest_remote": theirs.snapshots[-1].short if theirs and theirs.snapshots else None,
        "resume_token": bool(theirs and theirs.resume_token),
        "pending_bytes": 0 if step.action is Action.UP_TO_DATE else expected_bytes(dataset, theirs),
        "state": STATE[step.action],
    }


@contextmanager
def backup_lock(run_dir: Path) -> Iterator[None]:
    """One `zmake backup` at a time per run directory."""
    with open(run_dir / "backup.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise LockBusy(f"another zmake backup is running (pid {holder})") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield


@dataclass(frozen=True)
class BackupRequest:
    roots: tuple[str, ...]
    jobs: int
    take_snapshot: bool
    snapshot_format: str
    keep: int | None  # prune when set
    assume_yes: bool
    check_remote: bool = False


def backup(
    runner: Runner, settings: Settings, request: BackupRequest, run_dir: Path, zmake_argv: str
) -> list[Row]:
    """snapshot → prune → generate → make -jN -k → summary rows. Raises when not all done.

    The backup pools are unmounted here rather than by the Makefile's umount target (its
    stamp is written, so make skips it): one interpreter less before the first send, and the
    unmount, whose connection becomes the first slot's master, runs while the Makefile is
    rendered."""
    pools = tuple(dict.fromkeys(r.split("/")[0] for r in request.roots))
    if request.take_snapshot:
        name = snapshot(runner, pools, request.snapshot_format, datetime.now(UTC))
        print(f"backup: snapshot @{name} of {' '.join(pools)}")
    if request.keep is not None:
        prune(
            runner,
            settings,
            pools,
            request.keep,
            remote_too=True,
            assume_yes=request.assume_yes,
            dry_run=False,
        )
    work = run_dir / ("backup-" + "-".join(pools))
    work.mkdir(mode=0o700, exist_ok=True)
    makefile, report = work / "Makefile", work / "report.jsonl"
    # Stamps per backup target: a changed remote or dest never reuses another's.
    key = hashlib.sha256(f"{settings.remote}\0{settings.dest}".encode()).hexdigest()[:12]
    stamps = work / "stamps" / key
    capture = source.read_live(runner, pools)
    remote_state = None
    if request.check_remote:
        remote_state = {}
        for pool in pools:
            remote_state.update(read_remote_tree(runner, settings.target(pool)))
    plan = make_plan(capture, request.roots, settings, remote_state)
    umount_stamp = stamps / umount_stamp_name(plan)
    unmounting = None
    if not umount_stamp.exists():
        targets = [settings.target(pool) for pool in pools]
        unmounting = Unmounting(runner, run_dir, targets, request.jobs)
    try:
        source_text = f"zmake backup of {' '.join(pools)}"
        makefile.write_text(makefile_text(plan, settings, zmake_argv, source_text))
        if unmounting is not None:
            for line in unmounting.finish():
                print(f"backup: {line}")
            write_stamp(umount_stamp, "unmounted\n")
        report.write_text("")
        env = {**os.environ, "ZMAKE_REPORT": str(report), "ZMAKE_RUN_DIR": str(run_dir)}
        make = ["make", "-k", f"-j{request.jobs}", "-f", str(makefile), f"STAMPS={stamps}"]
        code = runner.interactive(make, env)
    finally:
        if unmounting is not None:
            unmounting.wait()  # its master too must be closed
        for pool in pools:
            close_masters(runner, run_dir, settings.target(pool))
    expected = {node.dataset.name: stamps / stamp_name(node) for node in plan.nodes}
    rows = summary_rows(expected, report)
    print_summary(rows, sys.stdout)
    unfinished = [r for r in rows if not r.done]
    if unfinished or code != 0:
        names = ", ".join(r.dataset for r in unfinished[:3])
        raise TransferFailed(
            f"{len(unfinished)} of {len(rows)} datasets are not up to date ({names}"
            f"{', …' if len(unfinished) > 3 else ''}): run zmake backup again to finish"
        )
    return rows


class Unmounting:
    """unmount_backups() in a thread, so it can overlap local work."""

    def __init__(
        self, runner: Runner, run_dir: Path, targets: Sequence[Target], slots: int
    ) -> None:
        self.lines: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self.catching, args=(runner, run_dir, targets, slots), daemon=True
        )
        self.thread.start()

    def catching(
        self, runner: Runner, run_dir: Path, targets: Sequence[Target], slots: int
    ) -> None:
        try:
            self.lines = unmount_backups(runner, run_dir, targets, slots)
        except BaseException as exc:  # handed to finish(), in the main thread
            self.error = exc

    def wait(self) -> None:
        self.thread.join()

    def finish(self) -> list[str]:
        """What was unmounted, once done; raises its error here, in the main thread."""
        self.wait()
        if self.error is not None:
            raise self.error
        return self.lines


@dataclass(frozen=True)
class Row:
    dataset: str
    result: str  # sent, up to date, no snapshot, failed
    bytes: int = 0
    seconds: float = 0.0
    action: str = "-"

    @property
    def done(self) -> bool:
        return self.result in ("sent", "up to date", "no snapshot")


def summary_rows(expected: Mapping[str, Path], report: Path) -> list[Row]:
    """One row per expected dataset (name → its stamp file) from the JSON lines `zmake send`
    appended. Without a line, a dataset was either finished by an earlier run (its stamp
    exists, make skipped it) or did not finish (make -k went on with the others)."""
    done = {}
    for line in report.read_text().splitlines():
        record = json.loads(line)
        done[record["dataset"]] = record
    rows = []
    for name in expected:
        record = done.get(name)
        if record is None:
            stamped = expected[name].exists()
            rows.append(
                Row(name, "up to date", action="- (stamp)") if stamped else Row(name, "failed")
            )
            continue
        result = str(record["result"])
        if result.startswith("up to date"):
            result = "up to date"
        elif result == "no snapshot to send":
            result = "no snapshot"
        action = " + ".join(record["actions"]) or "-"
        rows.append(Row(name, result, int(record["bytes"]), float(record["seconds"]), action))
    return rows


def print_summary(rows: Sequence[Row], out: TextIO) -> None:
    width = max([len("dataset"), *(len(r.dataset) for r in rows)])
    print(f"{'dataset':<{width}}  {'result':<11}  {'bytes':>10}  {'time':>7}  action", file=out)
    for r in rows:
        print(
            f"{r.dataset:<{width}}  {r.result:<11}  {human(r.bytes):>10}  "
            f"{r.seconds:>6.1f}s  {r.action}",
            file=out,
        )
