"""Selection and the dataset DAG. Pure: no processes.

Each selected dataset is a node; its prerequisites are its nearest selected descendants
(children before parents), ordered by the bytes their subtrees are expected to send, largest
first, because make starts prerequisites in the order they are listed.

One exception: below an encrypted dataset the edge is reversed (parent first). A child sent
first makes `zfs recv -d` create an unencrypted placeholder parent, and ZFS refuses to receive
an encrypted (raw) stream over an unencrypted dataset, so that parent could never be sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from zmake.core.decide import incremental_base
from zmake.core.errors import UsageError
from zmake.core.model import BackupDataset, Dataset, Inventory, is_within, parent_of


@dataclass(frozen=True)
class Selection:
    """What a run backs up: datasets under `roots`, minus those matching an `exclude` glob.
    Excluding a dataset does not exclude its children: write `pool/tmp*` for that."""

    roots: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    def __contains__(self, name: object) -> bool:
        return (
            isinstance(name, str)
            and any(is_within(name, root) for root in self.roots)
            and not any(fnmatchcase(name, pattern) for pattern in self.exclude)
        )


@dataclass(frozen=True)
class Node:
    dataset: Dataset
    expected_bytes: int  # what this dataset alone is expected to send
    subtree_bytes: int  # itself plus every selected descendant
    prerequisites: tuple[str, ...]  # what must be sent before this, largest subtree first


@dataclass(frozen=True)
class Plan:
    nodes: tuple[Node, ...]  # in the order make -j1 sends them (every prerequisite first)
    roots: tuple[str, ...]  # what nothing else depends on: the goals of `all`, largest first

    @property
    def total_bytes(self) -> int:
        return sum(node.expected_bytes for node in self.nodes)


def top_roots(roots: Iterable[str]) -> tuple[str, ...]:
    """The roots no other root contains, in order: what one recursive read must name."""
    listed = list(dict.fromkeys(roots))
    return tuple(r for r in listed if not any(r != o and is_within(r, o) for o in listed))


def select(inventory: Inventory, roots: Sequence[str], excludes: Sequence[str]) -> list[str]:
    """Datasets under any of `roots` (pools or datasets), minus those matching an exclude glob.
    Excluding a dataset does not exclude its children: write `pool/tmp*` for that."""
    if not roots:
        raise UsageError("no pool or dataset given")
    for root in roots:
        if root not in inventory.datasets:
            raise UsageError(f"no such dataset in the source: {root!r}")
    selection = Selection(tuple(roots), tuple(excludes))
    chosen = [name for name in inventory.datasets if name in selection]
    if not chosen:
        raise UsageError("every dataset is excluded")
    return chosen


def expected_bytes(dataset: Dataset, remote: BackupDataset | None = None) -> int:
    """Bytes a send is expected to move.

    Without remote knowledge, a first replication: the oldest snapshot in full (its
    `referenced`) plus each later snapshot's `written` (what it adds to the previous one),
    which is what full-then-`-I` sends. With the remote's snapshots, only the `written` of the
    snapshots after the newest common one. Both come from the one batched `zfs list`, cost
    nothing extra, and track the stream sizes `zfs send -nvP` reports (compressed, as `-c`
    and `-w` send them)."""
    snapshots = dataset.snapshots
    if not snapshots:
        return 0
    base = incremental_base(dataset, {s.guid for s in remote.snapshots} if remote else set())
    if base is None:
        return snapshots[0].referenced + sum(s.written for s in snapshots[1:])
    return sum(s.written for s in snapshots if s.createtxg > base.createtxg)


def nearest_selected_ancestor(name: str, selected: set[str]) -> str | None:
    parent = parent_of(name)
    while parent is not None and parent not in selected:
        parent = parent_of(parent)
    return parent


def build_plan(
    inventory: Inventory,
    selected: Iterable[str],
    remote: Mapping[str, BackupDataset | None] | None = None,
) -> Plan:
    """The DAG over `selected`. `remote` maps source names to the backup's state when it was
    queried (None: absent there); without it every dataset is expected to be sent in full."""
    names = list(selected)
    chosen = set(names)
    own = {
        name: expected_bytes(inventory.datasets[name], (remote or {}).get(name)) for name in names
    }
    children: dict[str | None, list[str]] = {}
    for name in names:
        children.setdefault(nearest_selected_ancestor(name, chosen), []).append(name)
    subtree: dict[str, int] = {}
    for name in sorted(names, key=depth, reverse=True):
        subtree[name] = own[name] + sum(subtree[child] for child in children.get(name, []))

    prerequisites: dict[str, list[str]] = {name: [] for name in names}
    for parent, kids in children.items():
        if parent is None:
            continue
        for kid in kids:
            if inventory.datasets[parent].encrypted:
                prerequisites[kid].append(parent)
            else:
                prerequisites[parent].append(kid)
    depended_on = {p for prereqs in prerequisites.values() for p in prereqs}

    def largest_first(items: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(items, key=lambda n: (-subtree[n], n)))

    ordered = {name: largest_first(prerequisites[name]) for name in names}
    roots = largest_first(n for n in names if n not in depended_on)
    nodes = tuple(
        Node(
            dataset=inventory.datasets[name],
            expected_bytes=own[name],
            subtree_bytes=subtree[name],
            prerequisites=ordered[name],
        )
        for name in serial_order(roots, ordered)
    )
    return Plan(nodes=nodes, roots=roots)


def serial_order(roots: Sequence[str], prerequisites: Mapping[str, Sequence[str]]) -> list[str]:
    """The order `make -j1` sends in: depth-first, prerequisites in their listed order."""
    order: list[str] = []
    seen: set[str] = set()
    stack: list[tuple[str, bool]] = [(root, False) for root in reversed(roots)]
    while stack:
        name, expanded = stack.pop()
        if expanded:
            order.append(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        stack.append((name, True))
        stack.extend((p, False) for p in reversed(prerequisites[name]) if p not in seen)
    return order


def depth(name: str) -> int:
    return name.count("/")
