"""Attacks on `zmake serve` with real OpenZFS, each with its control (issue 23): first the
attack works against ZFS itself — as root, or as the very unprivileged user the key logs in as,
with no zmake in the way —, then the same bytes through the key, over a real sshd and the
forced command `zmake allow` printed, are refused (exit 9, one line, a syslog entry, nothing on
stdout), then nothing changed (every snapshot and bookmark GUID of the pool, every dataset's
mountpoint/canmount/readonly, the same; no plaintext byte out). The legitimate flow each check
sits on still passes through the same key.

One pair of pools and one tree serve the module; the keys hold one ssh connection each (a
ControlMaster: sshd runs the forced command for every session of it). ORDER MATTERS where a
test says so: the -F test leaves the placeholder B received-into (its child C intact), which
the prune test then prunes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.realzfs.conftest import Pools, fresh_pools, pipe
from tests.realzfs.support import (
    USERS_DIR,
    USERS_HOST,
    AsUser,
    Identity,
    KeySessions,
    SyslogListener,
    allow,
    authorized,
    exists,
    fill,
    forced_command,
    pool_state,
    prop,
    snapshot_guids,
    sshd_logins,
    wire,
    zfs,
)
from tests.realzfs.tokens import forge, values
from zmake.core.decide import PLACEHOLDER_MAX_REFERENCED
from zmake.core.stream_header import COMPOUND, RECORD_SIZE, SUBSTREAM, Begin, read_head
from zmake.guard.stream import PACKAGE_REFUSED
from zmake.sides import zfs_argv

MARKER = b"ZMAKE-SECRET-MARKER-7f3a9c"
MARKER_LINES = 200
TARGET = "nas"  # the pull key's --target: the label of its bookmarks


@dataclass(frozen=True)
class Tree:
    pools: Pools
    root: str  # the pull key's --send-from
    plain: str
    secret: str  # encrypted, MARKER_LINES lines holding MARKER
    cs: str  # the source of the backups under the placeholder B
    rep: str  # a tree with a child: the replication (-R) streams
    crafted: str  # canmount=on, a mountpoint, zmake:placeholder naming `planted`: -p streams
    dest: str  # the push keys' --receive-into (a placeholder `zmake allow` made)
    planted: str
    pulled: str  # the pull's --dest
    streams: Path

    def stream(self, name: str) -> Path:
        return self.streams / f"{name}.zstream"


def save(path: Path, *argv: str) -> Path:
    with open(path, "wb") as out:
        subprocess.run(argv, stdout=out, check=True)
    return path


def direct(user: str, *argv: str, stdin: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`argv` run by `user` on this host, with no zmake in the way: the control."""
    with open(stdin or "/dev/null", "rb") as data:
        return subprocess.run(["runuser", "-u", user, "--", *argv], stdin=data,
                              capture_output=True, text=True, timeout=300)  # fmt: skip


def as_root(*argv: str, stdin: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    with open(stdin or "/dev/null", "rb") as data:
        return subprocess.run(argv, stdin=data, capture_output=True, timeout=300)


def everything(tree: Tree) -> tuple[object, ...]:
    """Both pools as the attacks must leave them."""
    return pool_state(tree.pools.src), pool_state(tree.pools.dst)


def prop_and_source(name: str, prop_name: str) -> tuple[str, str]:
    value, source = zfs("get", "-H", "-o", "value,source", prop_name, name).strip().split("\t")
    return value, source


@pytest.fixture(scope="module")
def pools() -> Iterator[Pools]:
    with fresh_pools() as made:
        yield made


@pytest.fixture(scope="module")
def tree(pools, tmp_path_factory) -> Tree:
    """Source: `lap top:1` (the pull key's tree: a plain dataset and an encrypted one holding
    MARKER), `c s:1` (@zmake-1..3), `rep` with a child (@s1..3), `crafted`. Backup: the push
    keys' placeholder (made by `zmake allow --prune`: its user holds destroy), the pull's."""
    src, dst = pools.src, pools.dst
    streams = tmp_path_factory.mktemp("attacks")
    zfs("set", f"mountpoint=/tmp/{src}", src)
    root = f"{src}/lap top:1"
    zfs("create", root)
    plain = f"{root}/plain da:ta"
    zfs("create", "-o", "compression=off", plain)
    fill(plain, 0.3)
    secret = f"{root}/secret stuff"
    key = streams / "key"
    key.write_text("correct horse battery staple")
    zfs("create", "-o", "encryption=on", "-o", "keyformat=passphrase", "-o", "compression=off",
        "-o", f"keylocation=file://{key}", secret)  # fmt: skip
    lines = b"".join(MARKER + b" line %d\n" % i for i in range(MARKER_LINES))
    (Path(prop(secret, "mountpoint")) / "secret.txt").write_bytes(lines)
    zfs("snapshot", "-r", f"{root}@zmake-1")

    cs = f"{src}/c s:1"
    zfs("create", cs)
    for n in (1, 2, 3):
        fill(cs, 0.02)
        zfs("snapshot", f"{cs}@zmake-{n}")
    rep = f"{src}/rep"
    zfs("create", rep)
    zfs("create", f"{rep}/x")
    for n in (1, 2, 3):
        fill(f"{rep}/x", 0.02)
        zfs("snapshot", "-r", f"{rep}@s{n}")

    dest = f"{dst}/from lap:top 1"
    planted = f"{dest}/planted"
    crafted = f"{src}/crafted"
    zfs("create", "-o", "canmount=on", "-o", f"mountpoint=/tmp/{src}-evil",
        "-o", f"zmake:placeholder={planted}", crafted)  # fmt: skip
    fill(crafted, 0.02)
    zfs("snapshot", f"{crafted}@c")

    tree = Tree(pools, root, plain, secret, cs, rep, crafted, dest, planted,
                f"{dst}/pulled: 1", streams)  # fmt: skip
    save(tree.stream("cs-full"), "zfs", "send", "-L", "-c", f"{cs}@zmake-1")
    save(tree.stream("cs-incr"), "zfs", "send", "-L", "-c", "-I", f"{cs}@zmake-1", f"{cs}@zmake-3")
    for n in (2, 3):  # what zmake sends through a restricted key: one -i per snapshot
        save(tree.stream(f"cs-i{n}"), "zfs", "send", "-L", "-c", "-i", f"{cs}@zmake-{n - 1}",
             f"{cs}@zmake-{n}")  # fmt: skip
    save(tree.stream("rep-R-I"), "zfs", "send", "-R", "-I", f"{rep}@s1", f"{rep}@s3")
    save(tree.stream("rep-full"), "zfs", "send", "-L", "-c", f"{rep}@s1")
    save(tree.stream("crafted-p"), "zfs", "send", "-p", f"{crafted}@c")
    save(tree.stream("crafted"), "zfs", "send", "-L", "-c", f"{crafted}@c")
    return tree


@dataclass(frozen=True)
class Keys:
    pull: KeySessions  # zrecv's key logging in as zsrc: serve --send-from ROOT --target nas
    push: KeySessions  # zsrc's key logging in as zrecv: serve --receive-into DEST
    prune: KeySessions  # a second key of zsrc: the same with --allow-prune


@pytest.fixture(scope="module")
def keys(tree) -> Iterator[Keys]:
    """The keys exactly as `zmake allow` prints their lines (`--allow-prune` added by hand, as
    its note says), each with one open ssh connection for the module."""
    pull_line = forced_command(allow("--role", "pull-source", "--user", "zsrc", tree.root,
                                     "--target", TARGET))  # fmt: skip
    assert f"serve --send-from '{tree.root}' --target {TARGET}" in pull_line, pull_line
    printed = allow("--role", "receive", "--user", "zrecv", tree.dest, "--prune")
    assert prop_and_source(tree.dest, "zmake:placeholder") == (tree.dest, "local")
    push_line = forced_command(printed)
    prune_line = forced_command(printed, "--allow-prune")
    assert f"serve --allow-prune --receive-into '{tree.dest}'" in prune_line, prune_line
    pull_id, push_id, prune_id = Identity("zrecv"), Identity("zsrc"), Identity("zsrc", "id_prune")
    with ExitStack() as stack:
        stack.enter_context(authorized("zsrc", [pull_id.line(pull_line)]))
        stack.enter_context(authorized("zrecv", [push_id.line(push_line),
                                                 prune_id.line(prune_line)]))  # fmt: skip
        yield Keys(*(stack.enter_context(KeySessions(identity, host)) for identity, host in
                     ((pull_id, "zsrc"), (push_id, "zrecv"), (prune_id, "zrecv"))))  # fmt: skip


@pytest.fixture
def syslog() -> Iterator[SyslogListener]:
    listener = SyslogListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def real_token(tree) -> str:
    """A REAL resume token: zmake's send of the plain dataset, cut short, as root."""
    partial = f"{tree.pools.dst}/partial"
    cut = pipe(["zfs", "send", "-L", "-c", f"{tree.plain}@zmake-1"], ["head", "-c", "60000"],
               ["zfs", "recv", "-s", partial], check=False)  # fmt: skip
    assert not cut.ok, cut.describe()
    token = prop(partial, "receive_resume_token")
    assert token.startswith("1-"), token
    assert values(token)["toname"] == f"{tree.plain}@zmake-1"
    return token


def head_of(path: Path) -> Begin:
    with open(path, "rb") as stream:
        first, raw = read_head(stream.read)
    assert len(raw) == RECORD_SIZE
    return first


# Order: any; it only sends (as root) what the tests after it receive.
def test_the_stream_heads_serve_reads_are_what_zfs_writes(tree) -> None:
    """What guard/stream.py decides from, on streams ZFS itself wrote: a full stream and an
    `-i` one are one substream of their kind; every `-I` (one snapshot or many), -p and -R a
    compound package (serve refuses them all); a raw stream says so; a zvol is type 3."""
    full = head_of(tree.stream("cs-full"))
    assert (full.hdrtype, full.kind, full.fromguid) == (SUBSTREAM, "filesystem", 0)
    step = head_of(tree.stream("cs-i2"))
    assert (step.hdrtype, step.kind) == (SUBSTREAM, "filesystem")
    assert step.fromguid == int(prop(f"{tree.cs}@zmake-1", "guid"))
    assert step.toguid == int(prop(f"{tree.cs}@zmake-2", "guid"))
    for name in ("cs-incr", "rep-R-I", "crafted-p"):
        assert head_of(tree.stream(name)).hdrtype == COMPOUND, name
    raw = head_of(save(tree.streams / "raw.zstream", "zfs", "send", "-w",
                       f"{tree.secret}@zmake-1"))  # fmt: skip
    assert (raw.hdrtype, raw.kind) == (SUBSTREAM, "filesystem")
    assert raw.featureflags & 1 << 24  # DMU_BACKUP_FEATURE_RAW
    volume = f"{tree.pools.src}/vol"
    zfs("create", "-V", "4M", volume)
    try:
        zfs("snapshot", f"{volume}@v")
        head = head_of(save(tree.streams / "vol.zstream", "zfs", "send", "-L", "-c", f"{volume}@v"))
        assert (head.hdrtype, head.kind, head.objset_type) == (SUBSTREAM, "volume", 3)
    finally:
        zfs("destroy", "-r", volume)


def test_a_forged_resume_token_sends_no_byte_of_the_encrypted_dataset(
    tree, keys, real_token, syslog
) -> None:
    """OpenZFS #14153: `zfs send -t` sends the snapshot whose guid is the token's, anywhere in
    the pool its `toname` names. A real token of the plain dataset with the encrypted one's guid
    (`toname` kept, or naming nothing) makes ZFS send the encrypted dataset in plaintext."""
    secret_guid = int(prop(f"{tree.secret}@zmake-1", "guid"))
    nothing = f"{tree.root}/nope@zmake-1"
    forged = {
        "toname kept": forge(real_token, toguid=secret_guid),
        "toname of nothing": forge(real_token, toguid=secret_guid, toname=nothing),
    }
    for why, token in forged.items():
        # The control: ZFS names the encrypted snapshot, and zsrc (the user the key logs in
        # as), with no zmake in the way, gets its plaintext.
        estimate = as_root("zfs", "send", "-n", "-v", "-P", "-t", token)
        assert estimate.returncode == 0, estimate.stderr
        assert f"full\t{tree.secret}@zmake-1\t" in estimate.stdout.decode(), estimate.stdout
        with open(tree.streams / "stolen.zstream", "wb") as out:
            sent = subprocess.run(["runuser", "-u", "zsrc", "--", "zfs", "send", "-t", token],
                                  stdout=out, stderr=subprocess.PIPE)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        stolen = (tree.streams / "stolen.zstream").read_bytes()
        assert stolen.count(MARKER) == MARKER_LINES, (why, stolen.count(MARKER))

    before = everything(tree)
    for why, token in forged.items():
        said = keys.pull.refused(wire(zfs_argv.resume_argv(token)))
        assert f"that sends {tree.secret}@zmake-1" in said, (why, said)
    assert everything(tree) == before
    logged = syslog.refusals("zsrc")
    assert len(logged) >= len(forged) and all("send" in x for x in logged), logged

    # The honest token still resumes through the key: the partial receive completes.
    partial = f"{tree.pools.dst}/partial"
    resumed = tree.streams / "resumed.zstream"
    keys.pull.passes(wire(zfs_argv.resume_argv(real_token)), stdout=resumed)
    assert MARKER not in resumed.read_bytes()
    done = as_root("zfs", "recv", "-s", partial, stdin=resumed)
    assert done.returncode == 0, done.stderr
    assert snapshot_guids(partial) == {"@zmake-1": int(prop(f"{tree.plain}@zmake-1", "guid"))}


@pytest.fixture(scope="module")
def placeholder_b(tree, keys) -> tuple[str, str]:
    """B, a placeholder made through the push key by zmake's own command, and B/c holding three
    backups received through it (full, then one -i per snapshot: the key refuses zmake's -I
    package), then a snapshot of the backup host's own: the legitimate flow."""
    b = f"{tree.dest}/home:1 b"
    c = f"{b}/c"
    keys.push.passes(wire(zfs_argv.create_placeholder_argv(b)))
    keys.push.passes(wire(zfs_argv.receive_argv(c)), stdin=tree.stream("cs-full"))
    said = keys.push.refused(wire(zfs_argv.receive_argv(c)), stdin=tree.stream("cs-incr"))
    assert PACKAGE_REFUSED in said, said  # a package, even zmake's own -I: one by one
    for n in (2, 3):
        keys.push.passes(wire(zfs_argv.receive_argv(c)), stdin=tree.stream(f"cs-i{n}"))
    assert snapshot_guids(c) == snapshot_guids(tree.cs)
    zfs("snapshot", f"{c}@mine")
    return b, c


def throwaway_copy(tree: Tree, name: str) -> str:
    """Another placeholder like B, with a c like B/c (made as root): for a control that
    destroys."""
    copy = f"{tree.dest}/{name}"
    zfs(*zfs_argv.create_placeholder_argv(copy)[1:])
    for stream in ("cs-full", "cs-incr"):
        done = as_root("zfs", "recv", "-u", f"{copy}/c", stdin=tree.stream(stream))
        assert done.returncode == 0, done.stderr
    zfs("snapshot", f"{copy}/c@mine")
    assert len(snapshot_guids(f"{copy}/c")) == 4
    return copy


# Order: before the prune test, which prunes B/c; leaves B received-into (B/c intact).
def test_a_replication_stream_with_force_over_a_placeholder_is_refused(
    tree, keys, placeholder_b, syslog
) -> None:
    """`zfs recv -F` of a `send -R -I` stream destroys every dataset and snapshot under the
    target that the stream lacks — when the user holds `destroy` (`zmake allow --prune`)."""
    b, c = placeholder_b
    shape = zfs_argv.receive_argv(b, force=True)  # zmake's own -F receive over a placeholder
    # The control, on a copy of B: zrecv, in zmake's exact shape, without serve.
    copy = throwaway_copy(tree, "copy 2")
    direct("zrecv", *zfs_argv.receive_argv(copy, force=True), stdin=tree.stream("rep-R-I"))
    assert not exists(f"{copy}/c"), "the replication stream did not destroy the copy's child"
    if exists(copy):
        zfs("destroy", "-r", copy)

    guids = snapshot_guids(c)
    before = everything(tree)
    for key in (keys.push, keys.prune):
        said = key.refused(wire(shape), stdin=tree.stream("rep-R-I"))
        assert PACKAGE_REFUSED in said, said
    assert everything(tree) == before
    assert snapshot_guids(c) == guids and len(guids) == 4
    assert len(syslog.refusals("zrecv")) >= 2

    # The legitimate -F: a full stream of one dataset over the placeholder; B/c survives.
    keys.push.passes(wire(shape), stdin=tree.stream("rep-full"))
    assert snapshot_guids(b) == {"@s1": int(prop(f"{tree.rep}@s1", "guid")),
                                 **{f"c{k}": v for k, v in guids.items()}}  # fmt: skip


def test_a_planted_placeholder_mark_is_refused(tree, keys, syslog) -> None:
    """A `send -p` stream carries its source's local zmake:placeholder (naming the target), and
    ZFS sets it on the target as `received`. serve refuses such a package at its head; and -F
    takes a mark set on the dataset itself only, never one received or inherited."""
    target = tree.planted  # the crafted source's mark names it
    assert prop_and_source(tree.crafted, "zmake:placeholder") == (target, "local")
    before = everything(tree)
    said = keys.push.refused(wire(zfs_argv.receive_argv(target)), stdin=tree.stream("crafted-p"))
    assert PACKAGE_REFUSED in said, said
    assert not exists(target)
    assert everything(tree) == before
    # The control (after: both met the same absent target): zrecv, directly, with zmake's
    # -o canmount=noauto and no -x: the mark arrives.
    control = direct("zrecv", "zfs", "recv", "-u", "-s", "-o", "canmount=noauto", target,
                     stdin=tree.stream("crafted-p"))  # fmt: skip
    assert exists(target), control.stderr
    assert prop_and_source(target, "zmake:placeholder") == (target, "received")

    # -F over it, with only its snapshot gone, is refused: everything else of a placeholder
    # is there (a filesystem, no snapshot, next to no data, a mark naming itself).
    zfs("destroy", f"{target}@c")
    assert not snapshot_guids(target)
    assert int(prop(target, "referenced")) <= PLACEHOLDER_MAX_REFERENCED
    inherits = f"{tree.dest}/inherit"
    child = f"{inherits}/k"
    zfs("create", "-o", "canmount=off", "-o", f"zmake:placeholder={child}", inherits)
    zfs("create", "-o", "canmount=off", child)
    assert prop_and_source(child, "zmake:placeholder") == (child, f"inherited from {inherits}")
    assert not snapshot_guids(child)
    assert int(prop(child, "referenced")) <= PLACEHOLDER_MAX_REFERENCED
    before = everything(tree)
    for name in (target, child):
        said = keys.push.refused(wire(zfs_argv.receive_argv(name, force=True)),
                                 stdin=tree.stream("rep-full"))  # fmt: skip
        assert f"-F over {name}, which is not a placeholder" in said, said
    assert everything(tree) == before
    assert len(syslog.refusals("zrecv")) >= 3
    # The control: the same mark set on the dataset itself is all the same -F needs.
    zfs("set", f"zmake:placeholder={target}", target)
    keys.push.passes(wire(zfs_argv.receive_argv(target, force=True)),
                     stdin=tree.stream("rep-full"))  # fmt: skip
    assert snapshot_guids(target) == {"@s1": int(prop(f"{tree.rep}@s1", "guid"))}


def test_a_filesystem_into_a_receive_shaped_for_a_volume_is_refused(tree, keys, syslog) -> None:
    """zmake receives a volume without canmount=noauto (a volume has none) and without -x
    mountpoint: a filesystem stream there would keep its canmount=on, and with -p its own
    mountpoint — a backup that mounts itself over the backup host's paths at the next boot."""
    target = f"{tree.dest}/vol shaped"
    shape = zfs_argv.receive_argv(target, filesystem=False)
    evil = f"/tmp/{tree.pools.src}-evil"
    granted = zfs("allow", tree.dest)
    assert "mountpoint" in granted and "canmount" in granted, granted  # zmake allow's receive set
    try:
        before = everything(tree)
        said = keys.push.refused(wire(shape), stdin=tree.stream("crafted-p"))
        assert PACKAGE_REFUSED in said, said
        said = keys.push.refused(wire(shape), stdin=tree.stream("crafted"))
        assert "a filesystem stream into a receive for a volume" in said, said
        assert not exists(target)
        assert everything(tree) == before
        assert len(syslog.refusals("zrecv")) >= 2
        # The controls: zrecv, directly, in the same shape.
        control = direct("zrecv", *shape, stdin=tree.stream("crafted-p"))
        assert control.returncode == 0, control.stderr
        assert prop_and_source(target, "canmount") == ("on", "received")
        assert prop_and_source(target, "mountpoint") == (evil, "received")
        zfs("destroy", "-r", target)
        control = direct("zrecv", *shape, stdin=tree.stream("crafted"))
        assert control.returncode == 0, control.stderr
        assert prop(target, "type") == "filesystem"
        assert prop_and_source(target, "canmount") == ("on", "default")
    finally:
        if exists(target):
            zfs("destroy", "-r", target)


# Order: after the -F test (B/c as it left it).
def test_a_prune_key_destroys_only_zmakes_older_snapshots(
    tree, keys, placeholder_b, syslog
) -> None:
    """`--allow-prune`: a range (`%`), a snapshot that is not zmake's, the newest: refused,
    though zrecv (holding destroy) may destroy them all directly."""
    _, c = placeholder_b
    assert list(snapshot_guids(c)) == ["@zmake-1", "@zmake-2", "@zmake-3", "@mine"]
    asks = {
        "%": "a range of snapshots",
        "zmake-1%zmake-3": "a range of snapshots",
        "mine": "not zmake's",
        "zmake-1,mine": "not zmake's",
        "zmake-3": "the newest zmake snapshot",
    }
    # The control: zrecv directly would destroy every one (a dry run here)…
    for short, would in (("%", 4), ("zmake-1%zmake-3", 3), ("mine", 1), ("zmake-3", 1)):
        dry = direct("zrecv", "zfs", "destroy", "-n", "-v", f"{c}@{short}")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.count("would destroy") == would, dry.stdout
    # … and does, on a copy.
    copy = throwaway_copy(tree, "copy 6")
    wiped = direct("zrecv", "zfs", "destroy", f"{copy}/c@%")
    assert wiped.returncode == 0 and not snapshot_guids(f"{copy}/c"), wiped.stderr
    zfs("destroy", "-r", copy)

    before = everything(tree)
    for short, why in asks.items():
        said = keys.prune.refused(wire(["zfs", "destroy", f"{c}@{short}"]))
        assert why in said, (short, said)
    # A legitimate prune through the key without --allow-prune: refused too.
    older = wire(zfs_argv.destroy_snapshots_argv(c, ["zmake-1"]))
    assert "needs --allow-prune" in keys.push.refused(older)
    assert everything(tree) == before
    assert len(syslog.refusals("zrecv")) >= len(asks) + 1
    # Through the prune key it passes.
    kept = {k: v for k, v in snapshot_guids(c).items() if k != "@zmake-1"}
    keys.prune.passes(older)
    assert snapshot_guids(c) == kept


def bookmarks(dataset: str) -> list[str]:
    return zfs("list", "-H", "-o", "name", "-t", "bookmark", "-d", "1", dataset).splitlines()


def own_bookmarks(dataset: str) -> list[str]:
    return [n for n in bookmarks(dataset) if n.partition("#")[2].startswith(f"zmake-{TARGET}.")]


def test_a_pull_key_reaches_only_its_own_bookmarks(tree, keys, syslog) -> None:
    """A pull key's bookmarks are labelled with its --target; another target's (its base once
    the source prunes), or an unlabelled one, cannot be destroyed through it."""
    plain = tree.plain
    txg = prop(f"{plain}@zmake-1", "createtxg")
    other = f"{plain}#zmake-other.0123456789abcdef-{txg}"
    unlabelled = f"{plain}#zmake-0123456789abcdef-{txg}"
    spare = f"{plain}#zmake-other.fedcba9876543210-{txg}"
    for mark in (other, unlabelled, spare):
        zfs("bookmark", f"{plain}@zmake-1", mark)
    assert sorted(bookmarks(plain)) == sorted([other, unlabelled, spare])
    # The control: zsrc (what the key logs in as) destroys another target's bookmark directly.
    done = direct("zsrc", "zfs", "destroy", spare)
    assert done.returncode == 0, done.stderr
    assert sorted(bookmarks(plain)) == sorted([other, unlabelled])

    # Two pulls of the plain dataset through the key (`zmake send`: `backup` adds nothing
    # here): each bookmarks the newest snapshot as this target's, the second tidying the first's.
    allow("--role", "receive", "--user", "zrecv", tree.pulled)
    zrecv = AsUser("zrecv", "attacks-pull")
    source = ["--source", f"zsrc@{USERS_HOST}", "--ssh", zrecv.ssh, "--dest", tree.pulled]
    backup = f"{tree.pulled}/{plain.partition('/')[2]}"  # recv -d's name for it
    first = zrecv("send", plain, *source, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert snapshot_guids(backup) == snapshot_guids(plain)
    backup_key = f"{int(prop(backup, 'guid')):016x}"
    assert own_bookmarks(plain) == [f"{plain}#zmake-{TARGET}.{backup_key}-{txg}"]
    fill(plain, 0.05)
    zfs("snapshot", f"{plain}@zmake-2")
    again = zrecv("send", plain, *source, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "incremental" in again.stdout, again.stdout
    assert snapshot_guids(backup) == snapshot_guids(plain)
    newest = zfs("list", "-H", "-p", "-o", "createtxg", "-t", "snapshot", "-s", "createtxg",
                 "-d", "1", plain).split()[-1]  # fmt: skip
    assert newest != txg
    assert own_bookmarks(plain) == [f"{plain}#zmake-{TARGET}.{backup_key}-{newest}"]
    assert sorted(bookmarks(plain)) == sorted([other, unlabelled, *own_bookmarks(plain)])

    before = everything(tree)
    for mark in (other, unlabelled):
        said = keys.pull.refused(wire(zfs_argv.destroy_bookmark_argv(mark)))
        assert "not this target's bookmark" in said, said
    said = keys.pull.refused(wire(zfs_argv.destroy_bookmark_argv(own_bookmarks(plain)[0])))
    assert "newest bookmark" in said, said
    assert everything(tree) == before
    assert len(syslog.refusals("zsrc")) >= 3


def test_what_serve_cannot_check_is_refused(tree, keys, real_token, syslog) -> None:
    """Fail closed: a zfs that fails or answers nothing, a token ZFS cannot resolve, a dataset
    that does not exist — refused (exit 9, serve's line; not a traceback, not a pass)."""
    send = wire(zfs_argv.stream_argv(f"{tree.plain}@zmake-1", raw=False))
    fake = USERS_DIR / "bin" / "zfs"  # first on zsrc's PATH (sshd's SetEnv), before sbin's
    assert not fake.exists()
    # The control: with the real zfs the same send passes through the key.
    keys.pull.passes(send, stdout=tree.streams / "plain.zstream")
    assert head_of(tree.streams / "plain.zstream").kind == "filesystem"
    before = everything(tree)
    try:
        for script in ("#!/bin/sh\nexit 0\n", "#!/bin/sh\necho 'zfs broke' >&2\nexit 1\n"):
            fake.write_text(script)
            fake.chmod(0o755)
            said = keys.pull.refused(send)
            assert "zfs did not answer" in said, said
    finally:
        fake.unlink(missing_ok=True)

    nowhere = forge(real_token, toguid=12345)  # in no pool: ZFS cannot resolve it
    no_pool = forge(real_token, toname="nopool/x@zmake-1")
    missing = f"{tree.root}/nope@zmake-1"
    asks = [
        zfs_argv.estimate_argv(zfs_argv.resume_argv(nowhere)),
        zfs_argv.resume_argv(no_pool),
        zfs_argv.stream_argv(missing, raw=False),
    ]
    for argv in asks:
        assert as_root(*argv).returncode != 0, argv  # the control: ZFS fails it too
        keys.pull.refused(wire(argv))
    # -F over a dataset that does not exist: ZFS would create it.
    absent = f"{tree.dest}/absent"
    said = keys.push.refused(wire(zfs_argv.receive_argv(absent, force=True)),
                             stdin=tree.stream("rep-full"))  # fmt: skip
    assert "does not list" in said or "did not answer" in said, said
    assert everything(tree) == before
    control = direct("zrecv", *zfs_argv.receive_argv(absent, force=True),
                     stdin=tree.stream("rep-full"))  # fmt: skip
    assert control.returncode == 0 and exists(absent), control.stderr
    zfs("destroy", "-r", absent)
    assert len(syslog.refusals("zsrc")) >= 5


def test_dot_dot_in_a_name_is_refused(tree, keys, syslog) -> None:
    """`..` is no way out of the key's tree. (ZFS rejects such a name itself — shown —: this
    proves serve refuses it before ZFS reads it, by its own line and its syslog entry.)"""
    escapes = [
        (keys.push, zfs_argv.remote_dataset_argv(f"{tree.dest}/../pulled: 1")),
        (keys.push, zfs_argv.receive_argv(f"{tree.dest}/c/../../x")),
        (keys.push, zfs_argv.unmount_argv(f"{tree.dest}/..")),
        (keys.pull, zfs_argv.stream_argv(f"{tree.root}/../c s:1@zmake-1", raw=False)),
    ]
    before, logins = everything(tree), sshd_logins("zrecv") + sshd_logins("zsrc")
    for key, argv in escapes:
        said = key.refused(wire(argv))
        assert "outside" in said, said
    assert everything(tree) == before
    assert sshd_logins("zrecv") + sshd_logins("zsrc") == logins  # the keys' one connection each
    assert len(syslog.refusals("zrecv")) >= 3 and len(syslog.refusals("zsrc", 0)) >= 1
    said = direct("zrecv", *zfs_argv.remote_dataset_argv(f"{tree.dest}/../pulled: 1"))
    assert said.returncode != 0 and "zmake serve" not in said.stderr, said.stderr
