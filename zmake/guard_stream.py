"""What `zmake serve` lets a restricted key's stream be: checked on the stream's own first
records (stream_header.py), because ZFS decides from them, not from the receive's options, what
a receive does. The client's argv says a filesystem or a volume, and `-F` or not; the stream
must agree:

- its dataset is of the kind the receive was shaped for (`canmount=noauto` for a filesystem),
  so a volume-shaped receive cannot take a filesystem whose stream sets canmount and mountpoint;
- no replication package (`send -R`: libzfs destroys, renames and rolls back what is under the
  target and not in it), no properties of its own (`send -p`/`-b`), no clone of a snapshot
  found by guid elsewhere in the pool; an incremental package of one dataset (`send -I`) is
  zmake's own and passes;
- with `-F` (over a placeholder only, guard.py), nothing but a full stream of one dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zmake.commands import Argv
from zmake.guard_probe import require
from zmake.stream_header import FLAG_CLONE, StreamHead

# What a package's per-dataset entry may hold: names, snapshot lists, encryption data.
# `props`, `snapprops`, `snapholds` (send -p, -b, -h) and anything unknown are refused.
PACKAGE_ENTRY_KEYS = frozenset({"name", "parentfromsnap", "snaps", "origin", "is_encroot",
                                "crypt_keydata", "snapprops_absent"})  # fmt: skip
PACKAGE_KEYS = frozenset({"fromsnap", "tosnap", "not_recursive", "fss", "raw"})


@dataclass(frozen=True)
class Expected:
    kind: str  # "filesystem" or "volume": the receive's shape
    full_only: bool  # -F


def expected(stages: Sequence[Argv]) -> Expected | None:
    """What a receive pipeline's stream must be; None for anything that reads no stream."""
    recv = stages[-1]
    if recv[:2] != ["zfs", "recv"] or "-A" in recv:
        return None
    return Expected("filesystem" if "canmount=noauto" in recv else "volume", "-F" in recv)


def check_head(want: Expected, head: StreamHead) -> None:
    stream = head.substream
    found = stream.kind or "unknown"
    require(stream.kind == want.kind, f"a {found} stream into a receive for a {want.kind}")
    require(not stream.flags & FLAG_CLONE, "a clone stream")
    if head.package is not None:
        package = head.package
        require("not_recursive" in package, "a replication stream (send -R)")
        unknown = sorted(set(package) - PACKAGE_KEYS)
        require(not unknown, f"a package with {unknown}")
        entries = package.get("fss")
        require(isinstance(entries, dict) and len(entries) == 1, "a package of several datasets")
        assert isinstance(entries, dict)
        for entry in entries.values():
            require(isinstance(entry, dict), "a malformed package")
            assert isinstance(entry, dict)
            extra = set(entry) - PACKAGE_ENTRY_KEYS
            require(not extra, f"a stream with {sorted(extra)} of its own (send -p)")
    if want.full_only:
        require(head.package is None and stream.fromguid == 0,
                "-F takes only a full stream of one dataset")  # fmt: skip
