"""Realistic `zfs list -H -p` / `zfs get -H -p` text for random dataset trees.

The generator keeps the truth as plain data (`GenTree` of `GenDataset`/`GenSnapshot`) and
renders exactly what OpenZFS prints for the commands zmake runs, so a test can compare what
zmake parses with what was generated:

- `GenTree.list_output()`: `zfs list -H -p -o name,type,guid,createtxg,used,referenced,written
  -t filesystem,volume,snapshot -s createtxg -r POOL` (columns follow `SOURCE_LIST_PROPS`);
- `GenTree.get_output()`: `zfs get -H -p -o name,property,value,source -t filesystem,volume
  -r mountpoint,encryption POOL` (properties follow `SOURCE_GET_PROPS`);
- `GenTree.local_get_output(NAME)`: what `zmake send` reads for one dataset
  (`commands.local_dataset_argv`, `-d 1`, so the children's own lines are included too);
- `remote_list_output(...)`: the receiving side's `zfs list -o BACKUP_LIST_PROPS`.

Names use every character ZFS allows in a component — `[A-Za-z0-9_.: -]` and `%` — with a
bias towards the nasty ones (spaces, `:`, `%`, leading `-`, leading/trailing blanks). Pool
names follow `pool_namecheck`: a letter first, then `[A-Za-z0-9_.: -]` (spaces included).

Encryption follows ZFS: a pool's root may be encrypted (`zpool create -O encryption=on`), a
dataset below an encrypted one is always encrypted, and below an unencrypted one it is now
and then an encryption root of its own.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from zmake.core.model import FILESYSTEM, VOLUME, BackupDataset, Dataset, Snapshot, dest_name
from zmake.core.parse import BACKUP_LIST_PROPS, SOURCE_GET_PROPS, SOURCE_LIST_PROPS

COMPONENT_ALPHABET = string.ascii_letters + string.digits + "_.: -%"
POOL_ALPHABET = string.ascii_letters + string.digits + "_.: -"
NASTY_COMPONENTS = (
    "my data",
    "vm:disk0",
    "films 2024",
    "laptop:2024-11",
    "50%",
    "%recv",
    "a.b",
    ".config",
    "...",
    "-x",
    "--force",
    " lead",
    "trail ",
    "a  b",
    "x:y:z",
    "_",
    "A",
    "a",
)
NASTY_MOUNTPOINTS = ("/srv", "/mnt/my data", "/home", "/x:y/50%", "none", "legacy")
ENCRYPTIONS = ("aes-256-gcm", "aes-128-ccm", "aes-192-gcm")
MAX_SIZE = 2**44
CREATION_EPOCH = 1_780_000_000  # a txg a minute from here
GUID_STEP = 0x9E3779B97F4A7C15  # odd: walking by it mod 2**64 visits every guid


@dataclass(frozen=True)
class GenSnapshot:
    short: str
    guid: int
    createtxg: int
    used: int
    referenced: int
    written: int


@dataclass(frozen=True)
class GenDataset:
    name: str
    kind: str
    guid: int
    createtxg: int
    used: int
    referenced: int
    written: int
    mountpoint: str  # the value zfs get reports ("-" for volumes)
    mountpoint_source: str  # "default", "local", "inherited from X", "-" for volumes
    encryption: str  # "off" or a cipher
    snapshots: tuple[GenSnapshot, ...] = ()
    encryption_root: str | None = None  # where its key lives: itself or an encrypted parent

    def snapshot_name(self, snapshot: GenSnapshot) -> str:
        return f"{self.name}@{snapshot.short}"

    def model(self) -> Dataset:
        """The zmake.core.model.Dataset that parsing this dataset's lines must produce."""
        return Dataset(
            name=self.name,
            kind=self.kind,
            used=self.used,
            referenced=self.referenced,
            mountpoint=None if self.kind == VOLUME else self.mountpoint,
            mountpoint_source=self.mountpoint_source,
            encryption=self.encryption,
            encryption_root=self.encryption_root,
            snapshots=tuple(
                Snapshot(
                    self.snapshot_name(s),
                    s.guid,
                    s.createtxg,
                    s.written,
                    s.referenced,
                    creation_of(s.createtxg),
                )
                for s in self.snapshots
            ),
        )


@dataclass(frozen=True)
class GenTree:
    """One pool: datasets in creation order (parents before children)."""

    pool: str
    datasets: tuple[GenDataset, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.datasets]

    def by_name(self, name: str) -> GenDataset:
        return next(d for d in self.datasets if d.name == name)

    def expected(self) -> dict[str, Dataset]:
        return {d.name: d.model() for d in self.datasets}

    def list_rows(self) -> list[dict[str, str]]:
        """Every dataset and snapshot as `zfs list` columns, sorted by createtxg (stable)."""
        rows: list[tuple[int, int, dict[str, str]]] = []
        for order, ds in enumerate(self.datasets):
            rows.append((ds.createtxg, order, list_row(ds.name, ds.kind, ds)))
            for snap in ds.snapshots:
                rows.append(
                    (snap.createtxg, order, list_row(ds.snapshot_name(snap), "snapshot", snap))
                )
        rows.sort(key=lambda item: (item[0], item[1]))
        return [row for _, _, row in rows]

    def list_output(self) -> str:
        return "".join(
            "\t".join(row[p] for p in SOURCE_LIST_PROPS) + "\n" for row in self.list_rows()
        )

    def get_lines(self, datasets: Iterable[GenDataset] | None = None) -> list[str]:
        lines = []
        for ds in sorted(self.datasets if datasets is None else datasets, key=name_key):
            values = {
                "mountpoint": (ds.mountpoint, ds.mountpoint_source),
                "encryption": encryption_value(ds.encryption),
                "encryptionroot": (ds.encryption_root or "-", "-"),
            }
            for prop in SOURCE_GET_PROPS:
                value, source = values[prop]
                lines.append(f"{ds.name}\t{prop}\t{value}\t{source}\n")
        return lines

    def get_output(self) -> str:
        return "".join(self.get_lines())

    def local_get_output(self, name: str) -> str:
        """`zfs get … -t filesystem,volume,snapshot -d 1 LOCAL_GET_PROPS NAME`: the dataset,
        its snapshots and its direct children (whose lines the parser must ignore)."""
        from zmake.sides.zfs_argv import LOCAL_GET_PROPS

        ds = self.by_name(name)
        lines: list[str] = []

        def emit(obj_name: str, values: dict[str, tuple[str, str]]) -> None:
            for prop in LOCAL_GET_PROPS:
                value, source = values[prop]
                lines.append(f"{obj_name}\t{prop}\t{value}\t{source}\n")

        def dataset_values(d: GenDataset) -> dict[str, tuple[str, str]]:
            return {
                "type": (d.kind, "-"),
                "guid": (str(d.guid), "-"),
                "createtxg": (str(d.createtxg), "-"),
                "written": (str(d.written), "-"),
                "referenced": (str(d.referenced), "-"),
                "used": (str(d.used), "-"),
                "creation": (str(creation_of(d.createtxg)), "-"),
                "mountpoint": (d.mountpoint, d.mountpoint_source),
                "encryption": encryption_value(d.encryption),
                "encryptionroot": (d.encryption_root or "-", "-"),
            }

        emit(ds.name, dataset_values(ds))
        for snap in ds.snapshots:
            emit(
                ds.snapshot_name(snap),
                {
                    "type": ("snapshot", "-"),
                    "guid": (str(snap.guid), "-"),
                    "createtxg": (str(snap.createtxg), "-"),
                    "written": (str(snap.written), "-"),
                    "referenced": (str(snap.referenced), "-"),
                    "used": (str(snap.used), "-"),
                    "creation": (str(creation_of(snap.createtxg)), "-"),
                    "mountpoint": ("-", "-"),
                    "encryption": encryption_value(ds.encryption),
                    "encryptionroot": (ds.encryption_root or "-", "-"),
                },
            )
        for child in self.datasets:
            if child.name.rpartition("/")[0] == ds.name:
                emit(child.name, dataset_values(child))
        return "".join(lines)


def name_key(ds: GenDataset) -> list[str]:
    return ds.name.split("/")


def encryption_value(encryption: str) -> tuple[str, str]:
    return (encryption, "default") if encryption == "off" else (encryption, "-")


def creation_of(createtxg: int) -> int:
    return CREATION_EPOCH + 60 * createtxg


def list_row(name: str, kind: str, obj: GenDataset | GenSnapshot) -> dict[str, str]:
    return {
        "name": name,
        "type": kind,
        "guid": str(obj.guid),
        "createtxg": str(obj.createtxg),
        "used": str(obj.used),
        "referenced": str(obj.referenced),
        "written": str(obj.written),
        "creation": str(creation_of(obj.createtxg)),
    }


def forest_list_output(trees: Sequence[GenTree]) -> str:
    return "".join(t.list_output() for t in trees)


def forest_get_output(trees: Sequence[GenTree]) -> str:
    return "".join(t.get_output() for t in trees)


# --- the receiving side -------------------------------------------------------------------


@dataclass(frozen=True)
class GenRemote:
    """One dataset as the backup holds it: snapshots carry the backup pool's own createtxg."""

    name: str
    kind: str
    referenced: int = 0
    written: int = 0
    token: str | None = None
    encryption: str = "off"
    snapshots: tuple[Snapshot, ...] = ()
    guid: int = 123456789
    encryption_root: str | None = None
    placeholder: bool = False
    mounted: bool = False
    readonly: bool = True  # received with -o readonly=on (and the permission to set it)

    def model(self) -> BackupDataset:
        return BackupDataset(
            name=self.name,
            kind=self.kind,
            referenced=self.referenced,
            written=self.written,
            resume_token=self.token,
            encryption=self.encryption,
            snapshots=self.snapshots,
            guid=self.guid,
            encryption_root=self.encryption_root,
            placeholder=self.placeholder,
            mounted=self.mounted,
            readonly=self.readonly,
        )


def remote_list_output(remotes: Iterable[GenRemote]) -> str:
    """`zfs list -H -p -o BACKUP_LIST_PROPS -t filesystem,volume,snapshot -r/-d 1 NAME`."""
    lines = []
    for remote in remotes:
        rows = [
            {
                "name": remote.name,
                "type": remote.kind,
                "guid": str(remote.guid),
                "createtxg": "1",
                "referenced": str(remote.referenced),
                "written": str(remote.written),
                "receive_resume_token": remote.token or "-",
                "encryption": remote.encryption,
                "encryptionroot": remote.encryption_root or "-",
                "zmake:placeholder": remote.name if remote.placeholder else "-",
                "mounted": "-" if remote.kind == VOLUME else ("yes" if remote.mounted else "no"),
                "readonly": "on" if remote.readonly else "off",
                "creation": "1700000000",
            }
        ]
        rows += [
            {
                "name": s.name,
                "type": "snapshot",
                "guid": str(s.guid),
                "createtxg": str(s.createtxg),
                "referenced": "4096",
                "written": "0",
                "receive_resume_token": "-",
                "encryption": remote.encryption,
                "encryptionroot": remote.encryption_root or "-",
                "zmake:placeholder": remote.name if remote.placeholder else "-",
                "mounted": "-",
                "readonly": "-",
                "creation": str(s.creation or "-"),
            }
            for s in remote.snapshots
        ]
        lines += ["\t".join(row[p] for p in BACKUP_LIST_PROPS) + "\n" for row in rows]
    return "".join(lines)


def received_copy(snapshot: Snapshot, dest_pool: str, createtxg: int) -> Snapshot:
    """`snapshot` as the backup lists it: renamed into dest_pool, with the backup's txg."""
    return Snapshot(dest_name(snapshot.name, dest_pool), snapshot.guid, createtxg)


# --- strategies -----------------------------------------------------------------------------


def components() -> st.SearchStrategy[str]:
    """One legal dataset/snapshot name component ("." and ".." are reserved)."""
    random = st.text(alphabet=COMPONENT_ALPHABET, min_size=1, max_size=10).filter(
        lambda s: s not in (".", "..")
    )
    return st.one_of(st.sampled_from(NASTY_COMPONENTS), random)


def pool_names() -> st.SearchStrategy[str]:
    """A legal pool name: a letter first, not reserved or disk-like (spaces are legal)."""

    def legal(name: str) -> bool:
        return not (
            name.startswith(("mirror", "raidz", "draid", "spare"))
            or name == "log"
            or (name[0] == "c" and name[1:2].isdigit())
        )

    random = st.builds(
        lambda first, rest: first + rest,
        st.sampled_from(string.ascii_letters),
        st.text(alphabet=POOL_ALPHABET, max_size=8),
    ).filter(legal)
    return st.one_of(
        st.sampled_from(("tank", "big", "z:pool", "p.1", "Back_up-2", "my pool", "x ")), random
    )


POOL_NAME = pool_names()


def sizes() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, MAX_SIZE), st.sampled_from((0, 4096, 98304, 2**30)))


@dataclass
class _Draft:
    name: str
    kind: str
    guid: int
    createtxg: int
    referenced: int
    written: int
    local_mountpoint: str | None
    encryption: str
    snapshots: list[GenSnapshot] = field(default_factory=list)
    encryption_root: str | None = None


class _Guids:
    def __init__(self) -> None:
        self.seen: set[int] = set()

    def unique(self, guid: int) -> int:
        while guid in self.seen or guid == 0:
            guid = (guid + GUID_STEP) % 2**64
        self.seen.add(guid)
        return guid


# Built once: constructing strategies inside a composite costs more than drawing from them.
COMPONENT = components()
SIZE = sizes()
GUID = st.integers(0, 2**64 - 1)
SMALL = st.integers(0, 2**16)
KIND = st.sampled_from((FILESYSTEM, FILESYSTEM, FILESYSTEM, VOLUME))
ENCRYPTION = st.sampled_from(ENCRYPTIONS)
MOUNTPOINT = st.sampled_from(NASTY_MOUNTPOINTS)
OPTIONAL_MOUNTPOINT = st.one_of(st.none(), MOUNTPOINT)


def pick(draw: st.DrawFn, items: Sequence[_Draft]) -> _Draft:
    return items[draw(SMALL) % len(items)]


@st.composite
def trees(
    draw: st.DrawFn,
    pool: str | None = None,
    *,
    max_datasets: int = 12,
    min_datasets: int = 1,
    max_snapshot_events: int = 5,
    min_snapshot_events: int = 0,
) -> GenTree:
    """A random pool: nested filesystems and zvols with nasty names, custom/inherited/default
    mountpoints, encrypted subtrees, and (recursive or single) snapshots interleaved with
    dataset creation, so createtxg grows through the whole history."""
    pool = pool if pool is not None else draw(POOL_NAME)
    guids = _Guids()
    n_datasets = draw(st.integers(max(0, min_datasets - 1), max_datasets - 1))  # + the root
    n_events = draw(st.integers(min_snapshot_events, max_snapshot_events))
    history = draw(st.permutations(["create"] * n_datasets + ["snapshot"] * n_events))
    txg = 1 + draw(SMALL)
    drafts = [
        _Draft(
            name=pool,
            kind=FILESYSTEM,
            guid=guids.unique(draw(GUID)),
            createtxg=txg,
            referenced=draw(SIZE),
            written=0,
            local_mountpoint=draw(OPTIONAL_MOUNTPOINT),
            encryption=draw(ENCRYPTION) if draw(SMALL) % 4 == 0 else "off",
        )
    ]
    drafts[0].encryption_root = pool if drafts[0].encryption != "off" else None
    for number, event in enumerate(history):
        txg += 1 + draw(SMALL) % 500
        if event == "create":
            parent = pick(draw, [d for d in drafts if d.kind == FILESYSTEM])
            name = f"{parent.name}/{draw(COMPONENT)}"
            while any(d.name == name for d in drafts):
                name = f"{name}-{number}"
            kind = draw(KIND)
            encryption, root = parent.encryption, parent.encryption_root
            if encryption == "off" and draw(SMALL) % 4 == 0:
                encryption, root = draw(ENCRYPTION), name
            local = None
            if kind == FILESYSTEM and draw(SMALL) % 4 == 0:
                local = draw(MOUNTPOINT)
            drafts.append(
                _Draft(
                    name=name,
                    kind=kind,
                    guid=guids.unique(draw(GUID)),
                    createtxg=txg,
                    referenced=draw(SIZE),
                    written=0,
                    local_mountpoint=local,
                    encryption=encryption,
                    encryption_root=root,
                )
            )
        else:
            top = pick(draw, drafts)
            recursive = top.kind == FILESYSTEM and draw(SMALL) % 2 == 0
            short = draw(COMPONENT)
            chosen = [
                d for d in drafts if d is top or (recursive and d.name.startswith(top.name + "/"))
            ]
            for d in chosen:
                if any(s.short == short for s in d.snapshots):
                    continue  # `zfs snapshot -r` would fail; skip this one
                referenced = draw(SIZE)
                d.snapshots.append(
                    GenSnapshot(
                        short=short,
                        guid=guids.unique(draw(GUID)),
                        createtxg=txg,  # one txg for the whole recursive snapshot
                        used=draw(SIZE),
                        referenced=referenced,
                        written=referenced if not d.snapshots else draw(SIZE),
                    )
                )
    for d in drafts:
        d.written = d.referenced if not d.snapshots else draw(SIZE)
    return finish(pool, drafts)


def finish(pool: str, drafts: list[_Draft]) -> GenTree:
    """Resolve inherited properties and `used` (which includes children and snapshots)."""
    by_name = {d.name: d for d in drafts}
    used: dict[str, int] = {}
    for d in sorted(drafts, key=lambda d: d.name.count("/"), reverse=True):
        children = [c for c in drafts if c.name.rpartition("/")[0] == d.name]
        used[d.name] = (
            d.referenced + sum(s.used for s in d.snapshots) + sum(used[c.name] for c in children)
        )
    datasets = []
    for d in drafts:
        if d.kind == VOLUME:
            mountpoint, source = "-", "-"
        else:
            mountpoint, source = resolve_mountpoint(d.name, by_name)
        datasets.append(
            GenDataset(
                name=d.name,
                kind=d.kind,
                guid=d.guid,
                createtxg=d.createtxg,
                used=used[d.name],
                referenced=d.referenced,
                written=d.written,
                mountpoint=mountpoint,
                mountpoint_source=source,
                encryption=d.encryption,
                snapshots=tuple(d.snapshots),
                encryption_root=d.encryption_root,
            )
        )
    return GenTree(pool, tuple(datasets))


def resolve_mountpoint(name: str, by_name: dict[str, _Draft]) -> tuple[str, str]:
    own = by_name[name].local_mountpoint
    if own is not None:
        return own, "local"
    ancestor = name
    while "/" in ancestor:
        ancestor = ancestor.rpartition("/")[0]
        value = by_name[ancestor].local_mountpoint
        if value is not None:
            if value in ("none", "legacy"):
                return value, f"inherited from {ancestor}"
            return f"{value.rstrip('/')}/{name[len(ancestor) + 1 :]}", f"inherited from {ancestor}"
    return f"/{name}", "default"


@st.composite
def forests(
    draw: st.DrawFn, *, max_pools: int = 2, max_datasets: int = 10, min_datasets: int = 1
) -> list[GenTree]:
    """One or more pools with distinct names (dataset counts are per pool)."""
    pools = draw(st.lists(POOL_NAME, min_size=1, max_size=max_pools, unique=True))
    return [
        draw(trees(pool, max_datasets=max_datasets, min_datasets=min_datasets)) for pool in pools
    ]


@dataclass(frozen=True)
class History:
    """A local dataset and what the backup holds of it (None: nothing), received under
    `dest` (as `zfs recv -d DEST` names it)."""

    local: Dataset
    remote: BackupDataset | None
    force: bool
    dest: str = "backup"


HISTORY_KIND = st.sampled_from((FILESYSTEM, FILESYSTEM, VOLUME))
HISTORY_ENCRYPTION = st.sampled_from(("off", "off", "aes-256-gcm"))
REMOTE_TXG_START = st.sampled_from((1, 10**4, 10**9))
REMOTE_REFERENCED = st.one_of(st.integers(0, 300 * 1024), SIZE)
REMOTE_WRITTEN = st.sampled_from((0, 0, 0, 1, 8192))
TOKEN = st.sampled_from((None, None, None, None, "1-abc-def"))


@st.composite
def histories(draw: st.DrawFn, *, max_local: int = 8, max_remote_only: int = 3) -> History:
    """A local snapshot list and a plausible backup state: a subset of the local snapshots
    (as received: same guid, the backup's own txgs, which are unrelated to the source's)
    plus backup-only snapshots, a placeholder, modifications, a partial receive, or
    encryption/kind mismatches now and then. Some of the local snapshots the backup
    received may have been pruned since, leaving only a bookmark behind."""
    suffix = draw(COMPONENT)
    name, dest = f"tank/ds {suffix}", f"backup/ds {suffix}"
    kind = draw(HISTORY_KIND)
    encryption = draw(HISTORY_ENCRYPTION)
    count = draw(st.integers(0, max_local))
    guids = _Guids()
    txg = 1 + draw(SMALL)
    snapshots = []
    for i in range(count):
        txg += 1 + draw(SMALL) % 100
        snapshots.append(
            Snapshot(
                f"{name}@s{i} {draw(COMPONENT)}",
                guids.unique(draw(GUID)),
                txg,
                written=draw(SIZE),
                referenced=draw(SIZE),
            )
        )
    bookmarks = [
        Snapshot(f"{name}#zmake-b{i}", s.guid, s.createtxg)
        for i, s in enumerate(snapshots)
        if draw(SMALL) % 4 == 0
    ]
    # Pruned since the backup got them: gone from the source, a bookmark may remain.
    kept = [s for s in snapshots if draw(SMALL) % 6 or s is snapshots[-1]]
    root = name if encryption != "off" else None
    local = Dataset(
        name=name,
        kind=kind,
        encryption=encryption,
        encryption_root=root,
        snapshots=tuple(kept),
        bookmarks=tuple(bookmarks),
    )
    force = draw(st.booleans())
    if draw(SMALL) % 5 == 0:
        return History(local, None, force)
    ordered: list[Snapshot | int] = [s for s in snapshots if draw(st.booleans())]
    for _ in range(draw(st.integers(0, max_remote_only)) if draw(st.booleans()) else 0):
        ordered.insert(draw(SMALL) % (len(ordered) + 1), guids.unique(draw(GUID)))
    remote_txg = draw(REMOTE_TXG_START)
    remote_snapshots = []
    for j, item in enumerate(ordered):
        remote_txg += 1 + draw(SMALL) % 50
        if isinstance(item, Snapshot):
            remote_snapshots.append(Snapshot(f"{dest}@{item.short}", item.guid, remote_txg))
        else:
            remote_snapshots.append(Snapshot(f"{dest}@remote-only {j}", item, remote_txg))
    other_kind = VOLUME if kind == FILESYSTEM else FILESYSTEM
    remote_encryption = encryption if draw(SMALL) % 10 else draw(HISTORY_ENCRYPTION)
    remote_root = None
    if remote_encryption != "off":
        # Received raw (its own root), or encrypted at rest by a parent on the backup side.
        remote_root = dest if encryption != "off" and draw(SMALL) % 10 else "backup"
    remote = BackupDataset(
        name=dest,
        kind=kind if draw(SMALL) % 10 else other_kind,
        referenced=draw(REMOTE_REFERENCED),
        written=draw(REMOTE_WRITTEN),
        resume_token=draw(TOKEN),
        encryption=remote_encryption,
        encryption_root=remote_root,
        snapshots=tuple(remote_snapshots),
        guid=1 + draw(SMALL),
        placeholder=not remote_snapshots and draw(st.booleans()),
    )
    return History(local, remote, force)
