"""Least privilege: the `zfs allow` permissions each side needs, found by trying every command
zmake runs as an unprivileged user on OpenZFS 2.3 (tests/realzfs/test_least_privilege.py keeps
them honest). Pure: `zmake allow` prints these, sides/stderr_errors.py names them when zfs says
"permission denied".

What the sets rely on (OpenZFS 2.3 on Linux):
- `zfs send -I` also needs `hold` (it holds the range while it sends); `zfs send -nvP` needs
  nothing; `-w` needs no more than `send`.
- `destroy` without `mount` destroys bookmarks only: snapshots need `destroy,mount`. So a
  source's key may tidy zmake's bookmarks and still cannot destroy data.
- `zfs recv` needs `receive,create,mount` to run at all, even with -F over a placeholder
  (OpenZFS #16943: -F replaces without `destroy`); `zmake serve` is what keeps a key from
  using -F anywhere else.
- But a property `zfs recv -o PROP=…` (or `-x PROP`) sets without PROP's own permission is
  skipped: `cannot receive PROP property on DS: permission denied` on stderr, exit 0 (OpenZFS
  2.3.2, as zrecv; `canmount`, for `-o canmount=noauto`, is in the set for placeholders
  anyway). So a receiving side also needs `readonly` — without it a backup is
  received writable (readonly=off, source default) and "backups are read-only" is false;
  targets/pool/send.py reads it back and reports such a backup as not up to date — and
  `mountpoint`: without it a
  source's locally set mountpoint is dropped (the backup inherits one), and serve's
  `-x mountpoint` says so on every receive (its result, inherited, is right either way).
  Only root mounts on Linux, and zmake's backups are unmounted and canmount=noauto; but with
  `mountpoint,canmount` a user *with a shell* chooses where root's `zfs mount -a` would mount
  a dataset of its own (a restricted key has no shell, and serve checks its mountpoints).
- Placeholders need `create,mount,canmount,userprop`; a rollback `rollback,destroy,mount`.
- Unmounting needs root on Linux whatever the delegation: zmake's backups are never mounted
  (`-u`, canmount=noauto), and an unprivileged `zmake umount` reports what it cannot unmount.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zmake.sides.zfs_argv import create_placeholder_argv

ROLES = ("push-source", "pull-source", "receive")
SOURCE = ("send", "hold", "bookmark", "destroy")  # destroy without mount: bookmarks only
ROLE_PERMISSIONS = {
    "push-source": (*SOURCE, "snapshot"),
    "pull-source": (*SOURCE, "snapshot"),
    "receive": ("receive", "create", "mount", "canmount", "userprop", "readonly", "mountpoint"),
}
PRUNE_PERMISSIONS = {
    "push-source": ("mount",),  # with destroy: snapshots too
    "pull-source": ("mount",),
    "receive": ("destroy",),  # receive already brings mount
}
ROLLBACK_PERMISSIONS = ("rollback", "destroy")


def role_permissions(role: str, *, prune: bool = False, rollback: bool = False) -> list[str]:
    perms = list(ROLE_PERMISSIONS[role])
    if prune:
        perms += PRUNE_PERMISSIONS[role]
    if rollback and role == "receive":
        perms += ROLLBACK_PERMISSIONS
    return list(dict.fromkeys(perms))


@dataclass(frozen=True)
class Setup:
    """What `zmake allow` prints: root's commands, and the authorized_keys line (a comment)."""

    commands: list[list[str]]
    key_line: str | None
    notes: list[str]


def setup(
    role: str,
    user: str,
    dataset: str,
    *,
    prune: bool = False,
    rollback: bool = False,
    zmake: str = "zmake",
    dest_exists: bool = False,
    target: str | None = None,
) -> Setup:
    perms = role_permissions(role, prune=prune, rollback=rollback)
    commands = []
    notes = []
    if role == "receive" and not dest_exists:
        # zmake could not create it without `create` on the parent (on every sibling too):
        # root makes it, as the placeholder zmake would, so the source's root can replace it.
        commands.append(create_placeholder_argv(dataset))
    commands.append(["zfs", "allow", "-u", user, ",".join(perms), dataset])
    key_line = None
    if role == "receive":
        serve = [*shlex.split(zmake), "serve", "--receive-into", dataset]
        key_line = f'command="{shlex.join(serve)}",restrict THE-SOURCE-HOST-KEY'
        notes.append("backups are received unmounted; only root can mount or unmount on Linux")
        if prune or rollback:
            notes.append(
                f"{user} may prune/roll back here (e.g. a cron job: zmake prune --keep N ...); "
                "the key stays append-only unless you add --allow-prune/--allow-rollback to it"
            )
    elif role == "pull-source":
        import secrets

        label = target or secrets.token_hex(4)  # distinct per key: no key reaches another's
        serve = [*shlex.split(zmake), "serve", "--send-from", dataset, "--target", label]
        key_line = f'command="{shlex.join(serve)}",restrict THE-BACKUP-HOST-KEY'
    if role != "receive" and not prune:
        notes.append("without --prune this user cannot destroy snapshots (bookmarks only)")
    return Setup(commands, key_line, notes)


# --- what one command needs -----------------------------------------------------------------

NEEDS = {
    "snapshot": ("snapshot",),
    "bookmark": ("bookmark",),
    "rollback": (*ROLLBACK_PERMISSIONS, "mount"),
    "inherit": ("userprop",),
    "create": ("create", "mount", "canmount", "userprop"),
    "unmount": ("root",),
}


def needed(argv: Sequence[str]) -> tuple[list[str], str] | None:
    """(permissions, dataset) that the zfs command `argv` needs, or None when unknown."""
    if len(argv) < 3 or not argv[0].endswith("zfs"):
        return None
    verb, target = argv[1], argv[-1]
    dataset = re.split(r"[@#]", target)[0]
    if verb in ("recv", "receive"):
        if "-A" in argv:  # aborting a partial receive destroys its saved state
            return ["destroy", "mount"], dataset
        return ["receive", "create", "mount", *received_properties(argv)], dataset
    if verb == "send":
        perms = ["send", "hold"] if "-I" in argv else ["send"]
        return perms, dataset
    if verb == "destroy":
        return (["destroy"] if "#" in target else ["destroy", "mount"]), dataset
    if verb in NEEDS:
        return list(NEEDS[verb]), dataset
    return None


def received_properties(argv: Sequence[str]) -> list[str]:
    """The properties of zmake's (`-o P=V`, `-x P`) that a receive sets only with their own
    permission (zfs skips them otherwise, and exits 0)."""
    pairs = itertools.pairwise(argv)
    named = {value.partition("=")[0] for flag, value in pairs if flag in ("-o", "-x")}
    return [prop for prop in ("canmount", "readonly", "mountpoint") if prop in named]


def writable_hint(user: str, backup: str, dest: str, *, received: bool) -> str:
    """Why a backup zmake receives read-only is writable, and the fix, in one line."""
    grant = f"zfs allow -u {user} readonly {dest}"
    if received:  # it was just asked for (-o readonly=on): only the permission is missing
        return (
            f"{backup} was received writable (readonly=off): {user} lacks the `readonly` "
            f"permission there: {grant}; the next receive sets it (or now: zfs set readonly=on "
            f"{backup})"
        )
    return (
        f"{backup} is writable (readonly=off): received without the `readonly` permission, "
        f"with --no-readonly, or changed since: zfs set readonly=on {backup} (and {grant})"
    )


def hint(argv: Sequence[str], user: str) -> str:
    """One line naming the permission missing and the command that grants it."""
    found = needed(argv)
    if found is None:
        return "see `zmake allow --help` for the permissions each side needs"
    perms, dataset = found
    if perms == ["root"]:
        return "only root can unmount on Linux"
    return (
        f"{user} needs `{','.join(perms)}` on {dataset}: "
        f"zfs allow -u {user} {','.join(perms)} {dataset}"
    )


# --- zmake allow --check: parse `zfs allow DATASET` ------------------------------------------

SECTION = re.compile(r"^---- Permissions on (.+?) -+$")
KIND = re.compile(r"^(Local|Descendent|Local\+Descendent|Create time) permissions:$")
ENTRY = re.compile(r"^\s+(?:(user|group) (\S+)|(everyone)) (\S+)$")
SET = re.compile(r"^\s+(@\S+) (\S+)$")


def effective(text: str, dataset: str, user: str, groups: Iterable[str]) -> set[str]:
    """The permissions `user` (in `groups`) holds on `dataset`, from `zfs allow DATASET`
    (which lists the dataset's own and its ancestors' delegations)."""
    mine: set[str] = set()
    sets: dict[str, list[str]] = {}
    on, kind = "", ""
    member = set(groups)
    for line in text.splitlines():
        if (section := SECTION.match(line)) is not None:
            on, kind = section.group(1), ""
        elif (kinds := KIND.match(line)) is not None:
            kind = kinds.group(1)
        elif kind == "" and (named := SET.match(line)) is not None:
            sets[named.group(1)] = named.group(2).split(",")
        elif (entry := ENTRY.match(line)) is not None and applies(kind, on, dataset):
            who_kind, who, everyone, perms = entry.groups()
            if (
                everyone
                or (who_kind == "user" and who == user)
                or (who_kind == "group" and who in member)
            ):
                mine.update(perms.split(","))
    for name in [p for p in mine if p.startswith("@")]:
        mine.discard(name)
        mine.update(sets.get(name, []))
    return mine


def applies(kind: str, on: str, dataset: str) -> bool:
    if kind == "Create time" or not kind:
        return False
    if on == dataset:
        return kind in ("Local", "Local+Descendent")
    return dataset.startswith(on + "/") and kind in ("Descendent", "Local+Descendent")
