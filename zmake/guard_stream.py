"""What `zmake serve` lets a restricted key's stream be: checked on the stream's own first
records (stream_header.py), because ZFS decides from them, not from the receive's options, what
a receive does. The client's argv says a filesystem or a volume, and `-F` or not; the stream
must agree:

- its dataset is of the kind the receive was shaped for (`canmount=noauto` for a filesystem),
  so a volume-shaped receive cannot take a filesystem whose stream sets canmount and mountpoint;
- no package with a header nvlist: a replication stream (`send -R`: with -F, libzfs destroys
  every dataset and snapshot under the target that the stream lacks), or one with properties
  of its own (`send -p`, `-b`) or holds (`-h`); zmake's own `send -I` is a package of one
  dataset with no header nvlist at all, and passes; no clone of a snapshot found by guid
  elsewhere in the pool;
- with `-F` (over a placeholder only, guard.py), nothing but a full stream of one dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zmake.commands import Argv
from zmake.guard_probe import require
from zmake.stream_header import FLAG_CLONE, StreamHead


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
    require(not head.first.payloadlen or not head.compound,
            "a package with a header of its own (send -R, -p, -b or -h)")  # fmt: skip
    stream = head.substream
    found = stream.kind or "unknown"
    require(stream.kind == want.kind, f"a {found} stream into a receive for a {want.kind}")
    require(not stream.flags & FLAG_CLONE, "a clone stream")
    if want.full_only:
        require(not head.compound and stream.fromguid == 0,
                "-F takes only a full stream of one dataset")  # fmt: skip
