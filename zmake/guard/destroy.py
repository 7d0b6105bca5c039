"""What `zmake serve` lets a restricted key destroy or bookmark: exactly what `zmake prune` and
zmake's bookmarks would, checked against what ZFS says on serve's own side.

- Snapshots (`--allow-prune` only): zmake's own (`zmake-…`), named one by one (no `%` range),
  never held, never the newest zmake snapshot, never what a partial receive into the dataset
  needs; on a backup never its newest snapshot (the next incremental's base); on a source never
  the snapshot this key's own bookmark marks (its target's base).
- Bookmarks (a pull key's source side): only with the key's `--target LABEL`, and only its own:
  `DATASET#zmake-LABEL.KEY-TXG`. serve names the bookmarks it makes so (a client asks for
  `zmake-KEY-TXG`), and destroys one only when a newer one of the same target exists. Another
  target's bookmarks — its incremental base once the source prunes — are out of reach."""

from __future__ import annotations

import re

from zmake.core.model import BOOKMARK_PREFIX, Argv
from zmake.core.prunable import OWNED_PREFIX
from zmake.guard.probe import Facts, Point, Probe, require
from zmake.sides import zfs_argv

MARK = re.compile(
    rf"{BOOKMARK_PREFIX}(?:(?P<label>[A-Za-z0-9_-]+)\.)?(?P<key>[0-9a-f]+)-(?P<txg>\d+)"
)


def check_destroy_snapshots(
    argv: Argv, role: str, allow_prune: bool, target: str | None, probe: Probe
) -> Argv:
    dataset, _, shorts_text = argv[2].partition("@")
    shorts = shorts_text.split(",")
    require(argv == zfs_argv.destroy_snapshots_argv(dataset, shorts),
            "zfs destroy of anything but snapshots")  # fmt: skip
    require(allow_prune, "zfs destroy needs --allow-prune")
    require(not any("%" in short for short in shorts), "a range of snapshots (%)")
    require(len(set(shorts)) == len(shorts), "a snapshot named twice")
    require(all(s.startswith(OWNED_PREFIX) for s in shorts), "a snapshot that is not zmake's")
    facts = probe.facts(dataset)
    kept = protected(facts, role, target, probe)
    for short in shorts:
        snapshot = facts.snapshot(f"{dataset}@{short}")
        require(snapshot is not None, f"{dataset}@{short} does not exist")
        assert snapshot is not None
        require(snapshot.userrefs == 0, f"{snapshot.name} is held")
        why = kept.get(snapshot.guid)
        require(why is None, f"{snapshot.name}: {why}")
    return argv


def protected(facts: Facts, role: str, target: str | None, probe: Probe) -> dict[int, str]:
    """guid → why a snapshot of this dataset must stay, whatever the client asks."""
    kept: dict[int, str] = {}
    owned = [s for s in facts.snapshots if s.name.partition("@")[2].startswith(OWNED_PREFIX)]
    for guid in probe.needed_by_token(facts):
        kept[guid] = "a partial receive needs it"
    if role == "receive" and facts.snapshots:
        kept[facts.snapshots[-1].guid] = "the backup's newest snapshot (the next base)"
    if role == "send" and target is not None:
        for mark in newest_own_bookmarks(facts, target):
            kept[mark.guid] = "this target's incremental base"
    if owned:
        kept[owned[-1].guid] = "the newest zmake snapshot"
    return kept


def newest_own_bookmarks(facts: Facts, target: str) -> list[Point]:
    """Per key of this target (one per backup dataset), its newest bookmark."""
    newest: dict[str, Point] = {}
    for mark in facts.bookmarks:
        found = MARK.fullmatch(mark.name.partition("#")[2])
        if found is not None and found["label"] == target:
            known = newest.get(found["key"])
            if known is None or mark.createtxg > known.createtxg:
                newest[found["key"]] = mark
    return list(newest.values())


def check_bookmark(argv: Argv, target: str | None, within: bool, probe: Probe) -> Argv:
    """`zfs bookmark SNAP DATASET#zmake-KEY-TXG`, made as this target's (LABEL.KEY) — never
    under a key that another label, or a push (no label), already uses on the dataset."""
    snapshot, mark = argv[2], argv[3]
    require(argv == zfs_argv.bookmark_argv(snapshot, mark), "not zmake's bookmark")
    dataset, short = mark.partition("#")[0], mark.partition("#")[2]
    found = MARK.fullmatch(short)
    require(within and dataset == snapshot.partition("@")[0] and "@" in snapshot
            and found is not None, "not a zmake bookmark of a snapshot in the tree")  # fmt: skip
    assert found is not None
    require(target is not None, "bookmarks need the key's --target (zmake allow --role "
            "pull-source … --target NAME)")  # fmt: skip
    require(found["label"] in (None, target), "another target's bookmark")
    for existing in probe.facts(dataset).bookmarks:
        other = MARK.fullmatch(existing.name.partition("#")[2])
        require(other is None or other["key"] != found["key"] or other["label"] == target,
                f"key {found['key']} is another target's ({existing.name})")  # fmt: skip
    own = f"{dataset}#{BOOKMARK_PREFIX}{target}.{found['key']}-{found['txg']}"
    return zfs_argv.bookmark_argv(snapshot, own)


def check_destroy_bookmark(argv: Argv, target: str | None, probe: Probe) -> Argv:
    """One of this target's bookmarks, and only once a newer one of the same key exists."""
    mark = argv[2]
    require(argv == zfs_argv.destroy_bookmark_argv(mark), "not zmake's")
    found = MARK.fullmatch(mark.partition("#")[2])
    require(found is not None, "not a zmake bookmark")
    assert found is not None
    require(target is not None and found["label"] == target, "not this target's bookmark")
    facts = probe.facts(mark.partition("#")[0])
    same = [m for m in facts.bookmarks if same_key(m.name, mark)]
    this = next((m for m in same if m.name == mark), None)
    require(this is not None, f"{mark} does not exist")
    assert this is not None
    require(any(m.createtxg > this.createtxg for m in same),
            f"{mark} is this target's newest bookmark")  # fmt: skip
    return argv


def same_key(one: str, other: str) -> bool:
    a, b = MARK.fullmatch(one.partition("#")[2]), MARK.fullmatch(other.partition("#")[2])
    return a is not None and b is not None and (a["label"], a["key"]) == (b["label"], b["key"])
