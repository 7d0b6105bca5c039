"""The data model: frozen snapshots of what zfs reported, on each side."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

Argv = list[str]  # a command as an argv list (quoted once, at the ssh boundary)

FILESYSTEM = "filesystem"
VOLUME = "volume"
# zmake's own bookmarks on the source: `DATASET#zmake-<target key>-<createtxg>`, one per target.
BOOKMARK_PREFIX = "zmake-"
# A user property zmake sets on the empty parents it creates on the backup (see core/decide.py).
PLACEHOLDER_PROPERTY = "zmake:placeholder"


@dataclass(frozen=True)
class Snapshot:
    """A snapshot (`pool/fs@snap`) or a bookmark (`pool/fs#mark`): both can be the base of
    an incremental stream, and both carry the guid of the snapshot they were taken as."""

    name: str
    guid: int
    createtxg: int
    written: int = 0  # bytes written between the previous snapshot and this one
    referenced: int = 0  # what a full stream of this snapshot roughly carries
    creation: int = 0  # seconds since the epoch (the source's `creation`); 0: unknown

    @property
    def short(self) -> str:
        return self.name.partition("#" if self.is_bookmark else "@")[2]

    @property
    def is_bookmark(self) -> bool:
        return "#" in self.name and "@" not in self.name

    @property
    def label(self) -> str:
        """`@snap` or `#mark`, as a person reads it in a message."""
        return ("#" if self.is_bookmark else "@") + self.short


@dataclass(frozen=True)
class Dataset:
    """A source filesystem or volume, with its snapshots (and bookmarks) oldest first."""

    name: str
    kind: str
    used: int = 0
    referenced: int = 0
    mountpoint: str | None = None
    mountpoint_source: str = "default"
    encryption: str = "off"
    encryption_root: str | None = None
    snapshots: tuple[Snapshot, ...] = ()
    bookmarks: tuple[Snapshot, ...] = ()

    @property
    def pool(self) -> str:
        return pool_of(self.name)

    @property
    def parent(self) -> str | None:
        return parent_of(self.name)

    @property
    def encrypted(self) -> bool:
        return is_encrypted(self.encryption)

    @property
    def mountpoint_is_local(self) -> bool:
        """True when the mountpoint was set on this dataset (not inherited or default)."""
        return self.kind == FILESYSTEM and self.mountpoint_source in ("local", "received")

    @property
    def newest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None


@dataclass(frozen=True)
class BackupDataset:
    """What the receiving side holds for one dataset."""

    name: str
    kind: str
    referenced: int = 0
    written: int = 0
    resume_token: str | None = None
    encryption: str = "off"
    snapshots: tuple[Snapshot, ...] = ()
    guid: int = 0  # the backup dataset's own guid: names zmake's bookmarks for this target
    encryption_root: str | None = None
    placeholder: bool = False  # zmake created it as an empty parent (PLACEHOLDER_PROPERTY)
    mounted: bool = False
    readonly: bool = False  # `readonly` is on (a receive sets it only with the permission)

    @property
    def encrypted(self) -> bool:
        return is_encrypted(self.encryption)

    def with_snapshot(self, snapshot: Snapshot) -> BackupDataset:
        """The state after `snapshot` was received (and any partial receive completed)."""
        return replace(self, snapshots=(*self.snapshots, snapshot), resume_token=None, written=0)


@dataclass(frozen=True)
class Inventory:
    """Every selected-or-not dataset of the source pools, parents before children."""

    datasets: dict[str, Dataset] = field(default_factory=dict)

    def children_of(self, name: str) -> list[str]:
        return [n for n in self.datasets if parent_of(n) == name]


def is_encrypted(encryption: str) -> bool:
    return encryption not in ("off", "-", "")


def pool_of(name: str) -> str:
    return name.split("/", 1)[0].split("@", 1)[0].split("#", 1)[0]


def parent_of(name: str) -> str | None:
    head, sep, _ = name.rpartition("/")
    return head if sep else None


def ancestors(name: str) -> list[str]:
    """`a/b/c` → `["a", "a/b"]`: every ancestor, outermost first."""
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def dest_name(source: str, dest: str) -> str:
    """Where `zfs recv -d DEST` puts `source`: the source pool name is replaced by DEST."""
    _, sep, rest = source.partition("/")
    return f"{dest}/{rest}" if sep else dest


def source_name(backup: str, dest: str, pool: str) -> str | None:
    """The inverse of dest_name for one source pool: None when `backup` is not under DEST."""
    if backup == dest:
        return pool
    if backup.startswith(dest + "/"):
        return pool + backup[len(dest) :]
    return None


def is_within(name: str, root: str) -> bool:
    """`name` is `root` or a descendant of it (dataset names, not string prefixes)."""
    return name == root or name.startswith(root + "/")
