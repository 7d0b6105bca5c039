"""The commands around replication — restricted keys (serve), least-privilege setup (allow),
monitoring (check), proof that backups restore (verify, restore, drill) — kept apart from
cli/main.py's core."""

from __future__ import annotations

import argparse
from pathlib import Path

from zmake.cli.arguments import roots_of, settings_from
from zmake.core.errors import UsageError, ZmakeError
from zmake.core.plan import Selection
from zmake.settings import Settings
from zmake.sides.runner import Runner


def cmd_serve(args: argparse.Namespace, runner: Runner) -> int:
    """The forced command of a restricted ssh key: run SSH_ORIGINAL_COMMAND only if it is a
    command zmake issues for this role, on this dataset tree (see README: restricted keys)."""
    from zmake.commands.serve import serve
    from zmake.guard.pipeline import Policy

    role, root = ("receive", args.receive_into) if args.receive_into else ("send", args.send_from)
    policy = Policy(role, root.strip("/"), allow_prune=args.allow_prune,
                    allow_rollback=args.allow_rollback,
                    mountpoint_prefix=args.mountpoint_prefix, target=args.target)  # fmt: skip
    return serve(policy)


def cmd_allow(args: argparse.Namespace, runner: Runner) -> int:
    """Print the least-privilege setup of one side for an unprivileged USER: the `zfs allow`
    commands (one per line, runnable as root; --apply runs them) and the restricted
    authorized_keys line; --check verifies an existing setup, from the user's side."""
    from zmake.commands import allow

    request = allow.Request(args.role, args.user, args.dataset, args.prune, args.rollback,
                            args.target)  # fmt: skip
    if args.check:
        return allow.check(runner, request)
    return allow.show(runner, request, apply=args.apply)


def directory_of(args: argparse.Namespace, settings: Settings) -> tuple[str | None, list[str]]:
    """A --to-dir target (--to-dir, or a first name that is a path: no dataset name starts
    with /) and the names left."""
    names = list(args.names)
    if settings.to_dir:
        return settings.to_dir.rstrip("/") or "/", names
    if names and names[0].startswith("/"):
        return names[0].rstrip("/") or "/", names[1:]
    return None, names


def cmd_verify(args: argparse.Namespace, runner: Runner) -> int:
    """Prove a backup restores. Pool target: per dataset, the newest common snapshot's content
    hashed on both sides (files under .zfs/snapshot, zvol chunks) and compared — only hashes
    cross ssh —, and the backup pool's health. --to-dir target: each file's SHA-256 against
    its manifest and each chain's continuity (--deep: the streams too; --repair: par2).
    Exit 0 same/whole, 1 a difference or damage, 3 not verifiable here (a raw backup)."""
    settings = settings_from(args)
    directory, names = directory_of(args, settings)
    if directory is not None:
        from zmake.targets.directory.verify import verify

        return verify(runner, settings.target_side, directory, deep=args.deep,
                      repair=args.repair, as_json=args.json)  # fmt: skip
    from zmake.core.contents import every_from_sample
    from zmake.targets.pool.verify import verify_pool

    names = names or list(settings.pools)
    if not names:
        raise UsageError("verify needs DATASET… (or a --to-dir DIR)")
    every = every_from_sample(args.sample)
    return verify_pool(runner, settings.route(names), names, every, as_json=args.json)


def cmd_restore(args: argparse.Namespace, runner: Runner) -> int:
    """Bring a backup back. Pool target: DATASET[@SNAP] (and its children) into --into, sent
    by the backup host (the source pulls back, or the backup host sends back), parents
    first, resumable; never over an existing dataset without --force; raw stays raw.
    --to-dir target: the newest whole chains, each file checked before it is received."""
    settings = settings_from(args)
    directory, names = directory_of(args, settings)
    into = args.into.strip("/")
    if directory is not None:
        from zmake.targets.directory.restore import restore

        return restore(runner, settings.target_side, directory, names, into,
                       dry_run=args.dry_run)  # fmt: skip
    from zmake.targets.pool.restore import restore_pool

    if len(names) != 1:
        raise UsageError("restore one DATASET[@SNAPSHOT] at a time (its children come along)")
    restore_pool(runner, settings.route(), names[0], into, on_backup=args.on_backup,
                 children=not args.no_children, force=args.force, dry_run=args.dry_run)  # fmt: skip
    return 0


def cmd_drill(args: argparse.Namespace, runner: Runner) -> int:
    """The restore drill: the newest backup of DATASET restored into a throwaway dataset on
    the backup host (or the source, --on source), its content compared with the source's,
    then removed — nothing left behind. Exit 0 same, 1 failed or differs, 3 not verifiable."""
    from zmake.commands.drill import drill
    from zmake.core.contents import every_from_sample

    settings = settings_from(args)
    every = every_from_sample(args.sample)
    return drill(runner, settings.route([args.dataset]), args.dataset,
                 scratch=args.scratch, on_source=args.on == "source", every=every)  # fmt: skip


def cmd_check(args: argparse.Namespace, runner: Runner) -> int:
    """Is every backup current? Per dataset, the age of the newest snapshot the backup holds
    (its creation on the source), a pending resume, a diverged or missing backup. Exit 0 OK,
    1 WARNING, 2 CRITICAL, 3 UNKNOWN (monitoring plugins); one summary line, then problems."""
    import time

    from zmake.commands.check import check
    from zmake.core.health import parse_age

    settings = settings_from(args)
    warn, crit = parse_age(args.warn), parse_age(args.crit)
    try:
        roots = roots_of(args, settings, runner)
    except ZmakeError as exc:
        print(f"ZMAKE UNKNOWN - {exc}")
        return 3
    now = args.at if args.at is not None else time.time()
    metrics = Path(args.metrics) if args.metrics else None
    return check(runner, settings.route(roots), roots, Selection(roots, settings.exclude),
                 warn=warn, crit=crit, now=now, as_json=args.json, metrics=metrics)  # fmt: skip
