"""The argparse tables of the commands around replication: verify, restore, drill (proof that
a backup restores), check (monitoring), umount, allow and serve (least privilege)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from zmake.cli.edge import count, dataset_name, output_file, user_name

Command = Callable[..., argparse.ArgumentParser]
Pools = Callable[..., None]


def add_safeguard_commands(command: Command, pools: Pools) -> None:
    add_proof_commands(command)
    chk = command(
        "check",
        "zmake check tank --remote nas --dest backup/laptop --warn 26h --crit 50h",
        "where",
    )
    pools(chk)
    chk.add_argument("--warn", help="WARNING when a backup is older (default 26h)")
    chk.add_argument("--crit", help="CRITICAL when older (default 50h)")
    chk.add_argument(
        "--json", action="store_true", help="machine-readable (docs/check.schema.json)"
    )
    chk.add_argument(
        "--metrics",
        metavar="FILE",
        type=output_file,
        help="also write Prometheus metrics (node_exporter textfile)",
    )
    chk.add_argument(
        "--at",
        type=float,
        metavar="EPOCH",
        help="judge ages as at this time (seconds since 1970; default now)",
    )

    unmount = command("umount", "zmake umount tank --remote nas --dest backup/laptop", "where")
    pools(unmount)
    unmount.add_argument("--stamp", help="file to write when done (make's target)")
    unmount.add_argument("--slots", type=count, help="ssh masters to share (default: make's -jN)")

    allow = command(
        "allow", "zmake allow --role receive --user zrecv backup/laptop --prune", targets="none"
    )
    allow.add_argument(
        "dataset", metavar="DATASET", type=dataset_name, help="the source dataset, or the --dest"
    )
    allow.add_argument(
        "--role", required=True, choices=("push-source", "pull-source", "receive"),
        help="push-source: runs zmake and sends; pull-source: sends to a backup host that "
        "pulls; receive: the backup side",
    )  # fmt: skip
    allow.add_argument("--user", required=True, type=user_name, help="the unprivileged user")
    allow.add_argument("--prune", action="store_true", help="this user prunes too")
    allow.add_argument(
        "--rollback", action="store_true", help="receive: --force may roll a backup back"
    )
    allow.add_argument(
        "--target", metavar="LABEL", type=target_label,
        help="pull-source: the label of the backup host this key is for; its bookmarks are "
        "named by it and it reaches no other's (default: a random one)",
    )  # fmt: skip
    serve = command(
        "serve",
        'command="zmake serve --receive-into backup/laptop",restrict ssh-ed25519 AAAA…',
        targets="none",
    )
    role = serve.add_mutually_exclusive_group(required=True)
    role.add_argument(
        "--receive-into", metavar="DATASET", type=dataset_name, help="a push's backup side"
    )
    role.add_argument(
        "--send-from", metavar="DATASET", type=dataset_name, help="a pull's source side"
    )
    serve.add_argument("--allow-prune", action="store_true", help="allow destroying snapshots")
    serve.add_argument(
        "--allow-rollback", action="store_true", help="allow rollback and recv -A (--force)"
    )
    serve.add_argument(
        "--target",
        metavar="LABEL",
        type=target_label,
        help="send role: this key's bookmarks are DATASET#zmake-LABEL.…, and only those",
    )
    serve.add_argument(
        "--mountpoint-prefix",
        metavar="PATH",
        help="keep a received mountpoint under PATH (default: strip every mountpoint)",
    )

    mode = allow.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="run the zfs commands (as root)")
    mode.add_argument(
        "--check", action="store_true", help="verify an existing setup, from the user's side"
    )


def add_proof_commands(command: Command) -> None:
    ver = command(
        "verify",
        "zmake verify tank/home --remote nas --dest backup/laptop --sample 10%\n"
        "  zmake verify /mnt/usb/zmake --deep            # a --to-dir target",
        "where",
    )
    ver.add_argument("names", nargs="*", metavar="DATASET|DIR",
                     help="source datasets (with their children), or a --to-dir DIR")  # fmt: skip
    ver.add_argument("--sample", metavar="PCT", help="pool: hash only every (100/PCT)-th file")
    ver.add_argument("--deep", action="store_true", help="DIR: also read every stream")
    ver.add_argument("--repair", action="store_true", help="DIR: repair files from par2 data")
    ver.add_argument("--json", action="store_true", help="machine-readable")

    res = command(
        "restore",
        "zmake restore tank/home@zmake-20261129-020000 --into tank/home-restored "
        "--remote nas --dest backup/laptop -n\n"
        "  zmake restore /mnt/usb/zmake tank --into rescue/tank   # from a --to-dir target",
        "where",
    )
    res.add_argument("names", nargs="+", metavar="DATASET[@SNAP]|DIR",
                     help="pool: one source dataset (newest snapshot unless @SNAP); files: DIR "
                     "then datasets (default every one)")  # fmt: skip
    res.add_argument("--into", required=True,
                     help="pool: DATASET becomes this; files: the source pool does")  # fmt: skip
    res.add_argument("--on-backup", action="store_true",
                     help="pool: receive on the backup host (default: on the source)")  # fmt: skip
    res.add_argument("--no-children", action="store_true", help="pool: the one dataset only")
    res.add_argument("--force", action="store_true",
                     help="pool: roll an existing --into back to a shared snapshot")  # fmt: skip
    res.add_argument("-n", "--dry-run", action="store_true", help="print the plan only")

    dri = command(
        "drill",
        "zmake drill tank/home --remote nas --dest backup/laptop   # monthly, from a timer",
        "where",
    )
    dri.add_argument("dataset", metavar="DATASET", help="a source dataset")
    dri.add_argument("--scratch", metavar="DATASET",
                     help="put the throwaway copy below this (default: the pool root)")  # fmt: skip
    dri.add_argument("--on", choices=("backup", "source"), default="backup",
                     help="which host restores (default: the backup host)")  # fmt: skip
    dri.add_argument("--sample", metavar="PCT", help="hash only every (100/PCT)-th file")


def target_label(value: str) -> str:
    import argparse
    import re

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
        raise argparse.ArgumentTypeError(f"{value!r}: 1-32 of A-Z a-z 0-9 _ -")
    return value
