"""Settings: defaults < TOML config file (-c) < ZMAKE_* environment < command line.

The environment layer is how a generated Makefile passes REMOTE/SSH/DEST/COMPRESS to
`zmake send`, so `make REMOTE=other` overrides reach every recipe."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zmake.commands import COMPRESS_CHOICES, Target
from zmake.errors import UsageError
from zmake.prune import OWNED_PREFIX

TYPE_CHECKING = False  # `typing` itself is not imported: every send would pay for it
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SNAPSHOT_NAME = OWNED_PREFIX + "%Y%m%d-%H%M%S"

KNOWN_KEYS = {
    "remote": str,
    "ssh": str,
    "dest": str,
    "compress": str,
    "exclude": list,
    "pools": list,
    "jobs": int,
    "keep": int,
    "run_dir": str,
    "snapshot": bool,
    "prune": bool,
}
ENV_KEYS = ("remote", "ssh", "dest", "compress", "run_dir")


@dataclass(frozen=True)
class Settings:
    remote: str | None = None
    ssh: str = "ssh"
    dest: str | None = None
    compress: str = "none"
    exclude: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    jobs: int = 4
    keep: int | None = None
    run_dir: Path | None = None
    snapshot: bool = False
    prune: bool = False

    def target(self, source_pool: str) -> Target:
        dest = self.dest or source_pool
        if self.remote is None and dest == source_pool:
            raise UsageError(
                f"receiving into {dest!r} on this machine would overwrite the source: "
                "give --dest POOL or --remote HOST"
            )
        return Target(dest_pool=dest, remote=self.remote, ssh=self.ssh)


def load_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    import tomllib  # here: every `zmake send` starts Python, few read a config file

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise UsageError(f"config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path}: {exc}") from None
    for key, value in data.items():
        if key not in KNOWN_KEYS:
            raise UsageError(f"config {path}: unknown key {key!r} (known: {', '.join(KNOWN_KEYS)})")
        if not isinstance(value, KNOWN_KEYS[key]):
            raise UsageError(f"config {path}: {key} must be a {KNOWN_KEYS[key].__name__}")
    return data


def from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    return {key: env[f"ZMAKE_{key.upper()}"] for key in ENV_KEYS if f"ZMAKE_{key.upper()}" in env}


def resolve(
    cli: Mapping[str, Any], config_path: str | None, env: Mapping[str, str] | None = None
) -> Settings:
    """Merge the layers; `None` on the command line means "not given"."""
    merged: dict[str, Any] = {}
    merged.update(load_config(config_path))
    merged.update(from_environment(os.environ if env is None else env))
    merged.update({k: v for k, v in cli.items() if v is not None and v != [] and v != ()})
    compress = merged.get("compress", "none")
    if compress not in COMPRESS_CHOICES:
        raise UsageError(
            f"--compress must be one of {', '.join(COMPRESS_CHOICES)}, not {compress!r}"
        )
    run_dir = merged.get("run_dir")
    return Settings(
        remote=merged.get("remote") or None,
        ssh=merged.get("ssh") or "ssh",
        dest=merged.get("dest") or None,
        compress=compress,
        exclude=tuple(merged.get("exclude", ())),
        pools=tuple(merged.get("pools", ())),
        jobs=int(merged.get("jobs", 4)),
        keep=merged.get("keep"),
        run_dir=Path(run_dir) if run_dir else None,
        snapshot=bool(merged.get("snapshot", False)),
        prune=bool(merged.get("prune", False)),
    )


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
