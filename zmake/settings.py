"""Settings: defaults < TOML config file (-c) < ZMAKE_* environment < command line.

The environment layer is how a generated Makefile passes REMOTE/SOURCE/SSH/DEST/COMPRESS/
READONLY to `zmake send`, so `make REMOTE=other` overrides reach every recipe."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from zmake.core.errors import UsageError
from zmake.core.hosts import check_host, ssh_words
from zmake.core.names import dataset_problem
from zmake.core.prunable import OWNED_PREFIX
from zmake.sides.side import Side
from zmake.sides.zfs_argv import COMPRESS_CHOICES

TYPE_CHECKING = False  # `typing` itself is not imported: every send would pay for it
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SNAPSHOT_NAME = OWNED_PREFIX + "%Y%m%d-%H%M%S"

DEFAULT_CONFIG = Path("/etc/zmake/zmake.toml")  # read when -c is not given and it exists
TEXT, SWITCH, WHOLE, TEXTS, PERCENT, TABLES = (
    "text",
    "true or false",
    "whole number ≥ 1",
    "list of text",
    "whole number or N%",
    "table of tables ([sources.NAME])",
)
KNOWN_KEYS = {  # the long option names (`keep-source` or `keep_source` in the file)
    "remote": TEXT,
    "source": TEXT,
    "ssh": TEXT,
    "dest": TEXT,
    "compress": TEXT,
    "readonly": SWITCH,
    "exclude": TEXTS,
    "pools": TEXTS,
    "jobs": WHOLE,
    "keep": WHOLE,
    "keep_source": TEXT,  # a retention policy (core/retention.py)
    "keep_backup": TEXT,
    "run_dir": TEXT,
    "snapshot": SWITCH,
    "prune": SWITCH,
    "to_dir": TEXT,
    "full_every": WHOLE,
    "recovery": PERCENT,
    "name": TEXT,  # the snapshot name's format
    "yes": SWITCH,
    "quiet": SWITCH,
    "metrics": TEXT,
    "summary_json": TEXT,
    "warn": TEXT,
    "crit": TEXT,
    "stall_timeout": TEXT,  # an age, e.g. 10m; 0: never stop a stream
    "host_streams": WHOLE,  # at most this many streams per ssh host at once
    "sources": TABLES,  # the backup host's fleet (zmake/fleet.py), one table per source
}
COMMAND_KEYS = ("name", "yes", "quiet", "metrics", "summary_json", "warn", "crit")
ENV_KEYS = ("remote", "source", "ssh", "dest", "compress", "readonly", "run_dir", "to_dir",
            "full_every", "recovery", "stall_timeout", "host_streams")  # fmt: skip
DEFAULT_STALL = "10m"
SETTING_VARIABLES = tuple(f"ZMAKE_{key.upper()}" for key in ENV_KEYS)
TRUE_WORDS = ("1", "on", "yes", "true")
FALSE_WORDS = ("0", "off", "no", "false")


@dataclass(frozen=True)
class Settings:
    remote: str | None = None  # the backup host (push); None: the backup is on this machine
    source: str | None = None  # the source host (pull); None: the source is this machine
    ssh: str = "ssh"
    dest: str | None = None
    compress: str = "none"
    readonly: bool = True
    exclude: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    jobs: int = 4
    keep: int | None = None
    keep_source: str | None = None
    keep_backup: str | None = None
    run_dir: Path | None = None
    snapshot: bool = False
    prune: bool = False
    to_dir: str | None = None  # a directory target (stream files) instead of a pool
    full_every: int | None = None  # --to-dir: a new full stream after N incrementals
    recovery: int | None = None  # --to-dir: percent of par2 recovery data per file
    name: str = DEFAULT_SNAPSHOT_NAME
    yes: bool = False
    quiet: bool = False
    metrics: str | None = None
    summary_json: str | None = None
    warn: str = "26h"
    crit: str = "50h"
    stall_timeout: str = DEFAULT_STALL  # as given, for the Makefile to pass on
    host_streams: int | None = None  # None: as many as make's jobs

    @property
    def stall_after(self) -> float | None:
        """Seconds a stream may move no data before it is stopped; None: never."""
        from zmake.core.health import parse_age

        seconds = parse_age(self.stall_timeout)
        return float(seconds) if seconds > 0 else None

    @property
    def names_a_target(self) -> bool:
        """A backup side is given: a dataset (--dest) or a directory (--to-dir)."""
        return bool(self.dest or self.to_dir)

    @property
    def source_side(self) -> Side:
        return Side(self.source, self.ssh)

    @property
    def target_side(self) -> Side:
        return Side(self.remote, self.ssh)


def load_config(path: str | None, *, default: bool = True) -> dict[str, Any]:
    """The config file's keys: `path`, else DEFAULT_CONFIG when it exists (and `default`),
    else none."""
    if path is None:
        if not default or not DEFAULT_CONFIG.is_file():
            return {}
        path = str(DEFAULT_CONFIG)
    import tomllib  # here: every `zmake send` starts Python, few read a config file

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise UsageError(f"config {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config {path}: not TOML: {exc}") from None
    return checked_keys(data, KNOWN_KEYS, f"config {path}")


def checked_keys(table: Mapping[str, Any], kinds: Mapping[str, str], where: str) -> dict[str, Any]:
    """A table's keys (`keep-source` read as `keep_source`), each known and of its kind."""
    data = {key.replace("-", "_"): value for key, value in table.items()}
    for key, value in data.items():
        if key not in kinds:
            raise UsageError(f"{where}: unknown key {key!r} (known: {', '.join(kinds)})")
        if not has_kind(value, kinds[key]):
            raise UsageError(f"{where}: {key} must be a {kinds[key]}, not {value!r}")
    return data


def has_kind(value: Any, kind: str) -> bool:
    if kind == SWITCH:
        return isinstance(value, bool)
    if kind == TEXTS:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if kind == TABLES:
        return isinstance(value, dict) and all(isinstance(item, dict) for item in value.values())
    if isinstance(value, bool):  # TOML's true is no number
        return False
    if kind == WHOLE:
        return isinstance(value, int) and value >= 1
    if kind == PERCENT:
        return isinstance(value, int) or (isinstance(value, str) and bool(value.strip()))
    return isinstance(value, str)


def from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {
        key: env[f"ZMAKE_{key.upper()}"] for key in ENV_KEYS if f"ZMAKE_{key.upper()}" in env
    }
    if "readonly" in found:
        switch = parse_switch(found.pop("readonly"), "ZMAKE_READONLY")
        if switch is not None:
            found["readonly"] = switch
    return found


def parse_switch(text: str, what: str) -> bool | None:
    word = text.strip().lower()
    if word == "":
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise UsageError(f"{what} must be on or off, not {text!r}")


def resolve(
    cli: Mapping[str, Any],
    config_path: str | None,
    env: Mapping[str, str] | None = None,
    *,
    default_config: bool = True,
    config: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the layers; `None` on the command line means "not given". Without `-c`, the
    DEFAULT_CONFIG unless `default_config` is off; `config`: the file's keys, already read
    (a fleet source's, zmake/fleet.py)."""
    file_keys = load_config(config_path, default=default_config) if config is None else config
    layers = (  # each with how a message names a key it sets
        (file_keys, lambda key: f"config {config_path or DEFAULT_CONFIG}: {key}"),
        (from_environment(os.environ if env is None else env), lambda key: f"ZMAKE_{key.upper()}"),
        ({k: v for k, v in cli.items() if v is not None and v != [] and v != ()}, "--{}".format),
    )
    merged: dict[str, Any] = {}
    for layer, _ in layers:
        merged.update(layer)

    def named(key: str) -> str:
        naming = next(name for layer, name in reversed(layers) if key in layer)
        return str(naming(key))

    for key in ("remote", "source"):  # before any work: these reach ssh's command line
        if merged.get(key):
            check_host(merged[key], named(key))
    if "ssh" in merged:
        ssh_words(merged["ssh"], named("ssh"))
    dest = str(merged.get("dest") or "").strip("/") or None
    why = dataset_problem(dest) if dest else None
    if why is not None:
        raise UsageError(f"{named('dest')} {merged['dest']!r} is not a dataset name: {why}")
    compress = merged.get("compress") or "none"
    if compress not in COMPRESS_CHOICES:
        raise UsageError(
            f"--compress must be one of {', '.join(COMPRESS_CHOICES)}, not {compress!r}"
        )
    run_dir = merged.get("run_dir")
    readonly = merged.get("readonly")
    return Settings(
        remote=merged.get("remote") or None,
        source=merged.get("source") or None,
        ssh=merged.get("ssh") or "ssh",
        dest=dest,
        compress=compress,
        readonly=True if readonly is None else bool(readonly),
        exclude=tuple(merged.get("exclude", ())),
        pools=tuple(merged.get("pools", ())),
        jobs=int(merged.get("jobs", 4)),
        keep=merged.get("keep"),
        keep_source=merged.get("keep_source"),
        keep_backup=merged.get("keep_backup"),
        run_dir=Path(run_dir) if run_dir else None,
        snapshot=bool(merged.get("snapshot", False)),
        prune=bool(merged.get("prune", False)),
        to_dir=merged.get("to_dir") or None,
        full_every=number_or_none(merged.get("full_every"), "full-every"),
        recovery=number_or_none(str(merged.get("recovery") or "").rstrip("%") or None, "recovery"),
        stall_timeout=stall_timeout(merged.get("stall_timeout"), named),
        host_streams=number_or_none(merged.get("host_streams"), "host-streams"),
        **{key: merged[key] for key in COMMAND_KEYS if merged.get(key) is not None},
    )


def stall_timeout(value: Any, named: Callable[[str], str]) -> str:
    """The --stall-timeout age as given (checked here, before any work)."""
    from zmake.core.health import parse_age

    text = str(value).strip() if value not in (None, "") else DEFAULT_STALL
    try:
        parse_age(text)
    except UsageError as exc:
        raise UsageError(f"{named('stall_timeout')}: {exc}") from None
    return text


def number_or_none(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"--{what} must be a whole number, not {value!r}") from None
    if number < 1:
        raise UsageError(f"--{what} must be at least 1")
    return number


def default_run_dir() -> Path:
    if os.geteuid() == 0 and os.access("/run", os.W_OK):
        return Path("/run/zmake")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "zmake" if runtime else Path(f"/tmp/zmake-{os.geteuid()}")


def ensure_run_dir(path: Path | None) -> Path:
    """The private run directory (mode 0700): locks, reports, ssh sockets."""
    run_dir = path or default_run_dir()
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if run_dir.stat().st_uid != os.geteuid():
        raise UsageError(f"run directory {run_dir} belongs to another user")
    run_dir.chmod(0o700)
    return run_dir
