"""`zmake backup`: the nightly job — snapshot, prune, generate, make -k -jN, summary."""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from zmake.cli.arguments import keeping_of, roots_of, settings_from
from zmake.commands.generate import makefile_text, read_and_plan
from zmake.commands.prune import prune
from zmake.commands.snapshot import snapshot
from zmake.core.batch import LEAST_BATCHES, stamps_of
from zmake.core.errors import TransferFailed
from zmake.core.model import dest_name
from zmake.core.plan import Plan, Selection, top_roots
from zmake.core.render import umount_stamp_name
from zmake.core.retention import Keeping
from zmake.reports.metrics import RunFigures
from zmake.reports.run import RunReport, print_table, summary_rows
from zmake.reports.send import write_stamp
from zmake.settings import Settings, ensure_run_dir
from zmake.sides import source_pools
from zmake.sides.runner import Runner
from zmake.sides.side import Route
from zmake.sides.slots import close_masters, ssh_slot
from zmake.targets import route_of, target_at
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
    runner: Runner,
    settings: Settings,
    route: Route,
    request: BackupRequest,
    run_dir: Path,
    zmake_argv: str,
    report: RunReport,
) -> None:
    """snapshot → prune → generate → make -jN -k → the rows of `report`, and their table.
    Raises when not all is done.

    The backups are unmounted here rather than by the Makefile's umount target (its stamp
    is written, so make skips it): one interpreter less before the first send, and the
    unmount, whose connection becomes the first slot's master, runs while the Makefile is
    rendered."""
    try:
        plan, code, stamps, lines = run_backup(
            runner, settings, route, request, run_dir, zmake_argv
        )
    finally:
        for side in route.remote_hosts:
            close_masters(runner, run_dir, side)
    expected = {name: stamps / stamp for name, stamp in stamps_of(plan).items()}
    report.rows = rows = summary_rows(expected, lines)
    print_table(rows, sys.stdout)
    unfinished = report.failed
    if unfinished or code != 0:
        names = ", ".join(r.dataset for r in unfinished[:3])
        raise Unfinished(
            f"{len(unfinished)} of {len(rows)} datasets are not up to date ({names}"
            f"{', …' if len(unfinished) > 3 else ''}): run zmake backup again to finish"
        )


class Unfinished(TransferFailed):
    """Not every dataset is up to date (the run's report says which)."""


def run_backup(
    runner: Runner,
    settings: Settings,
    route: Route,
    request: BackupRequest,
    run_dir: Path,
    zmake_argv: str,
) -> tuple[Plan, int, Path, Path]:
    """Everything up to make's exit status; the caller closes the ssh masters."""
    prepared = prepare(runner, settings, route, request, run_dir)
    try:
        text = makefile_text(prepared.plan, settings, roots=request.roots, command=zmake_argv,
                             origin=f"zmake backup of {' '.join(request.roots)}")  # fmt: skip
        prepared.makefile.write_text(text)
    except BaseException:
        if prepared.unmounting is not None:  # its master too must be closed; this error stands
            prepared.unmounting.wait()
        raise
    prepared.settle()
    prepared.report.write_text("")
    from zmake.sides import unreachable

    env = {**os.environ, "ZMAKE_REPORT": str(prepared.report), "ZMAKE_RUN_DIR": str(run_dir),
           unreachable.ENV: str(unreachable.fresh_folder(prepared.work))}  # fmt: skip
    make = [gnu_make(), "-k", f"-j{request.jobs}", "-f", str(prepared.makefile),
            f"STAMPS={prepared.stamps}"]  # fmt: skip
    return prepared.plan, runner.interactive(make, env), prepared.stamps, prepared.report


@dataclass
class Prepared:
    """One source made ready for make: snapshot taken, pruned, read and planned, its
    backups' unmount under way (`settle` waits for it)."""

    plan: Plan
    route: Route
    work: Path  # the folder of this source and target in the run directory
    unmounting: Unmounting | None
    umount_stamp: Path

    @property
    def makefile(self) -> Path:
        return self.work / "Makefile"

    @property
    def report(self) -> Path:
        return self.work / "report.jsonl"

    @property
    def stamps(self) -> Path:
        return self.work / "stamps"

    def settle(self) -> None:
        """Wait for the unmount (raising its error); then make skips its target."""
        if self.unmounting is None:
            return
        unmounting, self.unmounting = self.unmounting, None
        try:
            for line in unmounting.finish():
                print(f"backup: {line}")
        finally:
            unmounting.wait()  # its master too must be closed
        write_stamp(self.umount_stamp, "unmounted\n")

    def expected(self, least: int = LEAST_BATCHES) -> dict[str, Path]:
        """Each dataset's stamp file: the summary's rows (`least`: as the Makefile batched)."""
        stamps = stamps_of(self.plan, least)
        return {name: self.stamps / stamp for name, stamp in stamps.items()}


def prepare(
    runner: Runner, settings: Settings, route: Route, request: BackupRequest, run_dir: Path,
    label: str = "",
) -> Prepared:  # fmt: skip
    """snapshot → prune → read the source → plan, and the backups' unmount started;
    `label` begins its lines (a fleet's sources are prepared side by side)."""
    roots = request.roots
    selection = Selection(roots, settings.exclude)
    # A source on another machine is read through slot 0's master, which the first send
    # then reuses: the reads cost no connection of their own.
    with ssh_slot(runner, run_dir, route.source, 1) as source_side:
        reads = replace(route, source=source_side)
        if request.take_snapshot:
            name = snapshot(runner, reads.source, roots, request.snapshot_format, datetime.now(UTC))
            print(f"backup: {label}snapshot @{name} of {' '.join(roots)}")
        if request.keeping is not None:
            prune(runner, reads, roots, selection, request.keeping, run_dir=run_dir,
                  backup_too=True, assume_yes=request.assume_yes, dry_run=False)  # fmt: skip
        capture = source_pools.read_live(runner, reads.source, top_roots(roots))
    work = work_of(run_dir, route)
    work.mkdir(mode=0o700, exist_ok=True)
    plan = read_and_plan(runner, settings, capture, roots, check_remote=request.check_remote)
    umount_stamp = work / "stamps" / umount_stamp_name(plan)
    unmounting = None
    if not umount_stamp.exists():
        ours = {dest_name(node.dataset.name, route.dest) for node in plan.nodes}
        target = target_at(route, settings)
        unmounting = Unmounting(runner, run_dir, target, ours, request.jobs)
    return Prepared(plan, route, work, unmounting, umount_stamp)


def work_of(run_dir: Path, route: Route) -> Path:
    """The run directory's folder of one source and target: Makefile, report, stamps."""
    key = hashlib.sha256(f"{route.source}\0{route.target}\0{route.dest}".encode()).hexdigest()
    return run_dir / f"backup-{key[:12]}"


def gnu_make() -> str:
    """GNU make: `gmake` where it has that name (the BSDs; their `make` cannot run the
    Makefile), else `make`."""
    import shutil

    return "gmake" if shutil.which("gmake") else "make"


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


def wants_fleet(args: argparse.Namespace) -> bool:
    """--all, or a config with [sources.NAME] tables and either no pools given or only its
    sources' names."""
    if getattr(args, "all", False):  # `check` has no --all: a fleet config says it
        return True
    from zmake.fleet import fleet_names

    names = fleet_names(args.config)
    return bool(names) and all(given in names for given in args.pools or ())


def run(args: argparse.Namespace, runner: Runner) -> int:
    if wants_fleet(args):
        from zmake.commands.backup_fleet import run as run_fleet

        return run_fleet(args, runner)
    settings = settings_from(args)
    roots = roots_of(args, settings, runner, changes=True)
    pruning = args.prune or settings.prune
    keeping = keeping_of(args, settings, backup_too=True) if pruning else None
    run_dir = ensure_run_dir(settings.run_dir)
    request = BackupRequest(
        roots=roots,
        jobs=args.jobs or settings.jobs,
        take_snapshot=args.snapshot or settings.snapshot,
        snapshot_format=args.name or settings.name,
        keeping=keeping,
        assume_yes=args.yes or settings.yes,
        check_remote=args.check_remote,
    )
    from zmake.reports.backup import Reporting
    from zmake.sides.locks import backup_lock

    if args.dry_run:
        from zmake.commands.backup_dry_run import dry_run

        return dry_run(runner, settings, route_of(settings, roots), request, run_dir)
    reporting = Reporting(
        args.quiet or settings.quiet,
        args.metrics or settings.metrics,
        args.summary_json or settings.summary_json,
    )
    zmake_argv = shlex.join(["zmake", *sys.argv[1:]])
    route, selection = route_of(settings, roots), Selection(roots, settings.exclude)

    def write_metrics(figures: RunFigures, path: Path) -> None:
        from zmake.commands.check import run_metrics

        run_metrics(runner, route, roots, selection, figures, path)

    with backup_lock(run_dir), reporting.run(write_metrics) as report:
        backup(runner, settings, route, request, run_dir, zmake_argv, report)
    return 0
