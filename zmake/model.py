"""The data model: frozen snapshots of what zfs reported, on each side."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

FILESYSTEM = "filesystem"
VOLUME = "volume"


@dataclass(frozen=True)
class Snapshot:
    name: str  # full name, "pool/fs@snap"
    guid: int
    createtxg: int
    written: int = 0  # bytes written between the previous snapshot and this one
    referenced: int = 0  # what a full stream of this snapshot roughly carries

    @property
    def short(self) -> str:
        return self.name.partition("@")[2]


@dataclass(frozen=True)
class Dataset:
    """A source filesystem or volume, with its snapshots oldest first."""

    name: str
    kind: str
    used: int = 0
    referenced: int = 0
    mountpoint: str | None = None
    mountpoint_source: str = "default"
    encryption: str = "off"
    snapshots: tuple[Snapshot, ...] = ()

    @property
    def pool(self) -> str:
        return pool_of(self.name)

    @property
    def parent(self) -> str | None:
        return parent_of(self.name)

    @property
    def encrypted(self) -> bool:
        return self.encryption not in ("off", "-", "")

    @property
    def mountpoint_is_local(self) -> bool:
        """True when the mountpoint was set on this dataset (not inherited or default)."""
        return self.kind == FILESYSTEM and self.mountpoint_source in ("local", "received")

    @property
    def newest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None


@dataclass(frozen=True)
class RemoteDataset:
    """What the receiving side holds for one dataset."""

    name: str
    kind: str
    referenced: int = 0
    written: int = 0
    resume_token: str | None = None
    encryption: str = "off"
    snapshots: tuple[Snapshot, ...] = ()

    @property
    def encrypted(self) -> bool:
        return self.encryption not in ("off", "-", "")

    def with_snapshot(self, snapshot: Snapshot) -> RemoteDataset:
        """The state after `snapshot` was received (and any partial receive completed)."""
        return replace(self, snapshots=(*self.snapshots, snapshot), resume_token=None, written=0)


@dataclass(frozen=True)
class Inventory:
    """Every selected-or-not dataset of the source pools, parents before children."""

    datasets: dict[str, Dataset] = field(default_factory=dict)

    def children_of(self, name: str) -> list[str]:
        return [n for n in self.datasets if parent_of(n) == name]


def pool_of(name: str) -> str:
    return name.split("/", 1)[0].split("@", 1)[0]


def parent_of(name: str) -> str | None:
    head, sep, _ = name.rpartition("/")
    return head if sep else None


def dest_name(source: str, dest_pool: str) -> str:
    """Where `zfs recv -d DEST_POOL` puts `source`: the source pool name is replaced."""
    _, sep, rest = source.partition("/")
    return f"{dest_pool}/{rest}" if sep else dest_pool
