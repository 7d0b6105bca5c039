"""`zmake status`: per dataset, what `zmake send` would do now (one read per side)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from zmake.cli.arguments import roots_of, settings_from
from zmake.core.decide import Action, decide
from zmake.core.model import BackupDataset, Dataset, dest_name
from zmake.core.parse import parse_source
from zmake.core.plan import Selection, expected_bytes, select, top_roots
from zmake.sides import source_pools
from zmake.sides.runner import Runner
from zmake.sides.side import Route
from zmake.targets import route_of, target_at
from zmake.targets.base import Target

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


def read_both(
    runner: Runner, target: Target, roots: Sequence[str], selection: Selection
) -> tuple[list[Dataset], dict[str, BackupDataset]]:
    """The selected source datasets and the backup side's: one read per side."""
    capture = source_pools.read_live(runner, target.route.source, top_roots(roots))
    inventory = parse_source(capture.list_output, capture.get_output)
    remote = target.read_backups(runner, inventory.datasets)
    chosen = select(inventory, list(roots), selection.exclude)
    return [inventory.datasets[name] for name in chosen], remote


def status(
    runner: Runner, route: Route, roots: Sequence[str], selection: Selection
) -> list[dict[str, object]]:
    datasets, remote = read_both(runner, target_at(route), roots, selection)
    return [status_row(dataset, remote, route.dest) for dataset in datasets]


def status_row(dataset: Dataset, remote: dict[str, BackupDataset], dest: str) -> dict[str, object]:
    backup_name = dest_name(dataset.name, dest)
    theirs = remote.get(backup_name)
    step = decide(dataset, theirs, dest)
    return {
        "dataset": dataset.name,
        "backup": backup_name,
        "newest_local": dataset.newest.short if dataset.newest else None,
        "newest_remote": theirs.snapshots[-1].short if theirs and theirs.snapshots else None,
        "resume_token": bool(theirs and theirs.resume_token),
        "pending_bytes": 0 if step.action is Action.UP_TO_DATE else expected_bytes(dataset, theirs),
        "state": STATE[step.action],
    }


def print_status(rows: list[dict[str, object]], *, as_json: bool) -> None:
    from zmake.reports.send import human

    if as_json:
        import json

        print(json.dumps({"version": 1, "datasets": rows}, indent=2))
        return
    width = max([len("dataset"), *(len(str(r["dataset"])) for r in rows)])
    print(f"{'dataset':<{width}}  {'state':<17}  {'local':<24}  {'remote':<24}  pending")
    for r in rows:
        print(
            f"{r['dataset']!s:<{width}}  {r['state']!s:<17}  {r['newest_local'] or '-'!s:<24}"
            f"  {r['newest_remote'] or '-'!s:<24}  {human(float(str(r['pending_bytes'])))}"
        )


def run(args: argparse.Namespace, runner: Runner) -> int:
    from zmake.commands.backup import wants_fleet

    if wants_fleet(args):
        from zmake.commands import status_fleet

        return status_fleet.run(args, runner)
    settings = settings_from(args)
    roots = roots_of(args, settings, runner)
    rows = status(runner, route_of(settings, roots), roots, Selection(roots, settings.exclude))
    print_status(rows, as_json=args.json)
    return 0
