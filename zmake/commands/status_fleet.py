"""`zmake status` over a backup host's fleet (the config's [sources.NAME] tables): every
source's datasets in one table, each named SOURCE:DATASET. A source that pushes by itself
shows its backups as this host holds them; a source that cannot be read is one line on
stderr, and the exit status is then 1."""

from __future__ import annotations

import argparse
import sys

from zmake.cli.arguments import setting_layer
from zmake.commands.check_fleet import pushed_backups
from zmake.commands.status import print_status, status
from zmake.core.errors import ZmakeError
from zmake.core.model import BackupDataset
from zmake.core.plan import Selection
from zmake.fleet import FleetSource, chosen, fleet_of
from zmake.sides.runner import Runner
from zmake.targets import route_of

PUSHED_STATE = "pushed here"


def source_rows(runner: Runner, source: FleetSource) -> list[dict[str, object]]:
    route = route_of(source.settings, source.roots)
    if source.push:  # nothing to show is not "all is well": pushed_backups raises
        return [pushed_row(backup) for backup in pushed_backups(runner, route)]
    selection = Selection(source.roots, source.settings.exclude)
    return status(runner, route, source.roots, selection)


def pushed_row(backup: BackupDataset) -> dict[str, object]:
    """What this host knows of a pushed backup: its newest snapshot; the source's, not."""
    return {
        "dataset": backup.name,
        "backup": backup.name,
        "newest_local": None,
        "newest_remote": backup.snapshots[-1].short,
        "resume_token": bool(backup.resume_token),
        "pending_bytes": 0,
        "state": "resumable" if backup.resume_token else PUSHED_STATE,
    }


def run(args: argparse.Namespace, runner: Runner) -> int:
    fleet = chosen(fleet_of(args.config, setting_layer(args)), list(args.pools or ()))
    rows: list[dict[str, object]] = []
    unreadable: dict[str, str] = {}
    for source in fleet:
        try:
            rows += [{"source": source.name, **row} for row in source_rows(runner, source)]
        except ZmakeError as exc:
            unreadable[source.name] = " ".join(str(exc).split())
    if args.json:
        import json

        errors = [{"source": name, "error": why} for name, why in unreadable.items()]
        print(json.dumps({"version": 1, "datasets": rows, "unreadable": errors}, indent=2))
    else:
        print_status([{**row, "dataset": f"{row['source']}:{row['dataset']}"} for row in rows],
                     as_json=False)  # fmt: skip
    for name, why in unreadable.items():
        print(f"zmake: status: {name}: {why}", file=sys.stderr)
    return 1 if unreadable else 0
