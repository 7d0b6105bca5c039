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

from zmake import __version__
from zmake.cli.arguments import (
    emit,
    keeping_of,
    retention_of,
    roots_of,
    selection_of,
    setting_layer,
    settings_from,
    slot_count,
)
from zmake.core.errors import UsageError, ZmakeError
from zmake.core.plan import Selection
from zmake.core.retention import SYNTAX
from zmake.settings import DEFAULT_SNAPSHOT_NAME, SETTING_VARIABLES, ensure_run_dir
from zmake.sides.runner import Runner


def cmd_capture(args: argparse.Namespace, runner: Runner) -> int:
    """Record the zfs output that generate reads (for --from-file, tests, bug reports)."""
    from zmake.core.parse import render_capture
    from zmake.sides import source_pools, zfs_argv

    settings = settings_from(args)
    pools = roots_of(args, settings, runner)
    capture = source_pools.read_live(runner, settings.source_side, pools, with_version=True)
    text = render_capture(
        capture,
        shlex.join(zfs_argv.source_list_argv(pools)),
        shlex.join(zfs_argv.source_get_argv(pools)),
    )
    emit(text, args.output)
    return 0


def cmd_generate(args: argparse.Namespace, runner: Runner) -> int:
    """Print a Makefile whose targets replicate each dataset, children first. The Makefile
    remakes itself when the pools change (a new snapshot or dataset), so it can be kept."""
    from zmake.commands.generate import Recipe, absolute, generate_text, recipe_of, write_if_changed

    if args.update:
        recipe = recipe_of(args.update)
        write_if_changed(Path(args.update), generate_text(runner, recipe))
        return 0
    recipe = Recipe(
        cli=setting_layer(args),
        config=absolute(args.config),
        env={k: v for k, v in os.environ.items() if k in SETTING_VARIABLES},
        roots=tuple(args.datasets),
        from_file=absolute(args.from_file),
        check_remote=args.check_remote,
        command=shlex.join(["zmake", *sys.argv[1:]]) if args.argv is None else args.argv,
    )
    emit(generate_text(runner, recipe, static=args.static), args.output)
    return 0


def cmd_send(args: argparse.Namespace, runner: Runner) -> int:
    """Bring one dataset's backup up to its newest snapshot (resume, full or incremental), or,
    with --to-dir, write its next stream files."""
    from zmake.reports.send import send_recorded

    settings = settings_from(args)
    run_dir = ensure_run_dir(settings.run_dir)
    route = settings.route([args.dataset])
    if settings.to_dir:
        from zmake.targets.directory.send import FileOptions, FileSender

        # Files are always compressed: zstd unless --compress names another compressor.
        compressor = "zstd" if settings.compress == "none" else settings.compress
        files = FileOptions(route, compressor=compressor, full_every=settings.full_every,
                            recovery=settings.recovery, wait_for_lock=not args.no_wait,
                            slots=slot_count(args))  # fmt: skip
        sender = FileSender(runner, files, run_dir).send
    else:
        from zmake.targets.pool.send import Sender, SendOptions

        options = SendOptions(
            route=route,
            selection=selection_of([], settings, fallback=[args.dataset]),
            force=args.force,
            progress=args.progress if args.progress is not None else sys.stderr.isatty(),
            dry_run=args.dry_run,
            wait_for_lock=not args.no_wait,
            slots=slot_count(args),
        )
        sender = Sender(runner, options, run_dir).send
    report_file = os.environ.get("ZMAKE_REPORT")
    report = send_recorded(
        sender,
        args.dataset,
        dry_run=args.dry_run,
        stamp=Path(args.stamp) if args.stamp else None,
        failures=Path(args.failures) if args.failures else None,
        report_file=Path(report_file) if report_file else None,
    )
    print(report.line(), flush=True)
    return 0


def cmd_umount(args: argparse.Namespace, runner: Runner) -> int:
    """Unmount this source's backups on the receiving side (and nothing else there). Every
    send target of a generated Makefile depends on this."""
    from zmake.commands.umount import unmount_selection

    settings = settings_from(args)
    selection = selection_of(args.pools, settings)
    if not selection.roots:
        raise UsageError("umount needs the source POOL or datasets whose backups to unmount")
    run_dir = ensure_run_dir(settings.run_dir)
    if settings.to_dir:
        print("umount: a directory target: nothing to unmount")
    else:
        for line in unmount_selection(runner, run_dir, settings, selection, slot_count(args)):
            print(line)
    if args.stamp:
        from zmake.reports.send import write_stamp

        write_stamp(Path(args.stamp), "unmounted\n")
    return 0


def cmd_snapshot(args: argparse.Namespace, runner: Runner) -> int:
    """Take one recursive, atomic snapshot of every given pool (name in UTC)."""
    from datetime import UTC, datetime

    from zmake.commands.snapshot import snapshot

    settings = settings_from(args)
    pools = roots_of(args, settings, runner)
    name = snapshot(runner, settings.source_side, pools, args.name, datetime.now(UTC))
    print(f"snapshot @{name} of {' '.join(pools)}")
    return 0


def cmd_prune(args: argparse.Namespace, runner: Runner) -> int:
    """Destroy the zmake snapshots each side's retention policy lets go (--keep N, or
    --keep-source/--keep-backup POLICY: last=N, within=30d, hourly/daily/weekly/monthly/
    yearly=N) — never a backup's base, what a partial receive needs, a held, foreign or the
    newest snapshot; --dry-run says per snapshot which rule keeps it; asks unless --yes."""
    from zmake.commands.prune import prune
    from zmake.core.errors import CommandFailed

    settings = settings_from(args)
    if args.keep_chains is not None:
        from zmake.targets.directory.send import drop_chains

        if not settings.to_dir or args.keep_chains < 1:
            raise UsageError("--keep-chains K (K >= 1) prunes a --to-dir DIR target")
        drop_chains(runner, settings.target_side, settings.to_dir, args.keep_chains,
                    assume_yes=args.yes, dry_run=args.dry_run)  # fmt: skip
        return 0
    if settings.to_dir and (args.remote_side or args.backup_only):
        raise UsageError("a --to-dir target is pruned by whole chains: --keep-chains K")
    if args.backup_only:
        from zmake.commands.prune import prune_backups

        retention = retention_of(args, settings, "backup")
        if retention is None:
            raise UsageError(f"say what to keep: --keep N or --keep-backup POLICY ({SYNTAX})")
        if not settings.dest:
            raise UsageError("prune --backup-only needs --dest DATASET: the backups to prune")
        _, problems = prune_backups(runner, settings.target_side, settings.dest, retention,
                                    run_dir=ensure_run_dir(settings.run_dir),
                                    assume_yes=args.yes, dry_run=args.dry_run)  # fmt: skip
        if problems:
            raise CommandFailed(f"{len(problems)} snapshots could not be destroyed (above)")
        return 0
    roots = roots_of(args, settings, runner)
    _, problems = prune(
        runner,
        settings.route(roots),
        roots,
        Selection(roots, settings.exclude),
        keeping_of(args, settings, backup_too=args.remote_side),
        run_dir=ensure_run_dir(settings.run_dir),
        backup_too=args.remote_side,
        assume_yes=args.yes,
        dry_run=args.dry_run,
    )
    if problems:
        raise CommandFailed(f"{len(problems)} snapshots could not be destroyed (listed above)")
    return 0


def cmd_status(args: argparse.Namespace, runner: Runner) -> int:
    """Per dataset: newest snapshot on each side, pending bytes, state (one read per side)."""
    from zmake.commands.status import print_status, status

    settings = settings_from(args)
    roots = roots_of(args, settings, runner)
    rows = status(runner, settings.route(roots), roots, Selection(roots, settings.exclude))
    print_status(rows, as_json=args.json)
    return 0


def cmd_backup(args: argparse.Namespace, runner: Runner) -> int:
    """The whole nightly job: [snapshot] → [prune] → generate → make -jN -k → summary.
    Exit 0 only when every dataset is up to date on the backup; run again to finish."""
    from zmake.commands import backup

    settings = settings_from(args)
    roots = roots_of(args, settings, runner)
    pruning = args.prune or settings.prune
    keeping = keeping_of(args, settings, backup_too=True) if pruning else None
    run_dir = ensure_run_dir(settings.run_dir)
    request = backup.BackupRequest(
        roots=roots,
        jobs=args.jobs or settings.jobs,
        take_snapshot=args.snapshot or settings.snapshot,
        snapshot_format=args.name,
        keeping=keeping,
        assume_yes=args.yes,
        check_remote=args.check_remote,
    )
    from zmake.reports.backup import Reporting
    from zmake.sides.locks import backup_lock

    reporting = Reporting(args.quiet, args.metrics, args.summary_json)
    with backup_lock(run_dir), reporting.run(runner, settings.route(roots), roots, settings):
        reporting.rows = backup.backup(runner, settings, request, run_dir,
                                       shlex.join(["zmake", *sys.argv[1:]]))  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    from zmake.cli.parser import build
    from zmake.cli.safeguards import (
        cmd_allow,
        cmd_check,
        cmd_drill,
        cmd_restore,
        cmd_serve,
        cmd_verify,
    )

    return build(
        {
            "capture": cmd_capture,
            "generate": cmd_generate,
            "send": cmd_send,
            "snapshot": cmd_snapshot,
            "prune": cmd_prune,
            "status": cmd_status,
            "backup": cmd_backup,
            "umount": cmd_umount,
            "allow": cmd_allow,
            "check": cmd_check,
            "verify": cmd_verify,
            "restore": cmd_restore,
            "drill": cmd_drill,
            "serve": cmd_serve,
        },
        __version__,
        DEFAULT_SNAPSHOT_NAME,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runner = Runner(verbose=args.verbose)
    handler: Callable[[argparse.Namespace, Runner], int] = args.func
    try:
        return handler(args, runner)
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
