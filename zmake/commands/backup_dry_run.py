"""`zmake backup --dry-run`: the whole night's plan — the snapshot it would take, what prune
would destroy and why the rest is kept, each send with its expected size — and nothing
changed on either side (reads only)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from zmake.commands.generate import note_unsnapshotted, read_and_plan
from zmake.commands.prune import prune
from zmake.commands.snapshot import snapshot_name
from zmake.core.model import dest_name
from zmake.core.plan import Plan, Selection, top_roots
from zmake.reports.send import human
from zmake.settings import Settings
from zmake.sides import source_pools
from zmake.sides.runner import Runner
from zmake.sides.side import Route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from zmake.commands.backup import BackupRequest


def dry_run(
    runner: Runner, settings: Settings, route: Route, request: BackupRequest, run_dir: Path
) -> int:
    roots = request.roots
    if request.take_snapshot:
        name = snapshot_name(request.snapshot_format, datetime.now(UTC))
        print(f"snapshot: would take @{name} of {' '.join(roots)} (recursive, atomic)")
    if request.keeping is not None:
        print("prune (both sides):")
        prune(runner, route, roots, Selection(roots, settings.exclude), request.keeping,
              run_dir=run_dir, backup_too=True, assume_yes=True, dry_run=True)  # fmt: skip
    capture = source_pools.read_live(runner, route.source, top_roots(roots))
    plan = read_and_plan(runner, settings, capture, roots, check_remote=True)
    note_unsnapshotted(plan)
    for line in send_lines(plan, route):
        print(line)
    print(f"dry run: nothing was changed; zmake backup without --dry-run would send ~"
          f"{human(plan.total_bytes)} in {request.jobs} parallel transfers")  # fmt: skip
    return 0


def send_lines(plan: Plan, route: Route) -> list[str]:
    where = route.target.host or "this machine"
    lines = [f"send ({len(plan.nodes)} datasets, into {route.dest} on {where}):"]
    for node in plan.nodes:
        name = node.dataset.name
        target = f"{route.dest}/…" if route.to_dir else dest_name(name, route.dest)
        size = "nothing new" if node.expected_bytes == 0 else f"~{human(node.expected_bytes)}"
        lines.append(f"  {name} → {target}  {size}")
    return lines
