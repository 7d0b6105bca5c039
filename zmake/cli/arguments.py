"""From parsed arguments to what the workflows take: settings (command line over environment
over config file), the selection, the roots, the slot count, where output goes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zmake.core.errors import UsageError
from zmake.core.plan import Selection
from zmake.core.retention import SYNTAX, Keeping, Retention
from zmake.settings import Settings, resolve
from zmake.sides.runner import Runner
from zmake.sides.slots import jobs_from_makeflags

SETTING_KEYS = ("remote", "source", "ssh", "dest", "compress", "readonly", "run_dir", "exclude",
                "to_dir", "full_every", "recovery", "stall_timeout", "host_streams")  # fmt: skip


def setting_layer(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's layer of the settings (None: not given), paths made absolute."""
    cli = {key: getattr(args, key, None) for key in SETTING_KEYS}
    if cli.get("run_dir") is not None:
        cli["run_dir"] = os.path.abspath(str(cli["run_dir"]))
    return cli


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings. A generated Makefile's recipe (it exports ZMAKE_SELECTION) takes them from
    the Makefile's exports alone, not from /etc/zmake/zmake.toml: the Makefile may have been
    generated with another -c, and its plan must not change under it."""
    from_makefile = "ZMAKE_SELECTION" in os.environ
    config = getattr(args, "config", None)
    return resolve(setting_layer(args), config, default_config=not from_makefile)


def retention_of(args: argparse.Namespace, settings: Settings, side: str) -> Retention | None:
    """One side's retention policy ("source" or "backup"): --keep-SIDE, else --keep N, else
    the config file's keep-SIDE or keep; None when nothing says what to keep."""
    from zmake.core.retention import parse_retention

    candidates = (
        getattr(args, f"keep_{side}", None),
        getattr(args, "keep", None),
        getattr(settings, f"keep_{side}"),
        settings.keep,
    )
    spec = next((c for c in candidates if c is not None), None)
    return None if spec is None else parse_retention(str(spec), f"keep-{side}")


def keeping_of(args: argparse.Namespace, settings: Settings, *, backup_too: bool) -> Keeping:
    """Both sides' policies (the backup's only when it is pruned too), or a usage error."""
    if getattr(args, "keep", None) is not None:
        given = [f"--keep-{side}" for side in ("source", "backup") if getattr(args, f"keep_{side}")]
        if given:
            raise UsageError(f"--keep N is both sides' policy: give {given[0]} or --keep, not both")
    source = retention_of(args, settings, "source")
    backup = retention_of(args, settings, "backup") if backup_too else source
    if source is None or backup is None:
        missing = "source" if source is None else "backup"
        raise UsageError(f"say what to keep: --keep N, or --keep-{missing} POLICY ({SYNTAX})")
    return Keeping(source, backup)


def selection_of(
    given: Sequence[str], settings: Settings, fallback: Sequence[str] = ()
) -> Selection:
    """What the run backs up: the roots given, else as the generated Makefile exports it
    (ZMAKE_SELECTION), else the config's pools or `fallback`."""
    if given:
        return Selection(tuple(given), settings.exclude)
    exported = os.environ.get("ZMAKE_SELECTION")
    if exported:
        import json

        try:
            data = json.loads(exported)
            return Selection(tuple(data["roots"]), tuple(data["exclude"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"ZMAKE_SELECTION is not what zmake exports: {exc}") from None
    return Selection(tuple(settings.pools or fallback), settings.exclude)


def roots_of(
    args: argparse.Namespace, settings: Settings, runner: Runner, *, changes: bool = False
) -> tuple[str, ...]:
    """The pools or datasets given, else the config's pools, else (for a command that only
    reads) every imported pool: one that takes or destroys snapshots must be told where."""
    roots = list(getattr(args, "pools", None) or settings.pools)
    if roots:
        return tuple(roots)
    if changes:
        raise UsageError(
            f'say which pools: zmake {args.command} POOL… (or pools = ["tank"] in the config); '
            "it does not take or destroy snapshots on every imported pool"
        )
    from zmake.sides import source_pools

    return source_pools.imported_pools(runner, settings.source_side)


def slot_count(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """The ssh slots (so the streams) per host: --slots, else make's -jN, at most the
    settings' host_streams (a fleet's limit per source host)."""
    if args.slots is not None:
        return max(0, int(args.slots))
    jobs = jobs_from_makeflags(os.environ.get("MAKEFLAGS")) or 0
    limit = settings.host_streams if settings is not None else None
    return min(jobs, limit) if limit else jobs


def emit(text: str, output: str | None) -> None:
    """Write to stdout, or atomically to a file (temp file + rename)."""
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from zmake.reports.send import write_if_changed

    write_if_changed(Path(output), text)
