"""What `zmake serve` lets a restricted key's stream be: checked on the stream's own first
records (core/stream_header.py), because ZFS decides from them, not from the receive's options, what
a receive does. The client's argv says a filesystem or a volume, and `-F` or not; the stream
must agree:

- its dataset is of the kind the receive was shaped for (`canmount=noauto` for a filesystem),
  so a volume-shaped receive cannot take a filesystem whose stream sets canmount and mountpoint;
- one dataset's stream, never a package (a compound stream: `send -I`, `-R`, `-p`, `-b`,
  `-h`): libzfs receives every substream of a package, each named and shaped by the stream —
  new datasets under the target with properties of their own, nested packages, with -F the
  destruction of every backup under the target that a replication stream lacks — and only
  reading the whole stream could check them. zmake sends a range of snapshots through a
  restricted key one `-i` stream at a time (targets/pool/send.py);
  no clone of a snapshot found by guid
  elsewhere in the pool;
- with `-F` (over a placeholder only, guard/pipeline.py), nothing but a full stream of one
  dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zmake.core.model import Argv
from zmake.core.stream_header import COMPOUND, FLAG_CLONE, Begin
from zmake.guard.probe import require


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


PACKAGE_REFUSED = "a package of streams (send -I, -R, -p): one snapshot per stream here"


def check_head(want: Expected, stream: Begin) -> None:
    require(stream.hdrtype != COMPOUND, PACKAGE_REFUSED)
    found = stream.kind or "unknown"
    require(stream.kind == want.kind, f"a {found} stream into a receive for a {want.kind}")
    require(not stream.flags & FLAG_CLONE, "a clone stream")
    if want.full_only:
        require(stream.fromguid == 0, "-F takes only a full stream")
