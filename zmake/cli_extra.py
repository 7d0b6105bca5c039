"""The commands around replication — restricted keys (serve), least-privilege setup (allow),
monitoring (check), stream-file targets (verify, restore) — kept apart from cli.py's core."""

from __future__ import annotations

import argparse
from pathlib import Path

from zmake.arguments import roots_of, settings_from
from zmake.errors import ZmakeError
from zmake.plan import Selection
from zmake.runner import Runner


def cmd_serve(args: argparse.Namespace, runner: Runner) -> int:
    """The forced command of a restricted ssh key: run SSH_ORIGINAL_COMMAND only if it is a
    command zmake issues for this role, on this dataset tree (see README: restricted keys)."""
    from zmake.guard import Policy
    from zmake.serve import serve

    role, root = ("receive", args.receive_into) if args.receive_into else ("send", args.send_from)
    policy = Policy(role, root.strip("/"), allow_prune=args.allow_prune,
                    allow_rollback=args.allow_rollback,
                    mountpoint_prefix=args.mountpoint_prefix)  # fmt: skip
    return serve(policy)


def cmd_allow(args: argparse.Namespace, runner: Runner) -> int:
    """Print the least-privilege setup of one side for an unprivileged USER: the `zfs allow`
    commands (one per line, runnable as root; --apply runs them) and the restricted
    authorized_keys line; --check verifies an existing setup, from the user's side."""
    from zmake import grant

    request = grant.Request(args.role, args.user, args.dataset, args.prune, args.rollback)
    if args.check:
        return grant.check(runner, request)
    return grant.show(runner, request, apply=args.apply)


def cmd_verify(args: argparse.Namespace, runner: Runner) -> int:
    """Check every chain of a --to-dir target: each file's SHA-256 against its manifest, the
    chain's continuity, with --deep the streams' own records; --repair from par2 data."""
    from zmake.sides import Side
    from zmake.verify import verify

    return verify(runner, Side(args.remote, args.ssh), args.directory.rstrip("/") or "/",
                  deep=args.deep, repair=args.repair, as_json=args.json)  # fmt: skip


def cmd_restore(args: argparse.Namespace, runner: Runner) -> int:
    """Replay a --to-dir target's newest whole chains into a pool, parents first, each file's
    SHA-256 checked before it is received; run again to carry on after an interruption."""
    from zmake.restore import restore
    from zmake.sides import Side

    return restore(runner, Side(args.remote, args.ssh), args.directory.rstrip("/") or "/",
                   args.datasets, args.into.strip("/"), dry_run=args.dry_run)  # fmt: skip


def cmd_check(args: argparse.Namespace, runner: Runner) -> int:
    """Is every backup current? Per dataset, the age of the newest snapshot the backup holds
    (its creation on the source), a pending resume, a diverged or missing backup. Exit 0 OK,
    1 WARNING, 2 CRITICAL, 3 UNKNOWN (monitoring plugins); one summary line, then problems."""
    import time

    from zmake.check import check
    from zmake.health import parse_age

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
