"""No root anywhere (issue 14): push and pull as unprivileged users, with only what
`zmake allow` sets up, on real OpenZFS through a real sshd.

zsrc owns the source side, zrecv the backup side (guest-init.sh makes both, and a sshd on
127.0.0.2 for them). zsrc's remote PATH has no zfs, as on hosts where it lives in sbin."""

from __future__ import annotations

import pytest

from tests.realzfs.support import (
    USERS_HOST,
    AsUser,
    allow,
    encrypted_tree,
    exists,
    fill,
    full_then_incremental,
    interrupted_send,
    prop,
    snapshot_guids,
    sshd_logins,
    zfs,
)
from tests.realzfs.test_send import partial_receive


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
