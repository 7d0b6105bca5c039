"""No root anywhere (issue 14): push and pull as unprivileged users, with only what
`zmake allow` sets up, on real OpenZFS through a real sshd.

zsrc owns the source side, zrecv the backup side (guest-init.sh makes both, and a sshd on
127.0.0.2 for them). zsrc's remote PATH has no zfs, as on hosts where it lives in sbin."""

from __future__ import annotations

import pytest

from tests.realzfs.conftest import pipe
from tests.realzfs.support import (
    USERS_HOST,
    AsUser,
    allow,
    encrypted_tree,
    exists,
    fill,
    full_then_incremental,
    interrupted_send,
    partial_receive,
    prop,
    snapshot_guids,
    source_of,
    sshd_logins,
    zfs,
)


@pytest.fixture
def tree(pools, tmp_path) -> list[str]:
    """A pool with a space, a colon, a zvol and an encrypted dataset in its names."""
    *names, secret = encrypted_tree(
        pools.src, tmp_path / "key", ["home", "home/my data", "media:2024"]
    )
    zfs("create", "-V", "4M", f"{pools.src}/vm:disk0")
    zfs("snapshot", "-r", f"{pools.src}@zmake-one")
    zfs("snapshot", "-r", f"{pools.src}@zmake-two")  # a prune --keep 1 later takes @zmake-one
    return [pools.src, *names, secret, f"{pools.src}/vm:disk0"]


@pytest.fixture
def laptop(pools) -> str:
    """The backup side's --dest, set up by `zmake allow --role receive … --apply` (root)."""
    dest = f"{pools.dst}/laptop"
    allow("--role", "receive", "--user", "zrecv", dest, "--prune")
    assert prop(dest, "zmake:placeholder") == dest  # zmake's own placeholder: replaceable
    return dest


def test_push_as_unprivileged_users_on_both_sides(pools, tree, laptop) -> None:
    allow("--role", "push-source", "--user", "zsrc", pools.src, "--prune")
    zsrc = AsUser("zsrc", "push")
    target = ["--remote", f"zrecv@{USERS_HOST}", "--ssh", zsrc.ssh, "--dest", laptop]
    full_then_incremental(zsrc, pools.src, laptop, target, tree[1:4], "--prune", "--keep", "1")
    newest = {k: v for k, v in snapshot_guids(pools.src).items() if "zmake-one" not in k}
    assert len(newest) == 2 * len(tree) and newest.items() <= snapshot_guids(laptop).items()
    assert not exists(f"{pools.src}/home@zmake-one")  # pruned on the source, as zsrc
    assert writable(laptop) == []  # zrecv has `readonly` from zmake allow: the promise holds

    # A backup mounted by hand: only root can unmount on Linux. Reported, never fatal.
    zfs("set", f"mountpoint=/tmp/{pools.dst}-home", f"{laptop}/home")
    zfs("mount", f"{laptop}/home")
    done = zsrc("umount", pools.src, *target, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{laptop}/home: not unmounted" in done.stdout
    zfs("unmount", f"{laptop}/home")


def test_push_killed_mid_transfer_resumes_unprivileged(pools, laptop) -> None:
    big = f"{pools.src}/big"
    zfs("create", "-o", f"mountpoint=/tmp/{pools.src}-big", big)
    fill(big, 3)
    zfs("snapshot", f"{big}@zmake-k1")
    allow("--role", "push-source", "--user", "zsrc", pools.src)
    zsrc = AsUser("zsrc", "kill")
    target = ["--remote", f"zrecv@{USERS_HOST}", "--dest", laptop]
    backup = f"{laptop}/big"
    interrupted_send(zsrc, big, backup, *target)
    done = zsrc("send", big, *target, "--ssh", zsrc.ssh, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{big}: resume"), done.stdout
    assert snapshot_guids(backup) == snapshot_guids(big)


def test_a_missing_permission_is_one_line_naming_it(pools, tree, laptop) -> None:
    allow("--role", "push-source", "--user", "zsrc", pools.src)
    zsrc = AsUser("zsrc", "missing")
    target = ["--remote", f"zrecv@{USERS_HOST}", "--ssh", zsrc.ssh, "--dest", laptop]
    home = f"{pools.src}/home"
    zsrc("send", home, *target)
    zfs("snapshot", f"{home}@zmake-three")
    zfs("snapshot", f"{home}@zmake-four")
    zfs("unallow", "-u", "zsrc", "hold", pools.src)  # -I holds the range while it sends
    done = zsrc("send", home, *target, check=False)
    assert done.returncode == 5, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"zsrc needs `send,hold` on {home}: zfs allow -u zsrc send,hold {home}" in done.stderr
    check = zsrc("allow", "--role", "push-source", "--user", "zsrc", pools.src, "--check",
                 check=False)  # fmt: skip
    assert check.returncode == 5 and "lacks `hold`" in check.stderr
    zfs("allow", "-u", "zsrc", "hold", pools.src)
    assert zsrc("send", home, *target).returncode == 0
    assert own(snapshot_guids(f"{laptop}/home")) == own(snapshot_guids(home))
    ok = zsrc("allow", "--role", "push-source", "--user", "zsrc", pools.src, "--check")
    assert "holds every permission" in ok.stdout


def writable(root: str) -> list[str]:
    """The datasets under `root` (filesystems and volumes) whose readonly is not on."""
    rows = zfs("list", "-H", "-o", "name,readonly", "-t", "filesystem,volume", "-r", root)
    return [row.split("\t")[0] for row in rows.splitlines() if not row.endswith("\ton")]


OLD_RECEIVE_SET = "receive,create,mount,canmount,userprop"  # `zmake allow` before issue 23


def test_zfs_skips_a_received_property_it_may_not_set_and_exits_0(pools) -> None:
    """CONTROL for issue 23: as zrecv with the old receive set, `zfs recv -o readonly=on -o
    mountpoint=…` succeeds with neither applied; one stderr line each. With `zmake allow`'s
    set both are applied."""
    made = f"{pools.src}/c"
    zfs("create", made)
    zfs("snapshot", f"{made}@s1")
    for dest, grant in ((f"{pools.dst}/old", OLD_RECEIVE_SET), (f"{pools.dst}/new", None)):
        if grant is None:
            allow("--role", "receive", "--user", "zrecv", dest)
        else:
            zfs("create", dest)
            zfs("allow", "-u", "zrecv", grant, dest)
        recv = ["zfs", "recv", "-u", "-o", "canmount=noauto", "-o", "mountpoint=/tmp/zmake-x",
                "-o", "readonly=on", f"{dest}/c"]  # fmt: skip
        done = pipe(["zfs", "send", f"{made}@s1"], ["runuser", "-u", "zrecv", "--", *recv])
        assert done.ok, done.describe()  # exit 0 either way
        applied = [prop(f"{dest}/c", p) for p in ("readonly", "mountpoint")]
        if grant is None:
            assert applied == ["on", "/tmp/zmake-x"] and done.stages[-1].stderr == ""
            continue
        assert sorted(done.stages[-1].stderr.splitlines()) == [
            f"cannot receive {p} property on {dest}/c: permission denied"
            for p in ("mountpoint", "readonly")
        ]
        assert applied == ["off", "none"]
        assert source_of(f"{dest}/c", "readonly") == "default"
        assert source_of(f"{dest}/c", "mountpoint") == f"inherited from {pools.dst}"


def test_a_backup_received_writable_is_not_up_to_date(pools, laptop) -> None:
    """Without `readonly` zfs receives the backup writable and exits 0: zmake reports it, one
    line with the fix, exit 5 — on the receive, and on a later run with nothing to send —
    until it is read-only."""
    new = f"{pools.src}/new"
    zfs("create", new)
    zfs("snapshot", f"{new}@zmake-1")
    allow("--role", "push-source", "--user", "zsrc", pools.src)
    zfs("unallow", "-u", "zrecv", "readonly", laptop)
    zsrc = AsUser("zsrc", "writable")
    target = ["--remote", f"zrecv@{USERS_HOST}", "--ssh", zsrc.ssh, "--dest", laptop]
    backup = f"{laptop}/new"
    done = zsrc("send", new, *target, check=False)
    assert done.returncode == 5 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr == (
        f"zmake: {new}: {backup} was received writable (readonly=off): zrecv lacks the "
        f"`readonly` permission there: zfs allow -u zrecv readonly {laptop}; the next receive "
        f"sets it (or now: zfs set readonly=on {backup})\n"
    )
    assert prop(backup, "readonly") == "off"
    assert own(snapshot_guids(backup)) == own(snapshot_guids(new))  # the data is there
    zrecv = AsUser("zrecv", "writable")
    check = zrecv("allow", "--role", "receive", "--user", "zrecv", laptop, "--check",
                  check=False)  # fmt: skip
    assert check.returncode == 5 and "lacks `readonly`" in check.stderr

    zfs("allow", "-u", "zrecv", "readonly", laptop)  # granted: nothing to send, still writable
    again = zsrc("send", new, *target, check=False)
    assert again.returncode == 5, again.stderr
    assert f"{backup} is writable (readonly=off)" in again.stderr
    assert f"zfs set readonly=on {backup}" in again.stderr
    pipe(["runuser", "-u", "zrecv", "--", "zfs", "set", "readonly=on", backup])  # the fix
    fixed = zsrc("send", new, *target, check=False)
    assert fixed.returncode == 0 and "up to date" in fixed.stdout, fixed.stderr


def own(guids: dict[str, int]) -> dict[str, int]:
    """A dataset's own snapshots (snapshot_guids lists its children's too)."""
    return {k: v for k, v in guids.items() if k.startswith("@")}


def test_pull_as_unprivileged_users_on_both_sides(pools, tree, laptop) -> None:
    """The backup host pulls: zrecv runs zmake there; the source gives zsrc `pull-source`
    only; zsrc's PATH has no zfs (zmake finds it in sbin)."""
    allow("--role", "pull-source", "--user", "zsrc", pools.src, "--prune")
    zrecv = AsUser("zrecv", "pull")
    source = ["--source", f"zsrc@{USERS_HOST}", "--ssh", zrecv.ssh, "--dest", laptop]
    full_then_incremental(zrecv, pools.src, laptop, [*source, "--compress", "zstd"], tree[1:4],
                          "--prune", "--keep", "1")  # fmt: skip
    newest = {k: v for k, v in snapshot_guids(pools.src).items() if "zmake-one" not in k}
    assert newest and newest.items() <= snapshot_guids(laptop).items()
    assert not exists(f"{pools.src}/home@zmake-one")  # the source pruned, through zsrc
    assert writable(laptop) == []
    marks = zfs("list", "-H", "-o", "name", "-t", "bookmark", "-r", pools.src).split("\n")
    assert len([m for m in marks if "#zmake-" in m]) == len(tree)  # one per dataset


def test_pull_resumes_a_partial_receive_unprivileged(pools, laptop) -> None:
    big = f"{pools.src}/big"
    zfs("create", "-o", f"mountpoint=/tmp/{pools.src}-big", big)
    fill(big, 0.5)
    zfs("snapshot", f"{big}@zmake-r0")
    allow("--role", "pull-source", "--user", "zsrc", pools.src)
    zrecv = AsUser("zrecv", "pull-resume")
    source = ["--source", f"zsrc@{USERS_HOST}", "--ssh", zrecv.ssh, "--dest", laptop]
    zrecv("send", big, *source)
    fill(big, 2)
    zfs("snapshot", f"{big}@zmake-r1")
    partial_receive(f"{big}@zmake-r1", f"{laptop}/big", f"{big}@zmake-r0")
    done = zrecv("send", big, *source, check=False)
    assert done.returncode == 0, done.stderr
    assert "resume" in done.stdout
    assert snapshot_guids(f"{laptop}/big") == snapshot_guids(big)


def test_pull_of_sixteen_datasets_at_j4_opens_at_most_five_connections(pools, laptop) -> None:
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    for n in range(16):
        name = f"{pools.src}/d{n:02d}{' x' if n % 5 == 0 else ''}"
        zfs("create", name)
        fill(name, 0.05)
    zfs("snapshot", "-r", f"{pools.src}@zmake-flat")
    allow("--role", "pull-source", "--user", "zsrc", pools.src)
    zrecv = AsUser("zrecv", "flat")
    before = sshd_logins("zsrc")
    done = zrecv("backup", pools.src, "--source", f"zsrc@{USERS_HOST}", "--ssh", zrecv.ssh,
                 "--dest", laptop, "-j", "4", "--yes", check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    opened = sshd_logins("zsrc") - before
    assert opened <= 5, f"{opened} connections to the source for 16 datasets at -j4"
    assert snapshot_guids(laptop) == snapshot_guids(pools.src)


def test_a_third_machine_relays_from_source_to_backup(pools, tree, laptop) -> None:
    """--source and --remote together: this machine (root here) runs make, the stream goes
    source → here → backup, each side as its unprivileged user."""
    allow("--role", "pull-source", "--user", "zsrc", pools.src)
    zsrc = AsUser("zsrc", "relay")  # any user with a key both accept
    ssh = f"ssh -F {zsrc.home}/.ssh/config"
    done = zsrc("backup", pools.src, "--source", f"zsrc@{USERS_HOST}", "--remote",
                f"zrecv@{USERS_HOST}", "--ssh", ssh, "--dest", laptop, "--compress", "zstd",
                "-j", "4", "--yes", check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_guids(laptop) == snapshot_guids(pools.src)
