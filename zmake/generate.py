"""`zmake generate`: inventory → selection → plan → Makefile text. Pure given its inputs."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence

from zmake import __version__
from zmake.config import Settings, default_run_dir
from zmake.errors import UsageError
from zmake.model import RemoteDataset, dest_name, pool_of
from zmake.parse import Capture, parse_source
from zmake.plan import Plan, build_plan, select
from zmake.render import Settings as RenderSettings
from zmake.render import render_makefile


def zmake_command() -> str:
    """How recipes call zmake: this interpreter, so the Makefile works outside a venv too."""
    return shlex.join([sys.executable, "-m", "zmake"])


def make_plan(
    capture: Capture,
    roots: Sequence[str],
    settings: Settings,
    remote_state: Mapping[str, RemoteDataset] | None = None,
) -> Plan:
    inventory = parse_source(capture.list_output, capture.get_output)
    chosen = select(inventory, roots or capture.pools, settings.exclude)
    pools = sorted({pool_of(name) for name in chosen})
    if len(pools) > 1 and settings.dest:
        raise UsageError("several source pools cannot share one --dest pool: generate per pool")
    targets = {pool: settings.target(pool) for pool in pools}  # refuses the source pool itself
    remote = None
    if remote_state is not None:
        remote = {
            name: remote_state.get(dest_name(name, targets[pool_of(name)].dest_pool))
            for name in chosen
        }
    return build_plan(inventory, chosen, remote)


def generate(
    capture: Capture,
    roots: Sequence[str],
    settings: Settings,
    *,
    command: str,
    source: str,
    remote_state: Mapping[str, RemoteDataset] | None = None,
) -> str:
    return makefile_text(
        make_plan(capture, roots, settings, remote_state), settings, command, source
    )


def makefile_text(plan: Plan, settings: Settings, command: str, source: str) -> str:
    return render_makefile(
        plan,
        RenderSettings(
            zmake=zmake_command(),
            remote=settings.remote or "",
            ssh=settings.ssh,
            dest=settings.dest or "",
            compress=settings.compress,
            command=command,
            source=source,
            stamps=str((settings.run_dir or default_run_dir()) / "stamps"),
        ),
        __version__,
    )
