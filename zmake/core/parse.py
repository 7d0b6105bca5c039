"""Parse `zfs list -H -p` / `zfs get -H -p` output and capture files. Pure: no processes.

Every line is checked for its field count and numeric fields; anything unexpected is a
ParseError that names the line, never a silent guess."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from zmake.core.errors import ParseError
from zmake.core.model import (
    FILESYSTEM,
    PLACEHOLDER_PROPERTY,
    VOLUME,
    BackupDataset,
    Dataset,
    Inventory,
    Snapshot,
)

# Properties read from the source. The order is the column order of `zfs list -o`.
SOURCE_LIST_PROPS = (
    "name", "type", "guid", "createtxg", "used", "referenced", "written", "creation",
)  # fmt: skip
SOURCE_GET_PROPS = ("mountpoint", "encryption", "encryptionroot")
# Datasets on the receiving side, with their snapshots.
BACKUP_LIST_PROPS = (
    "name",
    "type",
    "guid",
    "createtxg",
    "referenced",
    "written",
    "receive_resume_token",
    "encryption",
    "encryptionroot",
    PLACEHOLDER_PROPERTY,
    "mounted",
    "readonly",
    "creation",  # a received snapshot keeps the source's: how old a pushed backup is
)
DATASET_TYPES = (FILESYSTEM, VOLUME)
SNAPSHOT = "snapshot"
BOOKMARK = "bookmark"
ABSENT = "-"


@dataclass(frozen=True)
class Capture:
    """What `zmake capture` records: the zfs output that generate reads."""

    zfs_version: str
    pools: tuple[str, ...]
    list_output: str
    get_output: str


def split_rows(text: str, columns: Sequence[str], what: str) -> list[list[str]]:
    rows = []
    # zfs separates records with \n only; str.splitlines would also split inside a
    # mountpoint holding \x0b, \x1c, \u2028 and the like.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise ParseError(
                f"{what} line {number}: expected {len(columns)} tab-separated fields "
                f"({','.join(columns)}), got {len(fields)}: {line!r}"
            )
        rows.append(fields)
    return rows


def to_int(value: str, column: str, line: Sequence[str], what: str) -> int:
    if value == ABSENT:
        return 0
    if not (value.isascii() and value.isdigit()):
        raise ParseError(
            f"{what}: column {column} is not a number (was -p used?): {chr(9).join(line)!r}"
        )
    return int(value)


def parse_properties(text: str, what: str = "zfs get") -> dict[str, dict[str, tuple[str, str]]]:
    """`zfs get -H -p -o name,property,value,source` → {name: {property: (value, source)}}."""
    result: dict[str, dict[str, tuple[str, str]]] = {}
    for name, prop, value, source in split_rows(
        text, ("name", "property", "value", "source"), what
    ):
        result.setdefault(name, {})[prop] = (value, source)
    return result


def parse_source(list_output: str, get_output: str) -> Inventory:
    """Build the source inventory from one `zfs list` and one `zfs get` (both recursive)."""
    properties = parse_properties(get_output)
    datasets: dict[str, Dataset] = {}
    snapshots: dict[str, list[Snapshot]] = {}
    bookmarks: dict[str, list[Snapshot]] = {}
    what = "zfs list"
    for row in split_rows(list_output, SOURCE_LIST_PROPS, what):
        name, kind = row[0], row[1]
        guid, createtxg, used, referenced, written, creation = (
            to_int(row[i], SOURCE_LIST_PROPS[i], row, what) for i in range(2, 8)
        )
        if kind == SNAPSHOT:
            owner = name.partition("@")[0]
            snapshots.setdefault(owner, []).append(
                Snapshot(name, guid, createtxg, written, referenced, creation)
            )
        elif kind == BOOKMARK:
            bookmarks.setdefault(name.partition("#")[0], []).append(Snapshot(name, guid, createtxg))
        elif kind in DATASET_TYPES:
            datasets[name] = source_dataset(name, kind, used, referenced, properties.get(name, {}))
        else:
            raise ParseError(f"{what}: unexpected type {kind!r} for {name!r}")
    return Inventory(
        {
            name: replace(
                ds,
                snapshots=by_txg(snapshots.get(name, [])),
                bookmarks=by_txg(bookmarks.get(name, [])),
            )
            for name, ds in sorted(datasets.items(), key=lambda item: item[0].split("/"))
        }
    )


def source_dataset(
    name: str, kind: str, used: int, referenced: int, props: dict[str, tuple[str, str]]
) -> Dataset:
    mountpoint, mp_source = props.get("mountpoint", (ABSENT, ABSENT))
    root = props.get("encryptionroot", (ABSENT, ABSENT))[0]
    return Dataset(
        name=name,
        kind=kind,
        used=used,
        referenced=referenced,
        mountpoint=None if kind == VOLUME or mountpoint == ABSENT else mountpoint,
        mountpoint_source=mp_source,
        encryption=props.get("encryption", ("off", ABSENT))[0],
        encryption_root=None if root in (ABSENT, "") else root,
    )


def by_txg(snapshots: Iterable[Snapshot]) -> tuple[Snapshot, ...]:
    return tuple(sorted(snapshots, key=lambda s: s.createtxg))


def parse_backup(list_output: str) -> dict[str, BackupDataset]:
    """The receiving side's `zfs list -H -p -o BACKUP_LIST_PROPS -t all` → datasets by name."""
    what = "backup zfs list"
    found: dict[str, BackupDataset] = {}
    snapshots: dict[str, list[Snapshot]] = {}
    for row in split_rows(list_output, BACKUP_LIST_PROPS, what):
        name, kind, token, encryption, root, placeholder, mounted, readonly = (
            row[i] for i in (0, 1, 6, 7, 8, 9, 10, 11)
        )
        guid, createtxg, referenced, written = (
            to_int(row[i], BACKUP_LIST_PROPS[i], row, what) for i in range(2, 6)
        )
        if kind == SNAPSHOT:
            owner = name.partition("@")[0]
            creation = to_int(row[12], "creation", row, what) if row[12] != ABSENT else 0
            snapshots.setdefault(owner, []).append(Snapshot(name, guid, createtxg,
                                                            creation=creation))  # fmt: skip
        elif kind in DATASET_TYPES:
            found[name] = BackupDataset(
                name=name,
                kind=kind,
                referenced=referenced,
                written=written,
                resume_token=None if token in (ABSENT, "") else token,
                encryption=encryption,
                guid=guid,
                encryption_root=None if root in (ABSENT, "") else root,
                # Its own name: a value inherited from a placeholder above names that one.
                placeholder=placeholder == name,
                mounted=mounted == "yes",
                readonly=readonly == "on",
            )
        else:
            raise ParseError(f"{what}: unexpected type {kind!r} for {name!r}")
    return {
        name: replace(backup, snapshots=by_txg(snapshots.get(name, [])))
        for name, backup in found.items()
    }


def parse_local_dataset(get_output: str, name: str) -> Dataset:
    """One dataset with its snapshots and bookmarks from `zfs get -H -p -o
    name,property,value,source LOCAL_GET_PROPS -t filesystem,volume,snapshot,bookmark -d 1`."""
    properties = parse_properties(get_output)
    if name not in properties:
        raise ParseError(f"zfs get: no properties reported for {name!r}")
    own = properties[name]

    def value(props: dict[str, tuple[str, str]], prop: str, of: str = name) -> str:
        if prop not in props:
            raise ParseError(f"zfs get: property {prop!r} missing for {of!r}")
        return props[prop][0]

    def number(props: dict[str, tuple[str, str]], prop: str, of: str = name) -> int:
        text = value(props, prop, of)
        return to_int(text, prop, [of, prop, text], "zfs get")

    kind = value(own, "type")
    if kind not in DATASET_TYPES:
        raise ParseError(f"zfs get: {name!r} is a {kind}, not a filesystem or volume")
    snapshots, bookmarks = [], []
    for child, props in properties.items():
        if child.partition("@")[0] == name and "@" in child:
            snapshots.append(
                Snapshot(
                    child,
                    number(props, "guid", child),
                    number(props, "createtxg", child),
                    number(props, "written", child),
                    number(props, "referenced", child),
                    number(props, "creation", child),
                )
            )
        elif child.partition("#")[0] == name and "#" in child:
            guid, txg = number(props, "guid", child), number(props, "createtxg", child)
            bookmarks.append(Snapshot(child, guid, txg))
    dataset = source_dataset(name, kind, number(own, "used"), number(own, "referenced"), own)
    return replace(dataset, snapshots=by_txg(snapshots), bookmarks=by_txg(bookmarks))


CAPTURE_MAGIC = "# zmake capture v1"
LIST_MARK = "### zfs list"
GET_MARK = "### zfs get"


def render_capture(capture: Capture, list_cmd: str, get_cmd: str) -> str:
    return "".join(
        [
            f"{CAPTURE_MAGIC}\n",
            f"# zfs-version: {capture.zfs_version}\n",
            f"# pools: {chr(9).join(capture.pools)}\n",
            f"# list-command: {list_cmd}\n",
            f"# get-command: {get_cmd}\n",
            f"{LIST_MARK}\n",
            ensure_newline(capture.list_output),
            f"{GET_MARK}\n",
            ensure_newline(capture.get_output),
        ]
    )


def ensure_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


LEGACY_LIST_COLUMNS = "-o name,type,guid,createtxg,used,referenced,written "


def parse_capture(text: str, origin: str = "capture") -> Capture:
    lines = [line + "\n" for line in text.split("\n")]
    if lines and lines[-1] == "\n":
        lines.pop()
    if not lines or lines[0].rstrip("\n") != CAPTURE_MAGIC:
        raise ParseError(f"{origin}: not a zmake capture (first line must be {CAPTURE_MAGIC!r})")
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines[1:]:
        bare = line.rstrip("\n")
        if bare in (LIST_MARK, GET_MARK):
            current = sections.setdefault(bare, [])
        elif current is not None:
            current.append(line)
        elif bare.startswith("# ") and ": " in bare:
            key, _, value = bare[2:].partition(": ")
            header[key] = value
    missing = [mark for mark in (LIST_MARK, GET_MARK) if mark not in sections]
    if missing:
        raise ParseError(f"{origin}: capture has no {' / '.join(missing)} section")
    list_output = "".join(sections[LIST_MARK])
    if LEGACY_LIST_COLUMNS in header.get("list-command", ""):
        # Recorded before zmake read snapshot creation times: unknown ("-"), said so.
        list_output = "".join(line.rstrip("\n") + "\t-\n" for line in sections[LIST_MARK])
    return Capture(
        zfs_version=header.get("zfs-version", "unknown"),
        pools=tuple(pool for pool in header.get("pools", "").split("\t") if pool),
        list_output=list_output,
        get_output="".join(sections[GET_MARK]),
    )


def parse_estimate(text: str) -> tuple[int, str | None]:
    """`zfs send -nvP …` → (stream size, the snapshot it sends): the `full NAME SIZE` or
    `incremental FROM NAME SIZE` line names what ZFS itself resolved (for a token, by guid)."""
    size, to_name = 0, None
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "size" and len(fields) == 2 and fields[1].isdigit():
            size = int(fields[1])
        elif fields[0] == "full" and len(fields) >= 2:
            to_name = fields[1]
        elif fields[0] == "incremental" and len(fields) >= 3:
            to_name = fields[2]
    return size, to_name
