"""A backup host's fleet: the sources its config lists as `[sources.NAME]` tables.

Each source resolves to the Settings of one backup: the file's top-level keys are every
source's defaults, the source's own table overrides them, and the command line's run-wide
options (jobs, --snapshot, --prune, …) apply to all. A source either is pulled by this host
(`source = "user@host"`, or none: pools on this machine) or pushes by itself (`push = true`:
listed so that status and check cover it; `zmake backup` here leaves it alone)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from zmake.core.errors import UsageError
from zmake.settings import (
    DEFAULT_CONFIG,
    KNOWN_KEYS,
    SWITCH,
    Settings,
    checked_keys,
    load_config,
    resolve,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SOURCE_KEYS = ("source", "ssh", "dest", "compress", "readonly", "exclude", "pools", "keep",
               "keep_source", "keep_backup", "to_dir", "full_every", "recovery", "name",
               "stall_timeout", "host_streams")  # fmt: skip
KINDS = {**{key: KNOWN_KEYS[key] for key in SOURCE_KEYS}, "push": SWITCH}
# what only a source's table may say: on the command line it would not say which source
PER_SOURCE = ("source", "remote", "dest", "to_dir", "pools", "exclude")
DEFAULT_HOST_STREAMS = 2  # one machine's disk and uplink are its own bottleneck
MOST_HOST_STREAMS = 10  # a default sshd's MaxStartups (10:30:100) and MaxSessions (10)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class FleetSource:
    name: str
    settings: Settings
    push: bool = False

    @property
    def roots(self) -> tuple[str, ...]:
        return self.settings.pools

    @property
    def host(self) -> str:
        return self.settings.source or "this machine"


def fleet_names(config_path: str | None) -> set[str]:
    """The names of the config's sources (none: no fleet)."""
    return set(load_config(config_path).get("sources") or {})


def fleet_of(
    config_path: str | None, cli: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> list[FleetSource]:
    """Every source of the config, in its order, each checked before any work."""
    keys = load_config(config_path)
    tables = keys.pop("sources", None)
    where = f"config {config_path or DEFAULT_CONFIG}"
    if not tables:
        raise UsageError(f"{where}: no [sources.NAME] tables: a fleet backup needs them")
    given = sorted(key for key in PER_SOURCE if cli.get(key) not in (None, [], ()))
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')} says nothing about which source: "
                         f"set it in the config's [sources.NAME] tables")  # fmt: skip
    environment = os.environ if env is None else env
    inherited = sorted(f"ZMAKE_{key.upper()}" for key in PER_SOURCE
                       if environment.get(f"ZMAKE_{key.upper()}"))  # fmt: skip
    if inherited:
        raise UsageError(f"{inherited[0]} is set: it says nothing about which source of the "
                         "fleet; unset it")  # fmt: skip
    return [source_of(name, table, keys, config_path, cli, env) for name, table in tables.items()]


def source_of(
    name: str,
    table: Mapping[str, Any],
    defaults: Mapping[str, Any],
    config_path: str | None,
    cli: Mapping[str, Any],
    env: Mapping[str, str] | None,
) -> FleetSource:
    where = f"config {config_path or DEFAULT_CONFIG}: sources.{name}"
    if not NAME.fullmatch(name):
        raise UsageError(f"{where}: a source's name is letters, digits, . _ - (at most 64)")
    own = checked_keys(table, KINDS, where)
    push = bool(own.pop("push", False))
    merged = {key: value for key, value in defaults.items() if key != "remote"}
    settings = resolve(cli, config_path, env, config={**merged, **own})
    if settings.host_streams is None:
        settings = replace(settings, host_streams=DEFAULT_HOST_STREAMS)
    elif settings.host_streams > MOST_HOST_STREAMS:
        raise UsageError(f"{where}: host_streams above {MOST_HOST_STREAMS} exceeds what a "
                         "default sshd accepts at once (MaxStartups, MaxSessions)")  # fmt: skip
    if not settings.pools and not push:
        raise UsageError(f'{where}: say which pools or datasets: pools = ["tank"]')
    if not settings.names_a_target:
        raise UsageError(f'{where}: say where its backups go: dest = "backup/{name}"')
    return FleetSource(name, settings, push)


def chosen(fleet: Sequence[FleetSource], names: Sequence[str]) -> list[FleetSource]:
    """The sources named (all when none is), in the config's order."""
    known = {source.name for source in fleet}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(f"no source {unknown[0]!r} in the config (sources: "
                         f"{', '.join(sorted(known))})")  # fmt: skip
    return [source for source in fleet if not names or source.name in names]
