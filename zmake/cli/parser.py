"""The argparse tables of the replication commands (parser_safeguards.py: the commands around
it). cli/main.py's table gives each command its help; its module gives the code."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping

from zmake.cli.edge import Parser, count, output_file, positive_int
from zmake.settings import DEFAULT_CONFIG
from zmake.sides.zfs_argv import COMPRESS_CHOICES

EXAMPLES = """\
examples:
  zmake generate tank --remote nas --dest backup/laptop -o Makefile && make -j8
  zmake generate tank --source laptop --dest backup/laptop -o Makefile   # pull, on the backup host
  zmake generate --from-file sample-pools/home.zcap --remote nas --dest backup/home | make -n -f -
  zmake send 'tank/my data' --remote nas --dest backup/laptop --progress
  zmake backup tank --remote nas --dest backup/laptop --snapshot --prune --keep 14 --yes
  zmake allow --role receive --user zrecv backup/laptop   # least privilege, printed

exit codes: 0 ok, 1 unexpected error, 2 usage, 3 unreadable zfs output, 4 ZFS unavailable,
  5 zfs command failed, 6 remote unreachable, 7 receiving pool missing, 8 transfer failed
  (run again to resume), 9 refused without --force/--yes, 10 lock busy, 130 interrupted.
"""


WHERE = "where"  # the sides and the backup: every command that reaches the backup
ALL = "all"  # and how the stream travels: generate, send, backup
SOURCE = "source"  # the source side only: capture, snapshot
NONE = "none"


def add_target_options(parser: argparse.ArgumentParser, which: str = ALL) -> None:
    if which == NONE:
        return
    group = parser.add_argument_group("where (also ZMAKE_* variables and the config file)")
    group.add_argument("-c", "--config",
                       help=f"TOML config file (default {DEFAULT_CONFIG} if it exists); the "
                       "command line wins")  # fmt: skip
    if which != SOURCE:
        group.add_argument(
            "--remote", help="[USER@]HOST that receives (push; absent: this machine)"
        )
    group.add_argument("--source", help="[USER@]HOST that is backed up (pull; absent: this one)")
    group.add_argument("--ssh", help="ssh command prefix, e.g. 'ssh -p 2222 -F cfg' (default: ssh)")
    if which == SOURCE:
        return
    group.add_argument("--dest", help="receiving dataset, e.g. backup/laptop (zmake creates it)")
    group.add_argument("--run-dir", help="private directory for locks, stamps and reports")
    group.add_argument("--to-dir", metavar="DIR",
                       help="write stream files into DIR (any filesystem; on --remote over ssh) "
                       "instead of receiving into a pool")  # fmt: skip
    group.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip datasets whose full name matches (repeatable; not their children)",
    )
    if which == ALL:
        add_transfer_options(group)


def add_transfer_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--compress", choices=COMPRESS_CHOICES, help="compress the stream in transit"
    )
    group.add_argument(
        "--readonly",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="receive backups with readonly=on (default: on)",
    )
    group.add_argument(
        "--full-every",
        type=positive_int,
        metavar="N",
        help="--to-dir: start a new chain (a full stream) after N incrementals",
    )
    group.add_argument(
        "--recovery", metavar="PCT", help="--to-dir: par2 recovery data per file, e.g. 5%%"
    )
    group.add_argument(
        "--stall-timeout",
        metavar="AGE",
        help="stop a stream that moved no data for AGE (e.g. 10m, the default; 0: never); "
        "what arrived is kept, the next run resumes it",
    )


def keep_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "retention (POLICY: 7 | last=7,within=30d,hourly=24,daily=14,weekly=8,monthly=12,"
        "yearly=3; ages from creation, UTC)"
    )
    group.add_argument("--keep", type=positive_int, metavar="N", help="the newest N, on both sides")
    group.add_argument("--keep-source", metavar="POLICY", help="what the source keeps")
    group.add_argument("--keep-backup", metavar="POLICY", help="what the backup keeps")


def build(
    helps: Mapping[str, str], version: str, snapshot_name: str, usage_exits: Mapping[str, int]
) -> argparse.ArgumentParser:
    parser = Parser(
        prog="zmake",
        description="Parallel, restartable ZFS replication: generate a Makefile, run make -jN.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"zmake {version}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every command run")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, example: str, targets: str = ALL) -> argparse.ArgumentParser:
        doc = helps[name]
        sub = commands.add_parser(
            name,
            help=first_sentence(doc),
            description=doc,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            usage_exit=usage_exits.get(name, 2),
        )
        # also after the command (`zmake generate -v`); not given here: the one before it
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="print every command run")  # fmt: skip
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks")  # fmt: skip
        add_target_options(sub, targets)
        return sub

    def pools(sub: argparse.ArgumentParser, changes: bool = False) -> None:
        fallback = "" if changes else ", or every imported pool"
        sub.add_argument(
            "pools",
            nargs="*",
            metavar="POOL",
            help=f"source pool(s) or datasets (default: the config's pools{fallback})",
        )

    capture = command("capture", "zmake capture tank > tank.zcap", SOURCE)
    pools(capture)
    capture.add_argument(
        "-o", "--output", type=output_file, help="write to FILE atomically instead of stdout"
    )

    gen = command(
        "generate", "zmake generate tank --remote nas --dest backup/laptop -o Makefile && make -j8"
    )
    gen.add_argument("datasets", nargs="*", metavar="POOL|DATASET", help="what to replicate")
    gen.add_argument("--from-file", metavar="CAPTURE", help="plan from a zmake capture file")
    gen.add_argument(
        "--check-remote",
        action="store_true",
        help="ask the backup (one connection) what it has, for size estimates",
    )
    gen.add_argument(
        "-o", "--output", type=output_file, help="write to FILE atomically instead of stdout"
    )
    gen.add_argument(
        "--update",
        metavar="MAKEFILE",
        help="regenerate MAKEFILE as it was generated, if the pools changed (make does this)",
    )
    gen.add_argument(
        "--static", action="store_true", help="no rule that remakes the Makefile when run"
    )
    gen.set_defaults(argv=None)

    send = command("send", "zmake send 'tank/my data' --remote nas --dest backup/laptop --progress")
    send.add_argument(
        "datasets",
        metavar="DATASET",
        nargs="+",
        help="one or more (a batch: one process, one read of each side for all of them)",
    )
    send.add_argument(
        "--force",
        action="store_true",
        help="roll back a diverged backup, or abort a partial receive that cannot resume",
    )
    send.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pv progress line (default: when stderr is a terminal)",
    )
    send.add_argument("-n", "--dry-run", action="store_true", help="print the pipeline only")
    send.add_argument(
        "--stamp", help="file to write when every DATASET is up to date (make's target)"
    )
    send.add_argument(
        "--failures",
        metavar="DIR",
        help="on failure, write why into DIR and exit 0, so make goes on to the parents "
        "(the Makefile's `all` reports it)",
    )
    send.add_argument("--slots", type=count, help="ssh masters to share (default: make's -jN)")
    send.add_argument(
        "--no-wait",
        action="store_true",
        help="fail instead of waiting when another send holds the lock",
    )

    snap = command("snapshot", "zmake snapshot tank --name 'zmake-%Y%m%d'", SOURCE)
    pools(snap, changes=True)
    snap.add_argument(
        "--name", help="strftime format, UTC (default " + snapshot_name.replace("%", "%%") + ")"
    )

    prn = command(
        "prune", "zmake prune tank --keep 7 --remote-side --dest backup/laptop --yes", WHERE
    )
    pools(prn, changes=True)
    keep_options(prn)
    prn.add_argument(
        "--remote-side", action="store_true", help="prune the backup too, with the same rules"
    )
    prn.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    prn.add_argument("--dry-run", action="store_true", help="list only")
    prn.add_argument(
        "--keep-chains",
        type=positive_int,
        metavar="K",
        help="--to-dir: delete whole chains older than the newest K per dataset",
    )
    prn.add_argument(
        "--backup-only",
        action="store_true",
        help="prune the backups under --dest without the source (on the backup host, when "
        "the source's key only appends): never a backup's newest snapshot",
    )

    stat = command("status", "zmake status tank --remote nas --dest backup/laptop --json", WHERE)
    pools(stat)
    stat.add_argument(
        "--json", action="store_true", help="machine-readable (docs/status.schema.json)"
    )

    bak = command(
        "backup",
        "zmake backup tank --remote nas --dest backup/laptop --snapshot --prune --keep 7 --yes",
    )
    pools(bak, changes=True)
    bak.add_argument("--snapshot", action="store_true", help="take a snapshot first")
    bak.add_argument(
        "--name", help="snapshot name format (default " + snapshot_name.replace("%", "%%") + ")"
    )
    bak.add_argument("--prune", action="store_true", help="prune both sides before sending")
    keep_options(bak)
    bak.add_argument("-j", "--jobs", type=positive_int, help="parallel transfers (default 4)")
    bak.add_argument("--yes", action="store_true", help="do not ask before destroying")
    bak.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="print the plan (snapshot, prune with reasons, sends with sizes); change nothing",
    )
    bak.add_argument("--check-remote", action="store_true", help="estimate from the backup's state")
    bak.add_argument(
        "--all",
        action="store_true",
        help="every source of the config's [sources.NAME] tables, in one Makefile (the "
        "default when the config has them and no pool is given; or name sources)",
    )
    bak.add_argument(
        "--host-streams",
        type=positive_int,
        metavar="K",
        help="at most K streams per ssh host at once (default: -j; a fleet's default 2)",
    )
    bak.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing when every dataset is up to date, only problems else",
    )
    bak.add_argument(
        "--metrics",
        metavar="FILE",
        type=output_file,
        help="write Prometheus metrics of the run (node_exporter textfile)",
    )
    bak.add_argument(
        "--summary-json",
        metavar="FILE",
        type=output_file,
        help="write the run's summary as JSON (docs/backup-summary.schema.json)",
    )

    from zmake.cli.parser_safeguards import add_safeguard_commands

    add_safeguard_commands(command, pools)
    return parser


def first_sentence(text: str) -> str:
    """A command's summary in `zmake --help`: its help's first sentence."""
    return re.split(r"(?<=[.?])\s", " ".join(text.split()), maxsplit=1)[0]
