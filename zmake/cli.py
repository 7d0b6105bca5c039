"""Command line: parse arguments, call the workflows, map errors to exit codes. Nothing else.

make starts a new `zmake send` for every dataset, so modules only some commands need are
imported inside those commands."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from zmake import __version__, source
from zmake.commands import COMPRESS_CHOICES, source_get_argv, source_list_argv
from zmake.config import DEFAULT_SNAPSHOT_NAME, Settings, ensure_run_dir, resolve
from zmake.errors import UsageError, ZmakeError
from zmake.model import pool_of
from zmake.parse import render_capture
from zmake.runner import Runner
from zmake.send import (
    Sender,
    SendOptions,
    human,
    read_remote_tree,
    unmount_backups,
    write_stamp,
)
from zmake.slots import jobs_from_makeflags

EXAMPLES = """\
examples:
  zmake generate tank --remote backup.example.org > Makefile && make -j8
  zmake generate --from-file sample-pools/home.zcap --remote nas | make -n -f -
  zmake send 'tank/my data' --remote nas --progress
  zmake capture tank > tank.zcap
  zmake backup --yes            # snapshot, prune, generate, make -j8 (see zmake backup -h)

exit codes: 0 ok, 1 unexpected error, 2 usage, 3 unreadable zfs output, 4 ZFS unavailable,
  5 zfs command failed, 6 remote unreachable, 7 receiving pool missing, 8 transfer failed
  (run again to resume), 9 refused without --force/--yes, 10 lock busy, 130 interrupted.
"""


def add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where to send (also ZMAKE_* variables, config file)")
    group.add_argument("-c", "--config", help="TOML config file; the command line wins")
    group.add_argument(
        "--remote", help="[USER@]HOST to receive on (absent: a pool on this machine)"
    )
    group.add_argument("--ssh", help="ssh command prefix, e.g. 'ssh -p 2222 -F cfg' (default: ssh)")
    group.add_argument("--dest", help="receiving pool, as in zfs recv -d POOL (default: source's)")
    group.add_argument(
        "--compress", choices=COMPRESS_CHOICES, help="compress the stream in transit"
    )
    group.add_argument("--run-dir", help="private directory for locks and reports")


def settings_from(args: argparse.Namespace) -> Settings:
    cli = {
        key: getattr(args, key, None)
        for key in ("remote", "ssh", "dest", "compress", "run_dir", "exclude", "pools")
    }
    if cli.get("run_dir") is not None:
        cli["run_dir"] = str(cli["run_dir"])
    return resolve(cli, getattr(args, "config", None))


def cmd_capture(args: argparse.Namespace, runner: Runner) -> int:
    """Record the zfs output that generate reads (for --from-file, tests, bug reports)."""
    pools = tuple(args.pools) or source.imported_pools(runner)
    capture = source.read_live(runner, pools, with_version=True)
    text = render_capture(
        capture, shlex.join(source_list_argv(pools)), shlex.join(source_get_argv(pools))
    )
    emit(text, args.output)
    return 0


def cmd_generate(args: argparse.Namespace, runner: Runner) -> int:
    """Print a Makefile whose targets replicate each dataset, children first."""
    settings = settings_from(args)
    roots = list(args.datasets) or list(settings.pools)
    if args.from_file:
        capture = source.read_capture(args.from_file)
        origin = f"capture {args.from_file} (zfs {capture.zfs_version})"
    else:
        pools = tuple(dict.fromkeys(pool_of(r) for r in roots)) or source.imported_pools(runner)
        capture = source.read_live(runner, pools)
        origin = f"zfs on this machine, pools {' '.join(pools)}"
    remote_state = None
    if args.check_remote:
        pools_seen = {pool_of(r) for r in roots or capture.pools}
        remote_state = {}
        for pool in sorted(pools_seen):
            remote_state.update(read_remote_tree(runner, settings.target(pool)))
    from zmake.generate import generate  # jinja2: only generate pays for it

    text = generate(
        capture,
        roots,
        settings,
        command=shlex.join(["zmake", *sys.argv[1:]]) if args.argv is None else args.argv,
        source=origin,
        remote_state=remote_state,
    )
    emit(text, args.output)
    return 0


def cmd_send(args: argparse.Namespace, runner: Runner) -> int:
    """Bring one dataset's backup up to its newest snapshot (resume, full or incremental)."""
    settings = settings_from(args)
    target = settings.target(pool_of(args.dataset))
    run_dir = ensure_run_dir(settings.run_dir)
    report_file = os.environ.get("ZMAKE_REPORT")
    options = SendOptions(
        slots=slot_count(args),
        stamp=Path(args.stamp) if args.stamp else None,
        target=target,
        compress=settings.compress,
        force=args.force,
        progress=args.progress if args.progress is not None else sys.stderr.isatty(),
        dry_run=args.dry_run,
        wait_for_lock=not args.no_wait,
        run_dir=run_dir,
        report_file=Path(report_file) if report_file else None,
    )
    report = Sender(runner, options).send(args.dataset, run_dir)
    print(report.line(), flush=True)
    return 0


def slot_count(args: argparse.Namespace) -> int:
    if args.slots is not None:
        return max(0, int(args.slots))
    return jobs_from_makeflags(os.environ.get("MAKEFLAGS")) or 0


def cmd_umount(args: argparse.Namespace, runner: Runner) -> int:
    """Unmount the backup of each source POOL: every dataset of the receiving pool (--dest,
    default the same name). Every send target of a generated Makefile depends on this."""
    settings = settings_from(args)
    run_dir = ensure_run_dir(settings.run_dir)
    targets = [settings.target(pool) for pool in args.pools]  # refuses a local source pool
    for line in unmount_backups(runner, run_dir, targets, slot_count(args)):
        print(line)
    if args.stamp:
        write_stamp(Path(args.stamp), "unmounted\n")
    return 0


def source_pools(args: argparse.Namespace, settings: Settings, runner: Runner) -> tuple[str, ...]:
    roots = list(args.pools) or list(settings.pools)
    return tuple(roots) if roots else source.imported_pools(runner)


def cmd_snapshot(args: argparse.Namespace, runner: Runner) -> int:
    """Take one recursive, atomic snapshot of every given pool (name in UTC)."""
    from datetime import UTC, datetime

    from zmake import backup

    settings = settings_from(args)
    pools = source_pools(args, settings, runner)
    name = backup.snapshot(runner, pools, args.name, datetime.now(UTC))
    print(f"snapshot @{name} of {' '.join(pools)}")
    return 0


def cmd_prune(args: argparse.Namespace, runner: Runner) -> int:
    """Destroy zmake-owned snapshots beyond the newest N (never the backup's base, never a
    held or foreign snapshot); lists them and asks first unless --yes."""
    from zmake import backup

    settings = settings_from(args)
    pools = source_pools(args, settings, runner)
    keep = args.keep if args.keep is not None else settings.keep
    if keep is None or keep < 1:
        raise UsageError("prune needs --keep N (N >= 1)")
    backup.prune(
        runner,
        settings,
        pools,
        keep,
        remote_too=args.remote_side,
        assume_yes=args.yes,
        dry_run=args.dry_run,
    )
    return 0


def cmd_status(args: argparse.Namespace, runner: Runner) -> int:
    """Per dataset: newest snapshot on each side, pending bytes, state (one read per side)."""
    from zmake import backup

    settings = settings_from(args)
    pools = source_pools(args, settings, runner)
    rows = backup.status(runner, settings, pools)
    if args.json:
        import json

        print(json.dumps({"version": 1, "datasets": rows}, indent=2))
        return 0
    width = max([len("dataset"), *(len(str(r["dataset"])) for r in rows)])
    print(f"{'dataset':<{width}}  {'state':<17}  {'local':<24}  {'remote':<24}  pending")
    for r in rows:
        print(
            f"{r['dataset']!s:<{width}}  {r['state']!s:<17}  {r['newest_local'] or '-'!s:<24}"
            f"  {r['newest_remote'] or '-'!s:<24}  {human(float(str(r['pending_bytes'])))}"
        )
    return 0


def cmd_backup(args: argparse.Namespace, runner: Runner) -> int:
    """The whole nightly job: [snapshot] → [prune] → generate → make -jN -k → summary.
    Exit 0 only when every dataset is up to date on the backup; run again to finish."""
    from zmake import backup

    settings = settings_from(args)
    pools = source_pools(args, settings, runner)
    keep = args.keep if args.keep is not None else settings.keep
    if args.prune and keep is None:
        raise UsageError("--prune needs --keep N")
    run_dir = ensure_run_dir(settings.run_dir)
    request = backup.BackupRequest(
        roots=pools,
        jobs=args.jobs or settings.jobs,
        take_snapshot=args.snapshot or settings.snapshot,
        snapshot_format=args.name,
        keep=keep if (args.prune or settings.prune) else None,
        assume_yes=args.yes,
        check_remote=args.check_remote,
    )
    with backup.backup_lock(run_dir):
        backup.backup(runner, settings, request, run_dir, shlex.join(["zmake", *sys.argv[1:]]))
    return 0


def emit(text: str, output: str | None) -> None:
    """Write to stdout, or atomically to a file (temp file + rename)."""
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    import tempfile

    path = Path(output)
    fd, temp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zmake",
        description="Parallel, restartable ZFS replication: generate a Makefile, run make -jN.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"zmake {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every command run")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: Callable[..., int], example: str) -> argparse.ArgumentParser:
        doc = (func.__doc__ or "").strip()
        sub = commands.add_parser(
            name,
            help=doc,
            description=doc,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(func=func)
        return sub

    capture = command("capture", cmd_capture, "zmake capture tank > tank.zcap")
    capture.add_argument("pools", nargs="*", metavar="POOL", help="default: every imported pool")
    capture.add_argument("-o", "--output", help="write to FILE atomically instead of stdout")

    gen = command(
        "generate", cmd_generate, "zmake generate tank --remote nas > Makefile && make -j8"
    )
    gen.add_argument("datasets", nargs="*", metavar="POOL|DATASET", help="what to replicate")
    gen.add_argument("--from-file", metavar="CAPTURE", help="plan from a zmake capture file")
    gen.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip datasets whose full name matches (repeatable)",
    )
    gen.add_argument(
        "--check-remote",
        action="store_true",
        help="ask the backup (one connection) what it has, for size estimates",
    )
    gen.add_argument("-o", "--output", help="write to FILE atomically instead of stdout")
    gen.set_defaults(argv=None)
    add_target_options(gen)

    send = command("send", cmd_send, "zmake send 'tank/my data' --remote nas --progress")
    send.add_argument("dataset", metavar="DATASET")
    send.add_argument(
        "--force",
        action="store_true",
        help="roll back a diverged backup / abort a stale partial receive",
    )
    send.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pv progress line (default: when stderr is a terminal)",
    )
    send.add_argument("-n", "--dry-run", action="store_true", help="print the pipeline only")
    send.add_argument("--stamp", help="file to write when up to date (make's target)")
    send.add_argument("--slots", type=int, help="ssh masters to share (default: make's -jN)")
    send.add_argument(
        "--no-wait",
        action="store_true",
        help="fail instead of waiting when another send holds the lock",
    )
    add_target_options(send)

    snap = command("snapshot", cmd_snapshot, "zmake snapshot tank --name 'zmake-%Y%m%d'")
    snap.add_argument("pools", nargs="*", metavar="POOL", help="default: config pools, or all")
    snap.add_argument(
        "--name", default=DEFAULT_SNAPSHOT_NAME, help="strftime format, UTC (default %(default)s)"
    )
    add_target_options(snap)

    prn = command("prune", cmd_prune, "zmake prune tank --keep 7 --remote-side --yes")
    prn.add_argument("pools", nargs="*", metavar="POOL", help="default: config pools, or all")
    prn.add_argument("--keep", type=int, help="zmake-owned snapshots to keep per dataset")
    prn.add_argument(
        "--remote-side", action="store_true", help="prune the backup too, with the same rules"
    )
    prn.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    prn.add_argument("--dry-run", action="store_true", help="list only")
    add_target_options(prn)

    stat = command("status", cmd_status, "zmake status tank --remote nas --json")
    stat.add_argument("pools", nargs="*", metavar="POOL|DATASET")
    stat.add_argument(
        "--json", action="store_true", help="machine-readable (docs/status.schema.json)"
    )
    add_target_options(stat)

    bak = command("backup", cmd_backup, "zmake backup tank --snapshot --prune --keep 7 -j 8 --yes")
    bak.add_argument("pools", nargs="*", metavar="POOL", help="default: config pools, or all")
    bak.add_argument("--snapshot", action="store_true", help="take a snapshot first")
    bak.add_argument("--name", default=DEFAULT_SNAPSHOT_NAME, help="snapshot name format")
    bak.add_argument("--prune", action="store_true", help="prune both sides before sending")
    bak.add_argument("--keep", type=int, help="with --prune: snapshots to keep")
    bak.add_argument("-j", "--jobs", type=int, help="parallel transfers (default 4)")
    bak.add_argument("--yes", action="store_true", help="do not ask before destroying")
    bak.add_argument("--check-remote", action="store_true", help="estimate from the backup's state")
    add_target_options(bak)

    unmount = command("umount", cmd_umount, "zmake umount tank --remote nas --dest backup")
    unmount.add_argument("pools", nargs="+", metavar="POOL", help="source pool(s)")
    unmount.add_argument("--stamp", help="file to write when done (make's target)")
    unmount.add_argument("--slots", type=int, help="ssh masters to share (default: make's -jN)")
    add_target_options(unmount)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runner = Runner(verbose=args.verbose)
    try:
        result: int = args.func(args, runner)
        return result
    except ZmakeError as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"zmake: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("zmake: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
