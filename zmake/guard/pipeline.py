"""What `zmake serve` (the forced command of a restricted ssh key) lets through.

sshd hands serve the client's command in SSH_ORIGINAL_COMMAND. It is parsed as an argv pipeline
(never given to a shell) and run only if every stage is a command zmake itself issues for this
key's role, on this key's dataset tree — checked by rebuilding it with the very builders the
client used (sides/zfs_argv.py): a command whose rebuild differs, by one option, is refused.

- `--receive-into DATASET` (the backup side of a push): read the state of datasets under it;
  receive into them (`-o` only as zmake sets them; a mountpoint stripped, or refused outside
  `--mountpoint-prefix`); create and unmark zmake's placeholders; unmount. Append-only: no
  `-F` but over a placeholder serve itself checks is one, no rollback, no destroy, no
  `recv -A` — `--allow-rollback` and `--allow-prune` widen that.
- `--send-from DATASET` (the source side of a pull): read the state under it; send its
  snapshots — raw (`-w`) whenever the dataset is encrypted, which serve checks itself; resume
  tokens only for a snapshot under it and raw where they must be; zmake's bookmarks (create,
  and destroy zmake's own); snapshots. No destroy of anything else unless `--allow-prune`.

Anything else is refused with one line on stderr and a syslog (auth) entry, and nothing runs."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zmake.core.errors import ParseError
from zmake.core.model import Argv, is_within, parent_of
from zmake.guard.destroy import check_bookmark, check_destroy_bookmark, check_destroy_snapshots
from zmake.guard.probe import REFUSED, Probe, Refusal, require
from zmake.sides import zfs_argv
from zmake.sides.zfs_argv import COMPRESSORS, ESTIMATE

__all__ = ["REFUSED", "Policy", "Probe", "Refusal", "check", "parse"]
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ZFS_PATHS = ("zfs", *zfs_argv.ZFS_ELSEWHERE)  # as the client may name it (state.run)
# Token booleans zmake's sends produce; any other (e.g. `savedok`) is refused.
TOKEN_FLAGS = frozenset({"embedok", "compressok", "largeblockok", "rawok"})
# Every pair a token of zmake's sends holds; libzfs reads flags by name, whatever their type.
TOKEN_PAIRS = TOKEN_FLAGS | {"object", "offset", "bytes", "toguid", "toname", "fromguid"}


@dataclass(frozen=True)
class Policy:
    role: str  # "receive" or "send"
    root: str
    allow_prune: bool = False
    allow_rollback: bool = False
    mountpoint_prefix: str | None = None
    target: str | None = None  # send role: the label of this key's bookmarks


def parse(command: str) -> list[Argv]:
    """The client's pipeline: shell words, stages split at unquoted `|` (ZFS names never
    hold one), nothing else of the shell (no `;`, `&`, `$(`, redirection…)."""
    if not command.strip():
        raise Refusal("an empty command (an interactive login?)")
    if CONTROL.search(command):
        raise Refusal("a control character in the command")
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars="|;&<>()")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError as exc:
        raise Refusal(f"unparsable: {exc}") from None
    stages: list[Argv] = [[]]
    for token in tokens:
        if token == "|":
            stages.append([])
        elif token and set(token) <= set("|;&<>()"):
            raise Refusal(f"shell syntax {token!r}")
        else:
            stages[-1].append(token)
    if any(not stage for stage in stages):
        raise Refusal("an empty stage")
    return stages


def normalized(argv: Argv) -> Argv:
    """zfs is whichever zfs this side has; the client may have named it by its path."""
    if argv and argv[0] in ZFS_PATHS:
        return ["zfs", *argv[1:]]
    return argv


def check(policy: Policy, stages: Sequence[Argv], probe: Probe) -> list[Argv]:
    """The stages to run, or Refusal. (May rewrite one: a mountpoint is stripped.)"""
    stages = [normalized(stage) for stage in stages]
    if policy.role == "receive":
        return check_receive(policy, stages, probe)
    return check_send(policy, stages, probe)


def within(policy: Policy, name: str) -> bool:
    """In the key's tree — by ZFS's rules, not a string prefix: no `.`/`..`/empty component."""
    dataset = re.split(r"[@#]", name, maxsplit=1)[0]
    parts = dataset.split("/")
    return all(p not in ("", ".", "..") for p in parts) and is_within(dataset, policy.root)


def check_receive(policy: Policy, stages: list[Argv], probe: Probe) -> list[Argv]:
    if len(stages) == 2:
        require(stages[0] in [d for _, d in COMPRESSORS.values()], "not a decompressor")
        return [stages[0], check_recv(policy, stages[1], probe)]
    require(len(stages) == 1, "too many stages")
    argv = stages[0]
    if argv[:2] == ["zfs", "recv"]:
        if argv[2:3] == ["-A"]:
            require(policy.allow_rollback, "zfs recv -A needs --allow-rollback")
            require(argv == zfs_argv.abort_resume_argv(argv[-1]) and within(policy, argv[-1]),
                    "zfs recv -A of a dataset outside the tree")  # fmt: skip
            return [argv]
        return [check_recv(policy, argv, probe)]
    last = argv[-1] if argv else ""
    readable = (
        argv == zfs_argv.remote_dataset_argv(last)
        or argv == zfs_argv.remote_tree_argv(last)
        or argv == zfs_argv.prune_list_argv(last)
        or argv == zfs_argv.mounts_argv(last)
    )
    if readable:
        require(within(policy, last), f"{last} is outside {policy.root}")
        return [argv]
    prefix = zfs_argv.datasets_argv([])
    if argv[: len(prefix)] == prefix and len(argv) > len(prefix):
        names = argv[len(prefix) :]
        require(argv == zfs_argv.datasets_argv(names), "not zmake's listing")
        for name in names:  # the parent of the tree: only whether it exists
            require(within(policy, name) or name == parent_of(policy.root), f"{name} is outside")
        return [argv]
    names = listed(argv, zfs_argv.backups_argv)  # a batch's backups
    if names:
        require(all(within(policy, name) for name in names), f"{names} outside {policy.root}")
        return [argv]
    for build in (zfs_argv.unmount_argv, zfs_argv.create_placeholder_argv,
                  zfs_argv.unmark_placeholder_argv):  # fmt: skip
        if argv == build(last):
            require(within(policy, last) and "@" not in last, f"{last} is outside")
            return [argv]
    if argv == zfs_argv.rollback_argv(last):
        require(policy.allow_rollback, "zfs rollback needs --allow-rollback")
        require(within(policy, last), f"{last} is outside")
        return [argv]
    return [check_destroy(policy, argv, probe)]


def listed(argv: Argv, build: Callable[[Sequence[str]], Argv]) -> list[str]:
    """The names of a listing exactly as `build` makes one (none: not such a listing)."""
    prefix = build([])
    names = argv[len(prefix) :]
    return names if argv[: len(prefix)] == prefix and names and argv == build(names) else []


def check_recv(policy: Policy, argv: Argv, probe: Probe) -> Argv:
    """A receive exactly as zmake builds one (zfs_argv.receive_argv), into the tree."""
    require(argv[:2] == ["zfs", "recv"] and len(argv) > 2, "not a zfs recv")
    target = argv[-1]
    pairs = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-o"]
    require(all("=" in pair for pair in pairs), "an -o without a property=value")
    options = dict(pair.split("=", 1) for pair in pairs)
    force = "-F" in argv
    mountpoint = options.get("mountpoint")
    rebuilt = zfs_argv.receive_argv(
        target,
        force=force,
        filesystem="canmount" in options,
        mountpoint=mountpoint,
        readonly="readonly" in options,
    )
    require(argv == rebuilt, "not a receive as zmake makes one")
    require("readonly" in options, "a receive without readonly=on: backups here are read-only")
    require(within(policy, target) and "@" not in target and "#" not in target,
            f"{target} is outside {policy.root}")  # fmt: skip
    if force:
        require(probe.placeholder(target), f"-F over {target}, which is not a placeholder")
    if mountpoint is not None and mountpoint not in ("none", "legacy"):
        prefix = policy.mountpoint_prefix
        if prefix is None:  # stripped: the backup inherits its mountpoint
            stripped = zfs_argv.receive_argv(target, force=force, filesystem=True,
                                             readonly="readonly" in options)  # fmt: skip
            return without_stream_mountpoint(stripped)
        root = prefix.rstrip("/")
        inside = os.path.normpath(mountpoint) == mountpoint and mountpoint != root
        require(inside and is_within(mountpoint, root),
                f"mountpoint {mountpoint} is outside {prefix}")  # fmt: skip
    return without_stream_mountpoint(argv) if mountpoint is None else argv


def without_stream_mountpoint(argv: Argv) -> Argv:
    """serve checks the command, not the stream: a crafted stream may carry properties of its
    own (`zfs send -p`). Of a filesystem's, its mountpoint is dropped (`-x`): inherited."""
    if "canmount=noauto" not in argv:
        return argv  # a volume
    return [*argv[:-1], "-x", "mountpoint", argv[-1]]


def check_destroy(policy: Policy, argv: Argv, probe: Probe) -> Argv:
    """`zfs destroy DATASET@a,b` (prune) or, for a pull key, one of its own bookmarks."""
    require(argv[:2] == ["zfs", "destroy"] and len(argv) == 3, "not a command zmake issues")
    target = argv[2]
    require(within(policy, target), f"{target} is outside {policy.root}")
    if policy.role == "send" and "#" in target and "@" not in target:
        return check_destroy_bookmark(argv, policy.target, probe)
    require("@" in target, "zfs destroy of anything but snapshots")
    return check_destroy_snapshots(argv, policy.role, policy.allow_prune, policy.target, probe)


def check_send(policy: Policy, stages: list[Argv], probe: Probe) -> list[Argv]:
    if len(stages) == 2:
        require(stages[1] in [c for c, _ in COMPRESSORS.values()], "not a compressor")
        return [check_stream(policy, stages[0], probe), stages[1]]
    require(len(stages) == 1, "too many stages")
    argv = stages[0]
    if argv[:2] == ["zfs", "send"]:
        return [check_stream(policy, argv, probe)]
    last = argv[-1] if argv else ""
    for build in (zfs_argv.source_list_argv, zfs_argv.source_get_argv, zfs_argv.names_argv,
                  zfs_argv.local_datasets_argv):  # fmt: skip
        names = listed(argv, build)
        if names:
            require(all(within(policy, n) for n in names), f"{names} outside {policy.root}")
            return [argv]
    if argv in (zfs_argv.local_dataset_argv(last), zfs_argv.prune_list_argv(last)):
        require(within(policy, last), f"{last} is outside {policy.root}")
        return [argv]
    if argv[:2] == ["zfs", "bookmark"] and len(argv) == 4:
        return [check_bookmark(argv, policy.target, within(policy, argv[2]), probe)]
    if argv[:3] == ["zfs", "snapshot", "-r"]:
        names = argv[3:]
        short = names[0].partition("@")[2] if names else ""
        require(bool(short) and argv == zfs_argv.snapshot_argv(
            [n.partition("@")[0] for n in names], short), "not zmake's snapshot")  # fmt: skip
        require(all(within(policy, n) for n in names), "a snapshot outside the tree")
        return [argv]
    return [check_destroy(policy, argv, probe)]


def check_stream(policy: Policy, argv: Argv, probe: Probe) -> Argv:
    """`zfs send` as zmake builds one (stream_argv, resume_argv, or a -nvP dry run of
    either): of a snapshot in the tree, raw whenever its dataset is encrypted."""
    dry = argv[2:5] == ESTIMATE
    body = ["zfs", "send", *argv[5:]] if dry else argv
    if body[2:3] == ["-t"]:
        require(body == zfs_argv.resume_argv(body[-1]), "not zmake's resume")
        check_token(policy, body[-1], probe)
        return argv
    raw = body[2:3] == ["-w"]
    snapshot = body[-1]
    base = body[-2] if len(body) >= 5 and body[-3] in ("-i", "-I") else None
    between = len(body) >= 5 and body[-3] == "-I"
    require(body == zfs_argv.stream_argv(snapshot, raw=raw, base=base, between=between),
            "not zmake's send")  # fmt: skip
    dataset = snapshot.partition("@")[0]
    require(within(policy, snapshot) and "@" in snapshot, f"{snapshot} is outside")
    if base is not None:
        require(re.split(r"[@#]", base)[0] == dataset, "an incremental from another dataset")
    if not dry:
        require(raw or not probe.facts(dataset).encrypted,
                f"{dataset} is encrypted: raw sends only")  # fmt: skip
    return argv


def check_token(policy: Policy, token: str, probe: Probe) -> None:
    """`zfs send -t` sends the snapshot whose guid is the token's `toguid`, found anywhere in
    the pool `toname` names (OpenZFS #14153; `toname` need not even exist), so the name proves
    nothing: ZFS's own dry run must name `toname` as what it sends, `toname` must be a snapshot
    in the tree whose guid is `toguid`, `fromguid` one of the same dataset's snapshots or
    bookmarks, and the token raw whenever that dataset is encrypted."""
    from zmake.core.token import decode

    try:
        decoded = decode(token)
    except ParseError as exc:
        raise Refusal(str(exc)) from None
    dataset, at, _ = decoded.toname.partition("@")
    require(bool(at) and within(policy, decoded.toname),
            f"a token for {decoded.toname}, outside the tree")  # fmt: skip
    unknown = decoded.names - TOKEN_PAIRS
    require(not unknown and decoded.flags <= TOKEN_FLAGS, f"a token with {sorted(unknown)}")
    sent = probe.sent_by(token)
    require(sent == decoded.toname, f"a token for {decoded.toname} that sends {sent}")
    facts = probe.facts(dataset)
    snapshot = facts.snapshot(decoded.toname)
    require(snapshot is not None and snapshot.guid == decoded.toguid,
            f"a token whose guid is not {decoded.toname}'s")  # fmt: skip
    if decoded.fromguid:
        bases = {point.guid for point in (*facts.snapshots, *facts.bookmarks)}
        require(decoded.fromguid in bases, f"a token from a guid {dataset} does not hold")
    require(decoded.raw or not facts.encrypted, f"a non-raw token of the encrypted {dataset}")
