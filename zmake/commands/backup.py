"""`zmake backup`: the nightly job — snapshot, prune, generate, make -k -jN, summary."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from zmake.cli.arguments import keeping_of, roots_of, settings_from
from zmake.commands.generate import make_plan, makefile_text
from zmake.commands.prune import prune
from zmake.commands.snapshot import snapshot
from zmake.core.errors import TransferFailed
from zmake.core.model import dest_name
from zmake.core.plan import Plan, Selection, top_roots
from zmake.core.render import stamp_name, umount_stamp_name
from zmake.core.retention import Keeping
from zmake.reports.send import human, write_stamp
from zmake.settings import Settings, ensure_run_dir
from zmake.sides import source_pools
from zmake.sides.runner import Runner
from zmake.sides.side import Route
from zmake.sides.slots import close_masters, ssh_slot
from zmake.targets import target_at
from zmake.targets.base import Target


@dataclass(frozen=True)
class BackupRequest:
    roots: tuple[str, ...]
    jobs: int
    take_snapshot: bool
    snapshot_format: str
    keeping: Keeping | None  # prune when set
    assume_yes: bool
    check_remote: bool = False


def backup(
    runner: Runner, settings: Settings, request: BackupRequest, run_dir: Path, zmake_argv: str
) -> list[Row]:
    """snapshot → prune → generate → make -jN -k → summary rows. Raises when not all done.

    The backups are unmounted here rather than by the Makefile's umount target (its stamp
    is written, so make skips it): one interpreter less before the first send, and the
    unmount, whose connection becomes the first slot's master, runs while the Makefile is
    rendered."""
    roots = request.roots
    route = settings.route(roots)
    try:
        plan, code, stamps, report = run_backup(
            runner, settings, route, request, run_dir, zmake_argv
        )
    finally:
        for side in route.remote_hosts:
            close_masters(runner, run_dir, side)
    expected = {node.dataset.name: stamps / stamp_name(node) for node in plan.nodes}
    rows = summary_rows(expected, report)
    print_summary(rows, sys.stdout)
    unfinished = [r for r in rows if not r.done]
    if unfinished or code != 0:
        names = ", ".join(r.dataset for r in unfinished[:3])
        raise Unfinished(
            f"{len(unfinished)} of {len(rows)} datasets are not up to date ({names}"
            f"{', …' if len(unfinished) > 3 else ''}): run zmake backup again to finish",
            rows,
        )
    return rows


class Unfinished(TransferFailed):
    """Not every dataset is up to date; the rows say which (for --metrics, --summary-json)."""

    def __init__(self, message: str, rows: list[Row]) -> None:
        super().__init__(message)
        self.rows = rows


def run_backup(
    runner: Runner,
    settings: Settings,
    route: Route,
    request: BackupRequest,
    run_dir: Path,
    zmake_argv: str,
) -> tuple[Plan, int, Path, Path]:
    """Everything up to make's exit status; the caller closes the ssh masters."""
    roots = request.roots
    selection = Selection(roots, settings.exclude)
    # A source on another machine is read through slot 0's master, which the first send
    # then reuses: the reads cost no connection of their own.
    with ssh_slot(runner, run_dir, route.source, 1) as source_side:
        reads = replace(route, source=source_side)
        if request.take_snapshot:
            name = snapshot(runner, reads.source, roots, request.snapshot_format, datetime.now(UTC))
            print(f"backup: snapshot @{name} of {' '.join(roots)}")
        if request.keeping is not None:
            prune(runner, reads, roots, selection, request.keeping, run_dir=run_dir,
                  backup_too=True, assume_yes=request.assume_yes, dry_run=False)  # fmt: skip
        capture = source_pools.read_live(runner, reads.source, top_roots(roots))
    key = hashlib.sha256(f"{route.source}\0{route.target}\0{route.dest}".encode()).hexdigest()
    work = run_dir / f"backup-{key[:12]}"
    work.mkdir(mode=0o700, exist_ok=True)
    makefile, report = work / "Makefile", work / "report.jsonl"
    stamps = work / "stamps"
    target = target_at(route, settings)
    remote_state = None
    if request.check_remote and target.plans_from_backups:
        remote_state = target.read_backups(runner, {})
    plan = make_plan(capture, roots, settings, remote_state)
    umount_stamp = stamps / umount_stamp_name(plan)
    unmounting = None
    if not umount_stamp.exists():
        ours = {dest_name(node.dataset.name, route.dest) for node in plan.nodes}
        unmounting = Unmounting(runner, run_dir, target, ours, request.jobs)
    try:
        text = makefile_text(plan, settings, roots=roots, command=zmake_argv,
                             origin=f"zmake backup of {' '.join(roots)}")  # fmt: skip
        makefile.write_text(text)
        if unmounting is not None:
            for line in unmounting.finish():
                print(f"backup: {line}")
        write_stamp(umount_stamp, "unmounted\n")
        report.write_text("")
        env = {**os.environ, "ZMAKE_REPORT": str(report), "ZMAKE_RUN_DIR": str(run_dir)}
        make = ["make", "-k", f"-j{request.jobs}", "-f", str(makefile), f"STAMPS={stamps}"]
        return plan, runner.interactive(make, env), stamps, report
    finally:
        if unmounting is not None:
            unmounting.wait()  # its master too must be closed


class Unmounting:
    """The target's unmount in a thread, so it can overlap local work."""

    def __init__(
        self, runner: Runner, run_dir: Path, target: Target, ours: set[str], slots: int
    ) -> None:
        self.lines: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self.catching, args=(runner, run_dir, target, ours, slots), daemon=True
        )
        self.thread.start()

    def catching(
        self, runner: Runner, run_dir: Path, target: Target, ours: set[str], slots: int
    ) -> None:
        try:
            self.lines = target.unmount(runner, run_dir, lambda: ours, slots)
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
    error: str = ""

    @property
    def done(self) -> bool:
        return self.result in ("sent", "up to date", "no snapshot")


def summary_rows(expected: Mapping[str, Path], report: Path) -> list[Row]:
    """One row per expected dataset (name → its stamp file) from the JSON lines `zmake send`
    appended. Without a line, a dataset was either finished by an earlier run (its stamp
    exists, make skipped it) or did not run at all."""
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
                Row(name, "up to date", action="- (stamp)")
                if stamped
                else Row(name, "failed", error="did not run (see make's output)")
            )
            continue
        result = str(record["result"])
        if result.startswith("up to date"):
            result = "up to date"
        elif result == "no snapshot to send":
            result = "no snapshot"
        action = " + ".join(record["actions"]) or "-"
        rows.append(
            Row(
                name,
                result,
                int(record["bytes"]),
                float(record["seconds"]),
                action,
                str(record.get("error", "")),
            )
        )
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
    failed = [r for r in rows if not r.done]
    if failed:
        print("not up to date:", file=out)
        for r in failed:
            print(f"  {r.dataset}: {r.error or r.result}", file=out)


def run(args: argparse.Namespace, runner: Runner) -> int:

    settings = settings_from(args)
    roots = roots_of(args, settings, runner)
    pruning = args.prune or settings.prune
    keeping = keeping_of(args, settings, backup_too=True) if pruning else None
    run_dir = ensure_run_dir(settings.run_dir)
    request = BackupRequest(
        roots=roots,
        jobs=args.jobs or settings.jobs,
        take_snapshot=args.snapshot or settings.snapshot,
        snapshot_format=args.name,
        keeping=keeping,
        assume_yes=args.yes,
        check_remote=args.check_remote,
    )
    from zmake.reports.backup import Reporting
    from zmake.sides.locks import backup_lock

    reporting = Reporting(args.quiet, args.metrics, args.summary_json)
    with backup_lock(run_dir), reporting.run(runner, settings.route(roots), roots, settings):
        reporting.rows = backup(runner, settings, request, run_dir,
                                       shlex.join(["zmake", *sys.argv[1:]]))  # fmt: skip
    return 0
