"""`zmake allow`: print (and with --apply, run) the `zfs allow` setup of one side for an
unprivileged user, with the restricted authorized_keys line; or check an existing setup."""

from __future__ import annotations

import argparse
import os
import shlex
from typing import NamedTuple

from zmake.core.errors import PermissionDenied, UsageError, ZmakeError
from zmake.sides import permissions
from zmake.sides.runner import Runner
from zmake.sides.side import Side
from zmake.sides.zfs_calls import control, read_datasets


class Request(NamedTuple):
    role: str
    user: str
    dataset: str
    prune: bool
    rollback: bool
    target: str | None = None  # pull-source: the label of the key's bookmarks


def show(runner: Runner, request: Request, *, apply: bool) -> int:
    from zmake.commands.generate import zmake_command

    role, user, dataset = request.role, request.user, request.dataset
    exists = False
    if role == "receive" and "/" not in dataset:
        raise UsageError(
            f"--role receive {dataset}: that is a pool; give the --dest below it that the "
            f"backups go into, e.g. {dataset}/laptop (zmake allow creates it)"
        )
    if role == "receive":
        try:
            exists = bool(read_datasets(runner, Side(), [dataset]))
        except ZmakeError:
            exists = False  # printed for another machine
    setup = permissions.setup(role, user, dataset, prune=request.prune, rollback=request.rollback,
                        zmake=zmake_command(), dest_exists=exists,
                        target=request.target)  # fmt: skip
    where = "backup host" if role == "receive" else "source host"
    print(f"# zmake allow --role {role} --user {user} {dataset}: as root, on the {where}:")
    for argv in setup.commands:
        print(shlex.join(argv))
    if setup.key_line is not None:
        whose = "source's" if role == "receive" else "backup host's"
        print(f"# in ~{user}/.ssh/authorized_keys, the {whose} key, restricted to zmake:")
        print(f"# {setup.key_line}")
    for note in setup.notes:
        print(f"# note: {note}")
    if apply:
        for argv in setup.commands:
            control(runner, Side(), argv)
        print(f"# applied: {len(setup.commands)} commands")
    return 0


def check(runner: Runner, request: Request) -> int:
    """From the user's side: does USER hold every permission the role needs (exit 5 if not)?"""
    import grp
    import pwd

    role, user, dataset = request.role, request.user, request.dataset
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"--user {user}: no such user on this machine") from None
    groups = [grp.getgrgid(g).gr_name for g in os.getgrouplist(user, account.pw_gid)]
    granted = control(runner, Side(), ["zfs", "allow", dataset])
    have = permissions.effective(granted, dataset, user, groups)
    need = permissions.role_permissions(role, prune=request.prune, rollback=request.rollback)
    missing = [perm for perm in need if perm not in have]
    if missing:
        raise PermissionDenied(
            f"{user} lacks `{','.join(missing)}` on {dataset}: "
            f"zfs allow -u {user} {','.join(missing)} {dataset}"
        )
    print(f"{user} holds every permission a {role} needs on {dataset}: {','.join(need)}")
    return 0


def run(args: argparse.Namespace, runner: Runner) -> int:
    request = Request(args.role, args.user, args.dataset, args.prune, args.rollback,
                            args.target)  # fmt: skip
    if args.check:
        return check(runner, request)
    return show(runner, request, apply=args.apply)
