"""Restricted keys (issue 15): `zmake serve` as the forced command of real sshd keys, on real
OpenZFS — the normal push and pull flows pass through it, and what an attacker holding the key
tries is refused with nothing changed (every snapshot GUID of the pool the same before and after).

The keys are the `authorized_keys` lines `zmake allow` prints, written into the users' sshd's
root-owned keys files (guest-init.sh) for the test and put back after it.

One pair of pools, one source tree and one first push serve the whole module (each test used
to make its own, and two of them the same push): the tests run in file order, and ORDER
MATTERS. The prefix and pull tests use backup datasets of their own (`fenced`, `pulled`: both
need an empty one) and need the tree's `@zmake-one`, which the push test, last, prunes from
the source and the backup; the prefix test puts the mountpoint it changes back, the attack
test destroys the datasets it adds, so the push test finds the first push as it was left."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realzfs.conftest import Pools, fresh_pools
from tests.realzfs.support import (
    USERS_HOST,
    AsUser,
    SyslogListener,
    allow,
    encrypted_tree,
    exists,
    fill,
    interrupted_send,
    pool_state,
    prop,
    restricted_key,
    snapshot_guids,
    zfs,
)
from zmake.core.token import ResumeToken, encode
from zmake.guard.probe import REFUSED
from zmake.guard.stream import PACKAGE_REFUSED
from zmake.sides import zfs_argv


def attack(client: AsUser, host_user: str, command: str, stdin: Path | None = None) -> str:
    """`command` sent as is over `client`'s ssh to `host_user`: must be refused by serve."""
    argv = ["runuser", "-u", client.user, "--", *shlex.split(client.ssh), f"{host_user}@users",
            command]  # fmt: skip
    with open(stdin or os.devnull, "rb") as data:
        done = subprocess.run(argv, stdin=data, capture_output=True, text=True, timeout=120)
    assert done.returncode == REFUSED, (command, done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith("zmake serve: refused"), done.stderr
    assert done.stdout == ""
    return done.stderr


@pytest.fixture
def syslog_lines() -> Iterator[list[str]]:
    listener = SyslogListener()
    try:
        yield listener.lines
    finally:
        listener.close()


@pytest.fixture(scope="module")
def pools() -> Iterator[Pools]:
    """conftest's `pools`, made once for the module (see the module docstring)."""
    with fresh_pools() as made:
        yield made


@pytest.fixture(scope="module")
def tree(pools, tmp_path_factory) -> list[str]:
    """The source (a space, a colon, an encrypted dataset), and on the backup pool another
    host's backup that this source's key must not reach."""
    key = tmp_path_factory.mktemp("serve") / "key"
    *names, secret = encrypted_tree(pools.src, key, ["home", "home/my data:1"])
    zfs("snapshot", "-r", f"{pools.src}@zmake-one")
    other = f"{pools.dst}/other host"
    zfs("create", "-o", f"mountpoint=/tmp/{pools.dst}-other", other)
    fill(other, 0.1)
    zfs("snapshot", f"{other}@zmake-theirs")
    return [pools.src, *names, secret]


@pytest.fixture(scope="module")
def laptop(pools) -> Iterator[tuple[str, AsUser]]:
    """A push: zsrc (the source's user) may only run `zmake serve --receive-into dst/laptop`
    as zrecv on the backup host."""
    dest = f"{pools.dst}/laptop"
    printed = allow("--role", "receive", "--user", "zrecv", dest)
    allow("--role", "push-source", "--user", "zsrc", pools.src, "--prune")
    with restricted_key("zrecv", "zsrc", printed) as line:
        assert f"serve --receive-into {dest}" in line and ",restrict " in line
        yield dest, AsUser("zsrc", "serve-push")


@pytest.fixture(scope="module")
def pushed(pools, tree, laptop) -> tuple[str, AsUser, list[str]]:
    """The first push through serve, made once for the attack and the push tests (each began
    with one): what `full_then_incremental` asserts of its first run, the push test doing the
    second. Full, at -j4 with zstd: every snapshot GUID equal, the encrypted dataset received
    raw (its key unavailable there)."""
    dest, zsrc = laptop
    target = ["--remote", f"zrecv@{USERS_HOST}", "--ssh", zsrc.ssh, "--dest", dest]
    first = zsrc("backup", pools.src, *target, "--compress", "zstd", "-j", "4", "--yes",
                 check=False)  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert snapshot_guids(dest) == snapshot_guids(pools.src)
    secret = f"{dest}/secret stuff"
    assert prop(secret, "encryptionroot") == secret and prop(secret, "keystatus") == "unavailable"
    return dest, zsrc, target


# Order: first, before anything is pushed; puts the source's mountpoint back.
def test_a_mountpoint_outside_the_prefix_is_refused(pools, tree) -> None:
    """With --mountpoint-prefix, the source may keep its mountpoints only under it; without,
    serve strips them (the backup inherits)."""
    dest = f"{pools.dst}/fenced"  # empty: the module's push goes to dst/laptop
    printed = allow("--role", "receive", "--user", "zrecv", dest)
    allow("--role", "push-source", "--user", "zsrc", pools.src)
    line = next(x for x in printed.splitlines() if x.startswith("# command="))
    fenced = line.replace("--receive-into", "--mountpoint-prefix /backups --receive-into")
    elsewhere = f"/tmp/{pools.src}-elsewhere"
    zfs("set", f"mountpoint={elsewhere}", tree[1])  # local on the source: -o mountpoint
    try:
        with restricted_key("zrecv", "zsrc", fenced):
            zsrc = AsUser("zsrc", "serve-fence")
            target = ["--remote", f"zrecv@{USERS_HOST}", "--ssh", zsrc.ssh, "--dest", dest]
            done = zsrc("send", tree[1], *target, check=False)
            assert done.returncode != 0 and "outside /backups" in done.stderr, done.stderr
            assert not exists(f"{dest}/home")
        with restricted_key("zrecv", "zsrc", printed):
            done = zsrc("send", tree[1], *target, check=False)
            assert done.returncode == 0, done.stderr
            assert prop(f"{dest}/home", "mountpoint") != elsewhere  # stripped: inherited
    finally:
        zfs("inherit", "mountpoint", tree[1])  # as the tree was made, for the tests after


@pytest.fixture
def pulled(pools) -> Iterator[tuple[str, AsUser]]:
    """A pull: zrecv (the backup host's user) may only run `zmake serve --send-from SRC` as
    zsrc on the source."""
    dest = f"{pools.dst}/pulled"  # empty: the pull's first backup is a full one
    allow("--role", "receive", "--user", "zrecv", dest)
    printed = allow("--role", "pull-source", "--user", "zsrc", pools.src)
    with restricted_key("zsrc", "zrecv", printed) as line:
        assert f"serve --send-from {pools.src}" in line
        yield dest, AsUser("zrecv", "serve-pull")


# Order: before the push test, which prunes the @zmake-one snapshots this one reads.
def test_pull_passes_and_attacks_with_the_backup_key_change_nothing(
    pools, tree, pulled, syslog_lines
) -> None:
    dest, zrecv = pulled
    source = ["--source", f"zsrc@{USERS_HOST}", "--ssh", zrecv.ssh, "--dest", dest]
    first = zrecv("backup", pools.src, *source, "-j", "4", "--compress", "zstd", "--yes",
                  check=False)  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert snapshot_guids(dest) == snapshot_guids(pools.src)
    for name in tree[1:3]:
        fill(name, 0.1)
    again = zrecv("backup", pools.src, *source, "--snapshot", "--yes", check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "incremental" in again.stdout
    assert snapshot_guids(dest) == snapshot_guids(pools.src)

    before = pool_state(pools.src)
    secret = tree[3]
    snap = f"{secret}@zmake-one"
    guid = int(prop(snap, "guid"))
    q = shlex.quote
    attacks = [
        f"zfs send -L -c {q(snap)}",  # plaintext of an encrypted dataset
        f"zfs send -t {encode(ResumeToken(guid, snap, 0, raw=False))}",  # OpenZFS #14153
        f"zfs send -t {encode(ResumeToken(1, pools.dst + '/other host@zmake-theirs', 0))}",
        f"zfs send -L -c {q(pools.dst + '/other host@zmake-theirs')}",
        f"zfs send -L -c -R {q(tree[1] + '@zmake-one')}",
        f"zfs destroy {q(tree[1] + '@zmake-one')}",
        f"zfs destroy -r {q(pools.src)}",
        f"zfs rollback -r {q(tree[1] + '@zmake-one')}",
        f"zfs recv -F {q(tree[1])}",
        "sh -c id",
        f"zfs send -L -c {q(tree[1] + '@zmake-one')} | nc 127.0.0.1 9",
    ]
    for command in attacks:
        attack(zrecv, "zsrc", command)
    assert pool_state(pools.src) == before
    time.sleep(1)
    assert len(syslog_lines) >= len(attacks)


# Order: before the push test (which prunes @zmake-one); destroys the datasets it adds.
def test_attacks_with_the_source_key_change_nothing(pools, tree, pushed, syslog_lines) -> None:
    dest, zsrc, _ = pushed  # the first push: the fixture's, asserted there
    home, other = f"{dest}/home", f"{pools.dst}/other host"
    stream = Path("/tmp/serve-crafted.zstream")
    subprocess.run(f"zfs send -L -c {shlex.quote(tree[1] + '@zmake-one')} > {stream}",
                   shell=True, check=True)  # fmt: skip
    before = pool_state(pools.dst)

    q = shlex.quote
    attacks = [
        f"zfs destroy -r {q(dest)}",
        f"zfs destroy -r {q(pools.dst)}",
        f"zfs destroy {q(home + '@zmake-one')}",
        f"zfs rollback -r {q(home + '@zmake-one')}",
        f"zfs recv -A {q(home)}",
        f"zfs set readonly=off {q(home)}",
        f"zfs recv -o mountpoint=/etc -u {q(dest + '/evil')}",
        f"zfs send -L -c {q(other + '@zmake-theirs')}",
        f"zfs send -w {q(home + '@zmake-one')}",
        f"zfs list -r {q(pools.dst)}",
        f"zfs list -H -p -o name -t all -r {q(pools.dst)}",
        "sh -c 'zfs destroy -r dst'",
        f"zfs list -H -o name,mounted -t filesystem -r {q(dest)}; zfs destroy -r {q(dest)}",
        f"zfs list -H -o name,mounted -t filesystem -r {q(dest)} $(zfs destroy -r {q(dest)})",
        f"zfs list -H -o name,mounted -t filesystem -r {q(dest)}\nzfs destroy -r {q(dest)}",
    ]
    for command in attacks:
        attack(zsrc, "zrecv", command)
    # A crafted stream received with -F over an existing backup, as zmake would shape it.
    attack(zsrc, "zrecv", f"zfs recv -F {q(home)}", stdin=stream)
    shaped = shlex.join(zfs_argv.receive_argv(home, force=True))
    assert "not a placeholder" in attack(zsrc, "zrecv", shaped, stdin=stream)
    assert pool_state(pools.dst) == before
    assert not exists(f"{dest}/evil")
    time.sleep(1)
    logged = list(syslog_lines)
    assert len(logged) >= len(attacks), logged
    assert any("zmake-serve" in x and "refused for zrecv" in x and "destroy -r" in x
               for x in logged), logged  # fmt: skip

    # A stream with properties of its own (send -p): its mountpoint, which zrecv may set (the
    # receive set grants mountpoint, for zmake's -o mountpoint under a prefix). Received
    # directly in zmake's very shape, the backup takes the stream's mountpoint (the control);
    # through the key the package is refused at its first record, and nothing is created.
    crafted, received = f"{pools.src}/crafted", f"{dest}/crafted"
    elsewhere = f"/tmp/{pools.src}-elsewhere"
    shape = zfs_argv.receive_argv(received)
    assert "mountpoint" in zfs("allow", dest)  # zmake allow's receive set holds it
    try:
        zfs("create", "-o", "canmount=noauto", "-o", f"mountpoint={elsewhere}", crafted)
        zfs("snapshot", f"{crafted}@x")
        with_props = Path("/tmp/serve-props.zstream")
        subprocess.run(f"zfs send -p {shlex.quote(crafted + '@x')} > {with_props}", shell=True,
                       check=True)  # fmt: skip
        with open(with_props, "rb") as data:
            control = subprocess.run(["runuser", "-u", "zrecv", "--", *shape], stdin=data,
                                     capture_output=True, text=True)  # fmt: skip
        assert control.returncode == 0, control.stderr
        got = zfs("get", "-H", "-o", "value,source", "mountpoint", received).split()
        assert got == [elsewhere, "received"], got
        zfs("destroy", "-r", received)
        before = pool_state(pools.dst)
        said = attack(zsrc, "zrecv", shlex.join(shape), stdin=with_props)
        assert PACKAGE_REFUSED in said, said
        assert not exists(received)
        assert pool_state(pools.dst) == before
    finally:  # the push test backs this source up again: leave it as the first push did
        for name in (received, crafted):
            if exists(name):
                zfs("destroy", "-r", name)


# Order: last, it prunes @zmake-one from the source and from the backup.
def test_push_passes_through_serve_full_incremental_killed_resumed(pools, tree, pushed) -> None:
    dest, zsrc, target = pushed  # the first push: the fixture's, asserted there
    for name in tree[1:3]:
        fill(name, 0.1)
    # Two new snapshots: zmake's `send -I` package of both is refused by the key, and the
    # range goes again one `-i` stream per snapshot (nothing was received the first time).
    zfs("snapshot", "-r", f"{pools.src}@zmake-one-b")
    again = zsrc("backup", pools.src, *target, "--compress", "zstd", "-j", "4", "--snapshot",
                 "--yes", check=False)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "incremental" in again.stdout and "full @" not in again.stdout
    assert snapshot_guids(dest) == snapshot_guids(pools.src)
    pruned = zsrc("backup", pools.src, *target, "--prune", "--keep", "1", "--yes", check=False)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "not pruned, the key there only appends" in pruned.stdout  # said, not failed
    assert not exists(f"{pools.src}/home@zmake-one")  # the source was pruned
    assert exists(f"{dest}/home@zmake-one")  # the backup was not: append-only

    big = f"{pools.src}/big"
    zfs("create", big)
    fill(big, 3)
    zfs("snapshot", f"{big}@zmake-k1")
    interrupted_send(zsrc, big, f"{dest}/big", "--remote", f"zrecv@{USERS_HOST}", "--dest", dest)
    done = zsrc("send", big, *target, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{big}: resume"), done.stdout
    assert snapshot_guids(f"{dest}/big") == snapshot_guids(big)

    # The backup host prunes its own backups, on its own schedule, without the source.
    local = zfs("list", "-H", "-o", "name", "-t", "snapshot", "-r", dest).split("\n")
    assert f"{dest}/home@zmake-one" in local
    pruned = subprocess.run([sys.executable, "-m", "zmake", "prune", "--backup-only", "--keep", "1",
                             "--dest", dest, "--yes"], capture_output=True, text=True)  # fmt: skip
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert not exists(f"{dest}/home@zmake-one")
    assert all(snapshot_guids(f"{dest}/{n[len(pools.src) + 1 :]}") for n in tree[1:])


# Order: last; adds pools.src/many, backed up under both keys' own trees.
def test_batches_of_small_datasets_pass_both_keys(pools, pushed, pulled) -> None:
    """17 small siblings: nine `zmake send` batches (core/batch.py), each reading all its
    sources in one `zfs get` and all its backups in one `zfs list`, pulled through the pull
    key and pushed through the push key. (Every command through a key starts `zmake serve`:
    one night each keeps this within the tier's per-test limit on one emulated CPU.)"""
    dest, zsrc, target = pushed
    pull_dest, zrecv = pulled
    source = ["--source", f"zsrc@{USERS_HOST}", "--ssh", zrecv.ssh, "--dest", pull_dest]
    many = f"{pools.src}/many"
    zfs("create", many)
    names = [f"{many}/d{n:02d}{' x:y' if n % 7 == 0 else ''}" for n in range(17)]
    for name in names:
        zfs("create", name)
        fill(name, 0.01)
    zfs("snapshot", "-r", f"{many}@zmake-many")
    pulled_now = zrecv("backup", many, *source, "-j", "4", "--yes", check=False)
    pushed_now = zsrc("backup", many, *target, "-j", "4", "--yes", check=False)
    for done, backup in ((pulled_now, f"{pull_dest}/many"), (pushed_now, f"{dest}/many")):
        assert done.returncode == 0, done.stdout + done.stderr
        recipes = [line for line in done.stdout.splitlines() if " send --stamp " in line]
        assert len(recipes) == 9 + 1, recipes  # the batches, then their parent
        assert any(line.count(f"{many}/d") == 2 for line in recipes), recipes
        assert snapshot_guids(backup) == snapshot_guids(many)
