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
from zmake.config import (
    DEFAULT_SNAPSHOT_NAME,
    SETTING_VARIABLES,
    Settings,
    ensure_run_dir,
    resolve,
)
from zmake.errors import UsageError, ZmakeError
from zmake.plan import Selection
from zmake.runner import Runner
from zmake.slots import jobs_from_makeflags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SETTING_KEYS = ("remote", "source", "ssh", "dest", "compress", "readonly", "run_dir", "exclude")


def setting_layer(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's layer of the settings (None: not given), paths made absolute."""
    cli = {key: getattr(args, key, None) for key in SETTING_KEYS}
    if cli.get("run_dir") is not None:
        cli["run_dir"] = os.path.abspath(str(cli["run_dir"]))
    return cli


def settings_from(args: argparse.Namespace) -> Settings:
    return resolve(setting_layer(args), getattr(args, "config", None))


def selection_of(
    given: Sequence[str], settings: Settings, fallback: Sequence[str] = ()
) -> Selection:
    """What the run backs up: the roots given, else as the generated Makefile exports it
    (ZMAKE_SELECTION), else the config's pools or `fallback`."""
    if given:
        return Selection(tuple(given), settings.exclude)
    exported = os.environ.get("ZMAKE_SELECTION")
    if exported:
        import json

        try:
            data = json.loads(exported)
            return Selection(tuple(data["roots"]), tuple(data["exclude"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"ZMAKE_SELECTION is not what zmake exports: {exc}") from None
    return Selection(tuple(settings.pools or fallback), settings.exclude)


def roots_of(args: argparse.Namespace, settings: Settings, runner: Runner) -> tuple[str, ...]:
    roots = list(getattr(args, "pools", None) or settings.pools)
    if roots:
        return tuple(roots)
    from zmake import source

    return source.imported_pools(runner, settings.source_side)


def cmd_capture(args: argparse.Namespace, runner: Runner) -> int:
    """Record the zfs output that generate reads (for --from-file, tests, bug reports)."""
    from zmake import commands, source
    from zmake.parse import render_capture

    settings = settings_from(args)
    pools = roots_of(args, settings, runner)
    capture = source.read_live(runner, settings.source_side, pools, with_version=True)
    text = render_capture(
        capture,
        shlex.join(commands.source_list_argv(pools)),
        shlex.join(commands.source_get_argv(pools)),
    )
    emit(text, args.output)
    return 0


def cmd_generate(args: argparse.Namespace, runner: Runner) -> int:
    """Print a Makefile whose targets replicate each dataset, children first. The Makefile
    remakes itself when the pools change (a new snapshot or dataset), so it can be kept."""
    from zmake.generate import Recipe, absolute, generate_text, recipe_of, write_if_changed

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
    """Bring one dataset's backup up to its newest snapshot (resume, full or incremental)."""
    from zmake.send import SendOptions, send_recorded

    settings = settings_from(args)
    options = SendOptions(
        route=settings.route([args.dataset]),
        selection=selection_of([], settings, fallback=[args.dataset]),
        force=args.force,
        progress=args.progress if args.progress is not None else sys.stderr.isatty(),
        dry_run=args.dry_run,
        wait_for_lock=not args.no_wait,
        slots=slot_count(args),
    )  # fmt: skip
    report_file = os.environ.get("ZMAKE_REPORT")
    report = send_recorded(
        runner,
        options,
        ensure_run_dir(settings.run_dir),
        args.dataset,
        stamp=Path(args.stamp) if args.stamp else None,
        failures=Path(args.failures) if args.failures else None,
        report_file=Path(report_file) if report_file else None,
    )
    print(report.line(), flush=True)
    return 0


def slot_count(args: argparse.Namespace) -> int:
    if args.slots is not None:
        return max(0, int(args.slots))
    return jobs_from_makeflags(os.environ.get("MAKEFLAGS")) or 0


def cmd_umount(args: argparse.Namespace, runner: Runner) -> int:
    """Unmount this source's backups on the receiving side (and nothing else there). Every
    send target of a generated Makefile depends on this."""
    from zmake.umount import unmount_selection

    settings = settings_from(args)
    selection = selection_of(args.pools, settings)
    if not selection.roots:
        raise UsageError("umount needs the source POOL or datasets whose backups to unmount")
    run_dir = ensure_run_dir(settings.run_dir)
    for line in unmount_selection(runner, run_dir, settings, selection, slot_count(args)):
        print(line)
    if args.stamp:
        from zmake.report import write_stamp

        write_stamp(Path(args.stamp), "unmounted\n")
    return 0


def cmd_snapshot(args: argparse.Namespace, runner: Runner) -> int:
    """Take one recursive, atomic snapshot of every given pool (name in UTC)."""
    from datetime import UTC, datetime

    from zmake.snapshot import snapshot

    settings = settings_from(args)
    pools = roots_of(args, settings, runner)
    name = snapshot(runner, settings.source_side, pools, args.name, datetime.now(UTC))
    print(f"snapshot @{name} of {' '.join(pools)}")
    return 0


def cmd_prune(args: argparse.Namespace, runner: Runner) -> int:
    """Destroy zmake-owned snapshots beyond the newest N (never a backup's base, a snapshot a
    partial receive needs, a held or a foreign one); lists them and asks first unless --yes."""
    from zmake.errors import CommandFailed
    from zmake.prune import prune

    settings = settings_from(args)
    roots = roots_of(args, settings, runner)
    keep = args.keep if args.keep is not None else settings.keep
    if keep is None or keep < 1:
        raise UsageError("prune needs --keep N (N >= 1)")
    _, problems = prune(
        runner,
        settings.route(roots),
        roots,
        Selection(roots, settings.exclude),
        keep,
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
    from zmake.status import print_status, status

    settings = settings_from(args)
    roots = roots_of(args, settings, runner)
    rows = status(runner, settings.route(roots), roots, Selection(roots, settings.exclude))
    print_status(rows, as_json=args.json)
    return 0


def cmd_backup(args: argparse.Namespace, runner: Runner) -> int:
    """The whole nightly job: [snapshot] → [prune] → generate → make -jN -k → summary.
    Exit 0 only when every dataset is up to date on the backup; run again to finish."""
    from zmake import backup

    settings = settings_from(args)
    roots = roots_of(args, settings, runner)
    keep = args.keep if args.keep is not None else settings.keep
    if args.prune and keep is None:
        raise UsageError("--prune needs --keep N")
    run_dir = ensure_run_dir(settings.run_dir)
    request = backup.BackupRequest(
        roots=roots,
        jobs=args.jobs or settings.jobs,
        take_snapshot=args.snapshot or settings.snapshot,
        snapshot_format=args.name,
        keep=keep if (args.prune or settings.prune) else None,
        assume_yes=args.yes,
        check_remote=args.check_remote,
    )
    from zmake.locks import backup_lock

    with backup_lock(run_dir):
        backup.backup(runner, settings, request, run_dir, shlex.join(["zmake", *sys.argv[1:]]))
    return 0


def cmd_allow(args: argparse.Namespace, runner: Runner) -> int:
    """Print the least-privilege setup of one side for an unprivileged USER: the `zfs allow`
    commands (one per line, runnable as root; --apply runs them) and the restricted
    authorized_keys line; --check verifies an existing setup, from the user's side."""
    from zmake import allow

    if args.check:
        return allow_check(args, runner)
    from zmake.generate import zmake_command
    from zmake.sides import Side
    from zmake.state import read_datasets

    exists = False
    if args.role == "receive":
        try:
            exists = bool(read_datasets(runner, Side(), [args.dataset]))
        except ZmakeError:
            exists = False  # printed for another machine
    setup = allow.setup(
        args.role,
        args.user,
        args.dataset,
        prune=args.prune,
        rollback=args.rollback,
        zmake=zmake_command(),
        dest_exists=exists,
    )
    print(f"# zmake allow --role {args.role} --user {args.user} {args.dataset}: as root, on the "
          f"{'backup host' if args.role == 'receive' else 'source host'}:")  # fmt: skip
    for argv in setup.commands:
        print(shlex.join(argv))
    if setup.key_line is not None:
        whose = "source's" if args.role == "receive" else "backup host's"
        print(f"# in ~{args.user}/.ssh/authorized_keys, the {whose} key, restricted to zmake:")
        print(f"# {setup.key_line}")
    for note in setup.notes:
        print(f"# note: {note}")
    if args.apply:
        from zmake.sides import Side
        from zmake.state import control

        for argv in setup.commands:
            control(runner, Side(), argv)
        print(f"# applied: {len(setup.commands)} commands")
    return 0


def allow_check(args: argparse.Namespace, runner: Runner) -> int:
    import grp
    import pwd

    from zmake import allow
    from zmake.errors import PermissionDenied
    from zmake.sides import Side
    from zmake.state import control

    account = pwd.getpwnam(args.user)
    groups = [grp.getgrgid(g).gr_name for g in os.getgrouplist(args.user, account.pw_gid)]
    text = control(runner, Side(), ["zfs", "allow", args.dataset])
    have = allow.effective(text, args.dataset, args.user, groups)
    need = allow.role_permissions(args.role, prune=args.prune, rollback=args.rollback)
    missing = [perm for perm in need if perm not in have]
    if missing:
        raise PermissionDenied(
            f"{args.user} lacks `{','.join(missing)}` on {args.dataset}: "
            f"zfs allow -u {args.user} {','.join(missing)} {args.dataset}"
        )
    print(f"{args.user} holds every permission a {args.role} needs on {args.dataset}: "
          f"{','.join(need)}")  # fmt: skip
    return 0


def emit(text: str, output: str | None) -> None:
    """Write to stdout, or atomically to a file (temp file + rename)."""
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from zmake.generate import write_if_changed

    write_if_changed(Path(output), text)


def build_parser() -> argparse.ArgumentParser:
    from zmake.parser import build

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
