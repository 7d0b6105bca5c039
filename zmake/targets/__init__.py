"""What receives the backups, behind one interface (targets/base.py `Target`): a pool
(targets/pool) or a directory of stream files (targets/directory).

`route_of` and `target_at` are the only places that look at the kind; the workflows only
call the target. A new kind is one new module with a class that implements `Target`, and
one line here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from zmake.core.errors import UsageError
from zmake.core.model import is_within
from zmake.settings import Settings
from zmake.sides.side import Route
from zmake.targets.base import Target
from zmake.targets.directory.target import DirectoryTarget
from zmake.targets.pool.target import PoolTarget

DEST_HINT = "e.g. --dest backup/$(hostname -s): the backups go below it, zmake creates it"


def route_of(settings: Settings, roots: Sequence[str] = ()) -> Route:
    """Where the backups of `roots` (source datasets) go: a pool dataset (--dest, refused
    when dangerous) or a directory of stream files (--to-dir)."""
    if settings.to_dir:
        if settings.dest:
            raise UsageError("give --dest (a pool target) or --to-dir (files), not both")
        directory = settings.to_dir.rstrip("/") or "/"
        return Route(settings.source_side, settings.target_side, directory, to_dir=True)
    if not settings.dest:
        raise UsageError(f"give --dest DATASET on the receiving side ({DEST_HINT})")
    same_machine = settings.remote is None and settings.source is None
    check_dest(settings.dest, roots, same_machine=same_machine)
    return Route(settings.source_side, settings.target_side, settings.dest,
                 compress=settings.compress, readonly=settings.readonly)  # fmt: skip


def target_of(settings: Settings, roots: Sequence[str] = ()) -> Target:
    """The backup side of `roots` (source datasets), as the settings say."""
    return target_at(route_of(settings, roots), settings)


def target_at(route: Route, settings: Settings | None = None) -> Target:
    """The backup side a route names (`settings`: how a directory target writes)."""
    if route.to_dir:
        given = settings or Settings()
        return DirectoryTarget(route, given.compress, given.full_every, given.recovery,
                               given.to_dir or "")  # fmt: skip
    return PoolTarget(route)


def directory_named(settings: Settings, names: Sequence[str]) -> tuple[Settings, list[str]]:
    """verify and restore: a first name that is a path names a directory target (no dataset
    name starts with /), which then stands alone (a configured --dest does not apply); the
    settings for it and the names left."""
    rest = list(names)
    if not settings.to_dir and rest and rest[0].startswith("/"):
        settings = replace(settings, to_dir=rest.pop(0))
    if settings.to_dir:
        settings = replace(settings, dest=None)
    return settings, rest


def check_dest(dest: str, roots: Sequence[str], *, same_machine: bool) -> None:
    """A backup must neither replace the receiving pool's own root dataset nor, on one
    machine, land inside (or above) what it backs up."""
    if "/" not in dest and any("/" not in root for root in roots):
        pool = next(root for root in roots if "/" not in root)
        raise UsageError(
            f"--dest {dest} is a pool: the backup of {pool}'s root dataset would replace that "
            f"pool's own root; give a dataset below it ({DEST_HINT})"
        )
    if not same_machine:
        return
    for root in roots:
        if is_within(dest, root) or is_within(root, dest):
            raise UsageError(
                f"--dest {dest} overlaps the source {root} on this machine: the backup would "
                "become part of what it backs up (or overwrite it)"
            )
