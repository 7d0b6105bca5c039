"""zmake/sides/permissions.py: the permission sets, the hints, and reading `zfs allow DATASET`."""

from __future__ import annotations

import shlex

import pytest

from zmake.sides.permissions import effective, hint, needed, role_permissions, setup, writable_hint
from zmake.sides.zfs_argv import (
    abort_resume_argv,
    bookmark_argv,
    create_placeholder_argv,
    destroy_bookmark_argv,
    receive_argv,
    rollback_argv,
    unmark_placeholder_argv,
)

# `zfs allow pd/b/laptop` printed by OpenZFS 2.3.2 (tests/realzfs), after
#   zfs allow -s @recv receive,create,mount pd
#   zfs allow -d -g zrecv @recv pd;  zfs allow -e hold pd
#   zfs allow -l -u zrecv canmount pd/b/laptop;  zfs allow -u zrecv userprop pd/b/laptop
#   zfs allow -d -u zrecv destroy pd/b/laptop
SAMPLE = """\
---- Permissions on pd/b/laptop --------------------------------------
Local permissions:
\tuser zrecv canmount
Descendent permissions:
\tuser zrecv destroy
Local+Descendent permissions:
\tuser zrecv userprop
---- Permissions on pd -----------------------------------------------
Permission sets:
\t@recv create,mount,receive
Descendent permissions:
\tgroup zrecv @recv
Local+Descendent permissions:
\teveryone hold
"""


def test_effective_permissions_follow_local_descendent_sets_groups_and_everyone() -> None:
    laptop = effective(SAMPLE, "pd/b/laptop", "zrecv", ["zrecv"])
    assert laptop == {"canmount", "userprop", "create", "mount", "receive", "hold"}
    child = effective(SAMPLE, "pd/b/laptop/home", "zrecv", ["zrecv"])
    assert child == {"destroy", "userprop", "create", "mount", "receive", "hold"}
    assert effective(SAMPLE, "pd/b/laptop", "zrecv", []) == {"canmount", "userprop", "hold"}
    assert effective(SAMPLE, "pd/b/laptop", "someone", []) == {"hold"}
    assert effective(SAMPLE, "pd", "zrecv", ["zrecv"]) == {"hold"}  # descendent only below
    assert effective("", "pd", "zrecv", []) == set()


@pytest.mark.parametrize(
    ("argv", "perms", "dataset"),
    [
        (["zfs", "send", "-L", "-c", "tank/a b@s1"], ["send"], "tank/a b"),
        (["zfs", "send", "-L", "-c", "-I", "tank/a@1", "tank/a@2"], ["send", "hold"], "tank/a"),
        (["zfs", "send", "-w", "-i", "tank/a#m", "tank/a@2"], ["send"], "tank/a"),
        (["zfs", "recv", "-u", "-s", "-F", "b/l/a"], ["receive", "create", "mount"], "b/l/a"),
        (abort_resume_argv("b/l/a"), ["destroy", "mount"], "b/l/a"),
        (bookmark_argv("tank/a@2", "tank/a#zmake-k-2"), ["bookmark"], "tank/a"),
        (destroy_bookmark_argv("tank/a#zmake-k-1"), ["destroy"], "tank/a"),
        (["zfs", "destroy", "tank/a@x,y"], ["destroy", "mount"], "tank/a"),
        (["zfs", "snapshot", "-r", "tank@s"], ["snapshot"], "tank"),
        (rollback_argv("b/l/a@s"), ["rollback", "destroy", "mount"], "b/l/a"),
        (unmark_placeholder_argv("b/l"), ["userprop"], "b/l"),
        (create_placeholder_argv("b/l"), ["create", "mount", "canmount", "userprop"], "b/l"),
        (["/usr/sbin/zfs", "snapshot", "-r", "tank@s"], ["snapshot"], "tank"),
    ],
)
def test_what_each_command_needs(argv: list[str], perms: list[str], dataset: str) -> None:
    assert needed(argv) == (perms, dataset)
    assert hint(argv, "zsrc") == (
        f"zsrc needs `{','.join(perms)}` on {dataset}: "
        f"zfs allow -u zsrc {','.join(perms)} {dataset}"
    )


def test_unknown_commands_need_nothing_zmake_can_name() -> None:
    assert needed(["zfs", "list", "-H", "tank"]) is None
    assert needed(["ssh", "host", "zfs send x"]) is None
    assert "zmake allow" in hint(["zfs", "get", "all", "tank"], "u")
    assert hint(["zfs", "unmount", "b/l/a"], "zrecv") == "only root can unmount on Linux"


def test_each_role_holds_what_its_commands_need() -> None:
    """The sets printed by `zmake allow` cover every command of that side (the real-ZFS
    tier proves each set is enough; this keeps the tables consistent)."""
    source_commands = [
        ["zfs", "send", "-L", "-c", "-I", "t/a@1", "t/a@2"],
        bookmark_argv("t/a@2", "t/a#zmake-k-2"),
        destroy_bookmark_argv("t/a#zmake-k-1"),
        ["zfs", "snapshot", "-r", "t@s"],
    ]
    receive_commands = [
        ["zfs", "recv", "-u", "-s", "-F", "b/l"],
        receive_argv("b/l/x", mountpoint="/srv/x"),  # -o canmount, mountpoint, readonly
        [*receive_argv("b/l/x")[:-1], "-x", "mountpoint", "b/l/x"],  # as zmake serve runs it
        create_placeholder_argv("b/l/x"),
        unmark_placeholder_argv("b/l"),
    ]
    for role in ("push-source", "pull-source"):
        for argv in source_commands:
            assert set(needed(argv)[0]) <= set(role_permissions(role)), (role, argv)  # type: ignore[index]
        pruning = ["zfs", "destroy", "t/a@x,y"]
        assert not set(needed(pruning)[0]) <= set(role_permissions(role))  # type: ignore[index]
        assert set(needed(pruning)[0]) <= set(role_permissions(role, prune=True))  # type: ignore[index]
    for argv in receive_commands:
        assert set(needed(argv)[0]) <= set(role_permissions("receive")), argv  # type: ignore[index]
    assert "destroy" in role_permissions("receive", prune=True)
    assert {"rollback", "destroy"} <= set(role_permissions("receive", rollback=True))
    assert "mount" not in role_permissions("pull-source")  # destroy: bookmarks only


def test_setup_of_a_receiving_side() -> None:
    made = setup("receive", "zrecv", "backup/my laptop", zmake="/opt/zmake/bin/zmake")
    assert [shlex.join(argv) for argv in made.commands] == [
        "zfs create -o canmount=off -o 'zmake:placeholder=backup/my laptop' 'backup/my laptop'",
        "zfs allow -u zrecv receive,create,mount,canmount,userprop,readonly,mountpoint "
        "'backup/my laptop'",
    ]
    assert made.key_line == (
        "command=\"/opt/zmake/bin/zmake serve --receive-into 'backup/my laptop'\","
        "restrict THE-SOURCE-HOST-KEY"
    )
    existing = setup("receive", "zrecv", "b/l", dest_exists=True, prune=True)
    assert [argv[1] for argv in existing.commands] == ["allow"]
    pull = setup("pull-source", "zsrc", "tank")
    assert pull.commands == [["zfs", "allow", "-u", "zsrc", "send,hold,bookmark,destroy,snapshot",
                              "tank"]]  # fmt: skip
    assert pull.key_line is not None and "serve --send-from tank" in pull.key_line
    assert setup("push-source", "zsrc", "tank").key_line is None


def test_a_receive_needs_the_permission_of_each_property_it_sets() -> None:
    """zfs skips a `-o`/`-x` property the user may not set — one stderr line, exit 0 (real
    ZFS: test_least_privilege) — so each one zmake relies on is named, and in the role."""
    plain = receive_argv("b/l/vm", filesystem=False, readonly=False)
    assert needed(plain) == (["receive", "create", "mount"], "b/l/vm")
    assert needed(receive_argv("b/l/vm", filesystem=False)) == (
        ["receive", "create", "mount", "readonly"], "b/l/vm")  # fmt: skip
    kept = receive_argv("b/l/a", mountpoint="/srv/a b", force=True)
    assert needed(kept) == (
        ["receive", "create", "mount", "canmount", "readonly", "mountpoint"], "b/l/a")  # fmt: skip
    stripped = [*receive_argv("b/l/a", readonly=False)[:-1], "-x", "mountpoint", "b/l/a"]
    assert needed(stripped) == (["receive", "create", "mount", "canmount", "mountpoint"], "b/l/a")
    assert {"canmount", "readonly", "mountpoint"} <= set(role_permissions("receive"))
    assert not {"readonly", "mountpoint"} & set(role_permissions("push-source", prune=True))


def test_a_writable_backup_names_the_cause_and_the_fix() -> None:
    received = writable_hint("zrecv", "b/l/a b", "b/l", received=True)
    assert received == (
        "b/l/a b was received writable (readonly=off): zrecv lacks the `readonly` permission "
        "there: zfs allow -u zrecv readonly b/l; the next receive sets it (or now: "
        "zfs set readonly=on b/l/a b)"
    )
    found = writable_hint("<the ssh user>", "b/l/a", "b/l", received=False)
    assert found.startswith("b/l/a is writable (readonly=off): ")
    assert found.endswith(
        "zfs set readonly=on b/l/a (and zfs allow -u <the ssh user> readonly b/l)"
    )
    assert "\n" not in received + found
