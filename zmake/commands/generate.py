"""`zmake generate`: inventory → selection → plan → Makefile text.

The Makefile records how it was generated (the command line, the ZMAKE_* environment, the
config file: one JSON comment line) and remakes itself from that recipe whenever make runs
(`zmake generate --update`): written only when its text changes, so make restarts only when
the pools changed, and a kept Makefile never reports success for a stale plan."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zmake import __version__
from zmake.cli.arguments import emit, setting_layer
from zmake.core.errors import UsageError
from zmake.core.model import BackupDataset, dest_name, pool_of
from zmake.core.parse import Capture, parse_source
from zmake.core.plan import Plan, build_plan, select, top_roots
from zmake.core.render import RenderSettings, render_makefile
from zmake.reports.send import write_if_changed
from zmake.settings import SETTING_VARIABLES, Settings, default_run_dir, resolve
from zmake.sides.interpreter import module_argv
from zmake.sides.runner import Runner
from zmake.targets import route_of, target_of

RECIPE_MARK = "# zmake-generate: "


@dataclass(frozen=True)
class Recipe:
    """Everything a Makefile is generated from, so that it can regenerate itself exactly."""

    cli: dict[str, object]  # the command line's settings layer (None: not given)
    config: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # ZMAKE_* at generate time
    roots: tuple[str, ...] = ()
    from_file: str | None = None
    check_remote: bool = False
    command: str = "zmake generate"

    def settings(self) -> Settings:
        return resolve(self.cli, self.config, self.env)

    def to_json(self) -> str:
        return json.dumps(
            {
                "cli": self.cli,
                "config": self.config,
                "env": self.env,
                "roots": list(self.roots),
                "from_file": self.from_file,
                "check_remote": self.check_remote,
                "command": self.command,
            },
            sort_keys=True,
        )


def absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(path)


def recipe_of(makefile: str) -> Recipe:
    """The recipe recorded in a Makefile zmake generated."""
    try:
        with open(makefile, encoding="utf-8") as handle:
            line = next((line for line in handle if line.startswith(RECIPE_MARK)), None)
    except OSError as exc:
        raise UsageError(f"{makefile}: {exc.strerror}") from None
    if line is None:
        raise UsageError(f"{makefile}: not a Makefile zmake can update (no {RECIPE_MARK!r})")
    try:
        data = json.loads(line[len(RECIPE_MARK) :])
        return Recipe(
            cli=dict(data["cli"]),
            config=data["config"],
            env={str(k): str(v) for k, v in data["env"].items()},
            roots=tuple(data["roots"]),
            from_file=data["from_file"],
            check_remote=bool(data["check_remote"]),
            command=str(data["command"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{makefile}: unreadable {RECIPE_MARK.strip()} line ({exc})") from None


def zmake_command() -> str:
    """How recipes call zmake: this interpreter, so the Makefile works outside a venv too;
    isolated, so neither the directory make runs in nor its environment picks the code."""
    return shlex.join(module_argv("zmake"))


def make_plan(
    capture: Capture,
    roots: Sequence[str],
    settings: Settings,
    remote_state: Mapping[str, BackupDataset] | None = None,
) -> Plan:
    inventory = parse_source(capture.list_output, capture.get_output)
    roots = list(roots or capture.pools)
    chosen = select(inventory, roots, settings.exclude)
    pools = sorted({pool_of(name) for name in chosen})
    if len(pools) > 1:
        raise UsageError(
            f"one source pool per Makefile (each needs its own --dest): {', '.join(pools)}"
        )
    route = route_of(settings, roots)  # refuses a --dest that would overwrite something
    remote = None
    if remote_state is not None:
        remote = {name: remote_state.get(dest_name(name, route.dest)) for name in chosen}
    return build_plan(inventory, chosen, remote)


def selection_json(roots: Sequence[str], settings: Settings) -> str:
    return json.dumps({"roots": list(roots), "exclude": list(settings.exclude)})


def makefile_text(
    plan: Plan,
    settings: Settings,
    *,
    roots: Sequence[str],
    command: str,
    origin: str,
    recipe: Recipe | None = None,
) -> str:
    rendering = render_settings(settings, roots=roots, command=command, origin=origin,
                                recipe=recipe)  # fmt: skip
    return render_makefile(plan, rendering, __version__)


def render_settings(
    settings: Settings,
    *,
    roots: Sequence[str],
    command: str,
    origin: str,
    recipe: Recipe | None = None,
    stamps: str | None = None,
) -> RenderSettings:
    """What a Makefile records and exports of `settings`."""
    return RenderSettings(
        zmake=zmake_command(),
        remote=settings.remote or "",
        source_host=settings.source or "",
        ssh=settings.ssh,
        dest=settings.dest or "",
        compress=settings.compress,
        readonly=settings.readonly,
        stall_timeout=settings.stall_timeout,
        command=command,
        origin=origin,
        selection=selection_json(roots, settings),
        recipe=recipe.to_json() if recipe else "",
        stamps=stamps or str((settings.run_dir or default_run_dir()) / "stamps"),
        target_variables=tuple(target_of(settings, roots).make_variables()),
    )


def read_and_plan(
    runner: Runner,
    settings: Settings,
    capture: Capture,
    roots: Sequence[str],
    *,
    check_remote: bool,
) -> Plan:
    """The plan of the source read in `capture`; with `check_remote`, the backup side is read
    first (once) and what is already there is planned as done (generate and backup)."""
    remote_state = None
    target = target_of(settings, roots) if check_remote else None
    if target is not None and target.plans_from_backups:
        remote_state = target.read_backups(runner, {})
    return make_plan(capture, roots, settings, remote_state)


def note_unsnapshotted(plan: Plan) -> None:
    """A dataset without a snapshot has nothing to send: say so (a first run on a fresh pool
    would otherwise plan "~0 bytes" and say nothing)."""
    bare = [node.dataset.name for node in plan.nodes if not node.dataset.snapshots]
    if bare:
        pools = " ".join(sorted({name.split("/")[0] for name in bare}))
        print(f"zmake: note: {len(bare)} of {len(plan.nodes)} datasets have no snapshot yet, "
              f"so nothing to send for them ({bare[0]}{', …' if len(bare) > 1 else ''}): "
              f"take one first, zmake snapshot {pools} (or zmake backup --snapshot)",
              file=sys.stderr)  # fmt: skip


def generate_text(
    runner: Runner, recipe: Recipe, *, static: bool = False, hint: bool = False
) -> str:
    """Read the source (live, one `zfs list` and one `zfs get`, or a capture) and render."""
    from zmake.sides import source_pools

    settings = recipe.settings()
    roots = list(recipe.roots) or list(settings.pools)
    if recipe.from_file:
        capture = source_pools.read_capture(recipe.from_file)
        origin = f"capture {recipe.from_file} (zfs {capture.zfs_version})"
    else:
        capture = read_source(runner, settings, roots)
        origin = f"zfs on {settings.source or 'this machine'}, pools {' '.join(capture.pools)}"
    roots = roots or list(capture.pools)
    plan = read_and_plan(runner, settings, capture, roots, check_remote=recipe.check_remote)
    if hint:  # a user at a terminal, not make's self-update on every run
        note_unsnapshotted(plan)
    return makefile_text(
        plan,
        settings,
        roots=roots,
        command=recipe.command,
        origin=origin,
        recipe=None if static else recipe,
    )


def read_source(runner: Runner, settings: Settings, roots: Sequence[str]) -> Capture:
    """The source's inventory. On another machine, through slot 0's master: the Makefile's
    first send reuses that connection (a pull costs no connection of its own to generate)."""
    from contextlib import nullcontext

    from zmake.settings import ensure_run_dir
    from zmake.sides import source_pools
    from zmake.sides.slots import ssh_slot

    side = settings.source_side
    reading = (
        nullcontext(side)
        if side.is_local
        else ssh_slot(runner, ensure_run_dir(settings.run_dir), side, 1)
    )
    with reading as slotted:
        named = top_roots(roots)  # only what is backed up: a restricted key allows no more
        return source_pools.read_live(
            runner, slotted, named or source_pools.imported_pools(runner, slotted)
        )


def run(args: argparse.Namespace, runner: Runner) -> int:
    if args.update:
        recipe = recipe_of(args.update)
        write_if_changed(Path(args.update), generate_text(runner, recipe))
        return 0
    recipe = Recipe(
        cli=setting_layer(args),
        config=absolute(args.config),
        env={k: v for k, v in os.environ.items() if k in SETTING_VARIABLES},
        roots=tuple(args.datasets),
        from_file=absolute(args.from_file),
        check_remote=args.check_remote,
        command=shlex.join(["zmake", *sys.argv[1:]]) if args.argv is None else args.argv,
    )
    emit(generate_text(runner, recipe, static=args.static, hint=True), args.output)
    return 0
