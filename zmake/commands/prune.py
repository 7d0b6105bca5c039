"""`zmake prune`: destroy the zmake snapshots each side's retention policy lets go
(core/retention.py),
on the source and, with --remote-side, on the backup — only the backups of this source, and
never what a backup needs (core/prunable.py says what is kept and why; --dry-run prints it).
One snapshot that cannot be destroyed (a clone, a busy dataset) is reported and the rest
goes on."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zmake.cli.arguments import keeping_of, retention_of, roots_of, settings_from
from zmake.confirm import confirm
from zmake.core.errors import ParseError, UsageError
from zmake.core.model import dest_name, source_name
from zmake.core.plan import Selection
from zmake.core.prunable import (
    SideView,
    SnapshotInfo,
    SnapshotVerdict,
    doomed_of,
    judge_all,
)
from zmake.core.retention import SYNTAX, Keeping, Retention
from zmake.core.token import decode
from zmake.settings import ensure_run_dir
from zmake.sides import stderr_errors, zfs_argv, zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side
from zmake.sides.slots import ssh_slot
from zmake.targets import route_of, target_at, target_of


@dataclass(frozen=True)
class PruneSide:
    where: str  # "source" or the backup host
    side: Side
    verdicts: dict[str, list[SnapshotVerdict]]

    @property
    def doomed(self) -> dict[str, list[SnapshotInfo]]:
        return doomed_of(self.verdicts)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.doomed.values())


def needed_by_tokens(view: SideView) -> dict[str, set[int]]:
    """Per dataset, the guids its partial receive needs to be resumed."""
    needed = {}
    for dataset, token in view.tokens.items():
        try:
            needed[dataset] = decode(token).needed_guids
        except ParseError:
            continue  # send reports an unreadable token; it protects nothing
    return needed


def plan_sides(
    runner: Runner,
    route: Route,
    root: str,
    selection: Selection,
    keeping: Keeping,
    *,
    backup_too: bool,
    now: float | None = None,
) -> list[PruneSide]:
    source = zfs_calls.read_prune_view(runner, route.source, root)
    target = target_at(route)
    backup = target.prune_view(runner)
    backup_too = backup_too and target.prunes_snapshots
    pool = root.split("/")[0]
    tokens = needed_by_tokens(backup)
    mine = {d: snaps for d, snaps in source.snapshots.items() if d in selection}
    images = {d: dest_name(d, route.dest) for d in mine}
    sides = [
        PruneSide(
            "source",
            route.source,
            judge_all(
                mine,
                {d: backup.guids(b) for d, b in images.items()},
                keeping.source,
                protected_by_dataset={d: tokens.get(b, set()) for d, b in images.items()},
                now=now,
            ),
        )
    ]
    if backup_too:
        ours = {
            b: source_name(b, route.dest, pool)
            for b in backup.snapshots
            if source_name(b, route.dest, pool) in selection
        }
        verdicts = judge_all(
            {b: backup.snapshots[b] for b in ours},
            {b: source.guids(s) for b, s in ours.items() if s is not None},
            keeping.backup,
            protected_by_dataset=tokens,
            now=now,
        )
        sides.append(PruneSide(route.target.host or route.dest, route.target, verdicts))
    return sides


def prune(
    runner: Runner,
    route: Route,
    roots: Sequence[str],
    selection: Selection,
    keeping: Keeping,
    *,
    run_dir: Path,
    backup_too: bool,
    assume_yes: bool,
    dry_run: bool,
    now: float | None = None,
) -> tuple[int, list[str]]:
    """List, confirm, destroy. Returns (snapshots destroyed, one line per one that was not)."""
    sides = [
        side
        for root in roots
        for side in plan_sides(
            runner, route, root, selection, keeping, backup_too=backup_too, now=now
        )
    ]
    return carry_out(runner, sides, run_dir=run_dir, assume_yes=assume_yes, dry_run=dry_run)


APPEND_ONLY = "refused by zmake serve"


def prune_backups(
    runner: Runner,
    side: Side,
    dest: str,
    retention: Retention,
    *,
    run_dir: Path,
    assume_yes: bool,
    dry_run: bool,
    now: float | None = None,
) -> tuple[int, list[str]]:
    """`zmake prune --backup-only`: the backup host prunes its own backups under --dest, with
    no access to the source (the key the source holds only appends). What the source may
    still need is kept: each backup's newest snapshot (the next incremental's base) and what
    a partial receive needs; and, as always, held and foreign snapshots."""
    view = zfs_calls.read_prune_view(runner, side, dest)
    newest = {dataset: {snaps[-1].guid} for dataset, snaps in view.snapshots.items() if snaps}
    verdicts = judge_all(
        view.snapshots, newest, retention, protected_by_dataset=needed_by_tokens(view), now=now
    )
    plan = PruneSide(side.host or "backup", side, verdicts)
    return carry_out(runner, [plan], run_dir=run_dir, assume_yes=assume_yes, dry_run=dry_run)


def carry_out(
    runner: Runner, sides: Sequence[PruneSide], *, run_dir: Path, assume_yes: bool, dry_run: bool
) -> tuple[int, list[str]]:
    total = sum(side.count for side in sides)
    for side in sides:
        for verdicts in side.verdicts.values():
            for verdict in verdicts:
                if dry_run or not verdict.keep:
                    what = "keep   " if verdict.keep else "destroy"
                    print(f"prune: {side.where}: {what} {verdict.snapshot.name} ({verdict.reason})")
    if total == 0:
        print("prune: nothing to destroy")
        return 0, []
    if dry_run or not confirm(f"destroy these {total} snapshots", assume_yes=assume_yes):
        print("prune: nothing destroyed")
        return 0, []
    problems: list[str] = []
    destroyed = 0
    for side in sides:
        with ssh_slot(runner, run_dir, side.side, 1 if side.doomed else 0) as slotted:
            for dataset, doomed in side.doomed.items():
                failed = destroy(runner, slotted, dataset, doomed)
                if failed == [APPEND_ONLY]:
                    print(
                        f"prune: {side.where}: not pruned, the key there only appends "
                        "(zmake serve); that host prunes its own: zmake prune --backup-only"
                    )
                    break
                problems += failed
                destroyed += len(doomed) - len(failed)
    for line in problems:
        print(f"prune: {line}")
    print(f"prune: destroyed {destroyed} snapshots")
    return destroyed, problems


def destroy(runner: Runner, side: Side, dataset: str, doomed: Sequence[SnapshotInfo]) -> list[str]:
    """All of `doomed` in one call; when ZFS refuses that (it destroys all or none), each on
    its own, so one clone or hold stops only its own snapshot."""
    argv = zfs_argv.destroy_snapshots_argv(dataset, [s.short for s in doomed])
    result = zfs_calls.run(runner, side, argv)
    if result.returncode == 0:
        return []
    if stderr_errors.unreachable(result, side.host):
        raise zfs_calls.failure(side, argv, result)
    if stderr_errors.refused_by_serve(result):
        return [APPEND_ONLY]
    if len(doomed) > 1:
        return [line for snap in doomed for line in destroy(runner, side, dataset, [snap])]
    return [
        f"cannot destroy {doomed[0].name}{side.where()}: {stderr_errors.first_line(result.stderr)}"
    ]


def run(args: argparse.Namespace, runner: Runner) -> int:
    from zmake.core.errors import CommandFailed

    settings = settings_from(args)
    assume_yes = args.yes or settings.yes
    if args.keep_chains is not None:
        target_of(settings).drop_chains(runner, args.keep_chains, assume_yes=assume_yes,
                                        dry_run=args.dry_run)  # fmt: skip
        return 0
    backup_side = args.remote_side or args.backup_only
    if backup_side and settings.names_a_target and not target_of(settings).prunes_snapshots:
        raise UsageError("a --to-dir target is pruned by whole chains: --keep-chains K")
    if args.backup_only:
        retention = retention_of(args, settings, "backup")
        if retention is None:
            raise UsageError(f"say what to keep: --keep N or --keep-backup POLICY ({SYNTAX})")
        if not settings.dest:
            raise UsageError("prune --backup-only needs --dest DATASET: the backups to prune")
        _, problems = prune_backups(runner, settings.target_side, settings.dest, retention,
                                    run_dir=ensure_run_dir(settings.run_dir),
                                    assume_yes=assume_yes, dry_run=args.dry_run)  # fmt: skip
        if problems:
            raise CommandFailed(f"{len(problems)} snapshots could not be destroyed (above)")
        return 0
    roots = roots_of(args, settings, runner, changes=True)
    _, problems = prune(
        runner,
        route_of(settings, roots),
        roots,
        Selection(roots, settings.exclude),
        keeping_of(args, settings, backup_too=args.remote_side),
        run_dir=ensure_run_dir(settings.run_dir),
        backup_too=args.remote_side,
        assume_yes=assume_yes,
        dry_run=args.dry_run,
    )
    if problems:
        raise CommandFailed(f"{len(problems)} snapshots could not be destroyed (listed above)")
    return 0
