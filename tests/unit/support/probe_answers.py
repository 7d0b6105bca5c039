"""What serve's probe reads on its own side, answered in-process (the guard's unit tests):
a fake of those ZFS answers, and how a test passes a command through the guard or sees it
refused. The fake `zfs` program of the other unit tests is fake_zfs.py."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import pytest
from hypothesis import strategies as st

from zmake.core.token import ResumeToken
from zmake.guard.pipeline import Policy, Probe, Refusal, check, parse
from zmake.sides import zfs_argv
from zmake.sides.side import ssh_argv
from zmake.sides.zfs_argv import Argv

ROOT = "backup/lap top:1"
SOURCE = "tank/da ta:x"
COMPONENT = st.text("abcXYZ019_.: -%", min_size=1, max_size=12).filter(
    lambda c: c.strip(" ") == c and c not in (".", "..")
)
NAMES_UNDER = st.lists(COMPONENT, min_size=0, max_size=3).map(lambda parts: "/".join(parts))


def under(root: str, rest: str) -> str:
    return f"{root}/{rest}" if rest else root


SNAPSHOTS = (("zmake-1", 5, 5, 0), ("zmake-2", 7, 7, 0))  # short, guid, createtxg, userrefs
BOOKMARKS = (("zmake-nas.00ff-5", 5, 5), ("zmake-nas.00ff-7", 7, 7))  # short, guid, createtxg


class ProbeAnswers:
    """What serve's probe reads on its side (FACTS_PROPS and the placeholder mark, as `zfs
    list/get -H -p` print them): every dataset exists with SNAPSHOTS and BOOKMARKS unless told
    otherwise; a dataset in `missing` is not listed (zfs says nothing on stdout)."""

    def __init__(
        self,
        encrypted: Collection[str] = (),
        placeholders: Collection[str] = (),
        snapshots: Sequence[tuple[str, int, int, int]] = SNAPSHOTS,
        bookmarks: Sequence[tuple[str, int, int]] = BOOKMARKS,
        missing: Collection[str] = (),
        token: str = "-",
        mark_source: str = "local",
        resolve: Callable[[ResumeToken], str] | None = None,
    ) -> None:
        self.encrypted, self.placeholders, self.missing = encrypted, placeholders, missing
        self.snapshots, self.bookmarks, self.token = snapshots, bookmarks, token
        self.mark_source = mark_source
        # what `zfs send -nvP -t` names: by default the snapshot of that guid in `toname`'s
        # dataset (as ZFS finds it), else nothing
        self.resolve = resolve or self.by_guid
        self.asked: list[Argv] = []

    def by_guid(self, token: ResumeToken) -> str:
        dataset = token.toname.partition("@")[0]
        found = [s for s, guid, _, _ in self.snapshots if guid == token.toguid]
        return f"{dataset}@{found[0]}" if found and dataset not in self.missing else ""

    def __call__(self, argv: Argv) -> str:
        self.asked.append(argv)
        name = argv[-1]
        if argv[:6] == ["zfs", "send", "-n", "-v", "-P", "-t"]:
            from zmake.core.token import decode

            sent = self.resolve(decode(name))
            return f"full\t{sent}\t1024\nsize\t1024\n" if sent else ""
        if name in self.missing:
            return ""
        if argv == zfs_argv.mark_argv(name):
            mark = (name, self.mark_source) if name in self.placeholders else ("-", "-")
            return f"zmake:placeholder\t{mark[0]}\t{mark[1]}\nreferenced\t49152\t-\n"
        assert argv == zfs_argv.facts_argv(name), argv
        enc = "aes-256-gcm" if name in self.encrypted else "off"
        rows = [f"{name}\tfilesystem\t1\t1\t-\t{enc}\t{self.token}"]
        if name not in self.placeholders:
            for s, g, t, u in self.snapshots:
                rows.append(f"{name}@{s}\tsnapshot\t{g}\t{t}\t{u}\t{enc}\t-")
            rows += [f"{name}#{s}\tbookmark\t{g}\t{t}\t-\t-\t-" for s, g, t in self.bookmarks]
        rows.append(f"{name}/child\tfilesystem\t2\t2\t-\toff\t-")  # -d 1 lists children too
        return "\n".join(rows) + "\n"


def wire(stages: list[Argv]) -> str:
    """The command as sshd hands it to serve: what ssh_argv puts on the ssh command line."""
    return ssh_argv("ssh", "host", stages)[-1]


def passes(policy: Policy, stages: list[Argv], zfs: ProbeAnswers | None = None) -> list[Argv]:
    return check(policy, parse(wire(stages)), Probe(zfs or ProbeAnswers()))


def refused(policy: Policy, text: str, zfs: ProbeAnswers | None = None) -> str:
    with pytest.raises(Refusal) as caught:
        check(policy, parse(text), Probe(zfs or ProbeAnswers()))
    return str(caught.value)
