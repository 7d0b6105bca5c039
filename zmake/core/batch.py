"""Small datasets sent by one process: the Makefile's batches. Pure: no processes.

On a typical night most datasets have little to send, and each `zmake send` costs an
interpreter's start, a read of each side and a lock, which can outweigh the data. Siblings
that nothing else waits for in between (leaves of the DAG with one and the same dependent)
and that are expected to send little are grouped: one recipe, one `zmake send A B C`, one
read of each side for all of them. A batch holds at most MOST_PER_BATCH datasets, and a
group is cut into at least `least` batches (when it is that large) so that every job that
can send for it still has work: LEAST_BATCHES for a backup's own `make -jN`; a fleet's
source, which sends at most `host-streams` at once, that many. A group smaller than that is
not batched at all."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from zmake.core.names import encode
from zmake.core.plan import Node, Plan

SMALL_BYTES = 1 << 20  # expected to send at most this: a process of its own costs more
MOST_PER_BATCH = 16
LEAST_BATCHES = 16


@dataclass(frozen=True)
class Batch:
    nodes: tuple[Node, ...]  # one node: a dataset of its own

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(node.dataset.name for node in self.nodes)

    @property
    def prerequisites(self) -> tuple[str, ...]:
        return self.nodes[0].prerequisites  # batched nodes have none

    @property
    def stamp(self) -> str:
        """Its stamp file: a node's own (encoded name and newest guid, so a new snapshot is
        never mistaken for one sent), or a batch's, named by all of its members' stamps."""
        if len(self.nodes) == 1:
            return stamp_name(self.nodes[0])
        digest = hashlib.sha256("\n".join(stamp_name(n) for n in self.nodes).encode())
        return f"batch@{digest.hexdigest()[:24]}"


def stamp_name(node: Node) -> str:
    newest = node.dataset.newest
    return f"{encode(node.dataset.name)}@{newest.guid if newest else 'none'}"


def batches(plan: Plan, least: int = LEAST_BATCHES) -> tuple[Batch, ...]:
    """The plan's nodes in batches, in plan order (a batch where its first member was).
    Members have no prerequisites, so no member can wait for another: the DAG stays one."""
    dependent: dict[str, str] = {}
    for node in plan.nodes:
        for prerequisite in node.prerequisites:
            dependent[prerequisite] = node.dataset.name
    groups: dict[str | None, list[Node]] = {}
    for node in plan.nodes:
        if not node.prerequisites and node.expected_bytes <= SMALL_BYTES:
            groups.setdefault(dependent.get(node.dataset.name), []).append(node)
    cut: dict[str, tuple[Node, ...]] = {}
    for members in groups.values():
        for chunk in chunks(members, least):
            for node in chunk:
                cut[node.dataset.name] = chunk
    placed: set[str] = set()
    result = []
    for node in plan.nodes:  # a batch where its first member is in the plan's order
        chunk = cut.get(node.dataset.name, (node,))
        if chunk[0].dataset.name not in placed:
            placed.add(chunk[0].dataset.name)
            result.append(Batch(chunk))
    return tuple(result)


def chunks(members: Sequence[Node], least: int = LEAST_BATCHES) -> list[tuple[Node, ...]]:
    """Cut by name, not size: a dataset that grows does not move the others to other batches
    (whose stamps would change, and whose datasets would be asked again)."""
    size = min(MOST_PER_BATCH, -(-len(members) // max(1, least)))
    ordered = sorted(members, key=lambda node: node.dataset.name)
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


def stamps_of(plan: Plan, least: int = LEAST_BATCHES) -> dict[str, str]:
    """Each dataset's make target: the stamp of the batch it is in."""
    return {name: batch.stamp for batch in batches(plan, least) for name in batch.names}
