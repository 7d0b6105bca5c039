"""Command line: a table of commands (each one module of zmake.commands, with its `run`),
the argparse tables, and errors mapped to exit codes. Nothing else.

make starts a new `zmake send` for every dataset, so only the command that runs is imported:
its help text lives here, in the table, not in its module."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence
from importlib import import_module

from zmake import __version__
from zmake.core.errors import UsageError, ZmakeError
from zmake.settings import DEFAULT_SNAPSHOT_NAME
from zmake.sides.runner import Runner

# name → its help (the first line is the summary in `zmake --help`); the code is
# zmake/commands/NAME.py's `run(args, runner)`
COMMANDS: dict[str, str] = {
    "capture": """
        Record the zfs output that generate reads (for --from-file, tests, bug reports).
    """,
    "generate": """
        Print a Makefile whose targets replicate each dataset, children first. The Makefile
        remakes itself when the pools change (a new snapshot or dataset), so it can be kept.
    """,
    "send": """
        Bring one dataset's backup up to its newest snapshot (resume, full or incremental), or,
        with --to-dir, write its next stream files.
    """,
    "snapshot": """
        Take one recursive, atomic snapshot of every given pool (name in UTC).
    """,
    "prune": """
        Destroy the zmake snapshots each side's retention policy lets go. --keep N, or
        --keep-source/--keep-backup POLICY: last=N, within=30d, hourly/daily/weekly/monthly/
        yearly=N; never a backup's base, what a partial receive needs, a held, foreign or the
        newest snapshot; --dry-run says per snapshot which rule keeps it; asks unless --yes.
    """,
    "status": """
        Per dataset: newest snapshot on each side, pending bytes, state (one read per side).
    """,
    "backup": """
        The whole nightly job: [snapshot] → [prune] → generate → make -jN -k → summary. Exit 0
        only when every dataset is up to date on the backup; run again to finish.
    """,
    "umount": """
        Unmount this source's backups on the receiving side (and nothing else there). Every send
        target of a generated Makefile depends on this.
    """,
    "allow": """
        Print the least-privilege setup of one side for an unprivileged USER. The `zfs allow`
        commands (one per line, runnable as root; --apply runs them) and the restricted
        authorized_keys line; --check verifies an existing setup, from the user's side.
    """,
    "check": """
        Is every backup current? Per dataset, the age of the newest snapshot the backup holds
        (its creation on the source), a pending resume, a diverged or missing backup. Exit 0 OK,
        1 WARNING, 2 CRITICAL, 3 UNKNOWN (monitoring plugins); one summary line, then problems.
    """,
    "verify": """
        Prove a backup restores. Pool target: per dataset, the newest common snapshot's content
        hashed on both sides (files under .zfs/snapshot, zvol chunks) and compared — only hashes
        cross ssh —, and the backup pool's health. --to-dir target: each file's SHA-256 against
        its manifest and each chain's continuity (--deep: the streams too; --repair: par2). Exit
        0 same/whole, 1 a difference or damage, 3 not verifiable here (a raw backup).
    """,
    "restore": """
        Bring a backup back. Pool target: DATASET[@SNAP] (and its children) into --into, sent by
        the backup host (the source pulls back, or the backup host sends back), parents first,
        resumable; never over an existing dataset without --force; raw stays raw. --to-dir
        target: the newest whole chains, each file checked before it is received.
    """,
    "drill": """
        The restore drill: DATASET's newest backup restored, compared, removed. Restored into a
        throwaway dataset on the backup host (or the source, --on source), its content compared
        with the source's, then removed: nothing left behind. Exit 0 same, 1 failed or differs,
        3 not verifiable.
    """,
    "serve": """
        The forced command of a restricted ssh key. It runs SSH_ORIGINAL_COMMAND only if it is a
        command zmake issues for this role, on this dataset tree (see README: restricted keys).
    """,
}


# a usage error's exit code when not 2: check's caller is a monitoring system, for which 2
# is CRITICAL, and a check that could not run is UNKNOWN
USAGE_EXITS = {"check": 3}


def build_parser() -> argparse.ArgumentParser:
    from zmake.cli.parser import build

    helps = {name: inspect.cleandoc(text) for name, text in COMMANDS.items()}
    return build(helps, __version__, DEFAULT_SNAPSHOT_NAME, USAGE_EXITS)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments, or exit with one line: an unknown argument is the command's error."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    runner = Runner(verbose=args.verbose)
    try:
        command = import_module(f"zmake.commands.{args.command}")
        code: int = command.run(args, runner)
        return code
    except BrokenPipeError:  # before OSError, its base: a closed reader is not an error to show
        return 1
    except (ZmakeError, OSError) as exc:  # OSError: a file zmake was told to read or write
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"zmake: {one_line(exc)}", file=sys.stderr)
        return exit_code(exc, args.command)
    except KeyboardInterrupt:
        print("zmake: interrupted", file=sys.stderr)
        return 130


def one_line(exc: ZmakeError | OSError) -> str:
    if isinstance(exc, ZmakeError):
        return str(exc)
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def exit_code(exc: ZmakeError | OSError, command: str) -> int:
    if isinstance(exc, UsageError):
        return USAGE_EXITS.get(command, exc.exit_code)
    return exc.exit_code if isinstance(exc, ZmakeError) else 1
