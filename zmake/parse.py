"""Parse `zfs list -H -p` / `zfs get -H -p` output and capture files. Pure: no processes.

Every line is checked for its field count and numeric fields; anything unexpected is a
ParseError that names the line, never a silent guess."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zmake.errors import ParseError
from zmake.model import FILESYSTEM, VOLUME, Dataset, Inventory, RemoteDataset, Snapshot

# Properties read from the source. The order is the column order of `zfs list -o`.
SOURCE_LIST_PROPS = ("name", "type", "guid", "createtxg", "used", "referenced", "written")
SOURCE_GET_PROPS = ("mountpoint", "encryption")
# One dataset on the receiving side, with its snapshots.
REMOTE_LIST_PROPS = (
    "name",
    "type",
    "guid",
    "createtxg",
    "referenced",
    "written",
    "receive_resume_token",
    "encryption",
)
DATASET_TYPES = (FILESYSTEM, VOLUME)
SNAPSHOT = "snapshot"
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
    what = "zfs list"
    for row in split_rows(list_output, SOURCE_LIST_PROPS, what):
        name, kind = row[0], row[1]
        guid, createtxg, used, referenced, written = (
            to_int(row[i], SOURCE_LIST_PROPS[i], row, what) for i in range(2, 7)
        )
        if kind == SNAPSHOT:
            owner = name.partition("@")[0]
            snapshots.setdefault(owner, []).append(
                Snapshot(name, guid, createtxg, written, referenced)
            )
        elif kind in DATASET_TYPES:
            props = properties.get(name, {})
            mountpoint, mp_source = props.get("mountpoint", (ABSENT, ABSENT))
            datasets[name] = Dataset(
                name=name,
                kind=kind,
                used=used,
                referenced=referenced,
                mountpoint=None if kind == VOLUME or mountpoint == ABSENT else mountpoint,
                mountpoint_source=mp_source,
                encryption=props.get("encryption", ("off", ABSENT))[0],
            )
        else:
            raise ParseError(f"{what}: unexpected type {kind!r} for {name!r}")
    return Inventory(
        {
            name: attach_snapshots(ds, snapshots.get(name, []))
            for name, ds in sorted(datasets.items(), key=lambda item: item[0].split("/"))
        }
    )


def attach_snapshots(dataset: Dataset, snapshots: Iterable[Snapshot]) -> Dataset:
    ordered = tuple(sorted(snapshots, key=lambda s: s.createtxg))
    return Dataset(
        name=dataset.name,
        kind=dataset.kind,
        used=dataset.used,
        referenced=dataset.referenced,
        mountpoint=dataset.mountpoint,
        mountpoint_source=dataset.mountpoint_source,
        encryption=dataset.encryption,
        snapshots=ordered,
    )


def parse_remote(list_output: str) -> dict[str, RemoteDataset]:
    """The receiving side's `zfs list -H -p -o REMOTE_LIST_PROPS -t all` → datasets by name."""
    what = "remote zfs list"
    found: dict[str, RemoteDataset] = {}
    snapshots: dict[str, list[Snapshot]] = {}
    for row in split_rows(list_output, REMOTE_LIST_PROPS, what):
        name, kind, _, _, _, _, token, encryption = row
        guid, createtxg, referenced, written = (
            to_int(row[i], REMOTE_LIST_PROPS[i], row, what) for i in range(2, 6)
        )
        if kind == SNAPSHOT:
            owner = name.partition("@")[0]
            snapshots.setdefault(owner, []).append(Snapshot(name, guid, createtxg))
        elif kind in DATASET_TYPES:
            found[name] = RemoteDataset(
                name=name,
                kind=kind,
                referenced=referenced,
                written=written,
                resume_token=None if token in (ABSENT, "") else token,
                encryption=encryption,
            )
        else:
            raise ParseError(f"{what}: unexpected type {kind!r} for {name!r}")
    return {
        name: RemoteDataset(
            name=r.name,
            kind=r.kind,
            referenced=r.referenced,
            written=r.written,
            resume_token=r.resume_token,
            encryption=r.encryption,
            snapshots=tuple(sorted(snapshots.get(name, []), key=lambda s: s.createtxg)),
        )
        for name, r in found.items()
    }


def parse_local_dataset(get_output: str, name: str) -> Dataset:
    """One dataset and its snapshots from `zfs get -H -p -o name,property,value,source
    type,guid,createtxg,written,referenced,used,mountpoint,encryption -t all -d 1 NAME`."""
    properties = parse_properties(get_output)
    if name not in properties:
        raise ParseError(f"zfs get: no properties reported for {name!r}")
    own = properties[name]

    def value(props: dict[str, tuple[str, str]], prop: str) -> str:
        if prop not in props:
            raise ParseError(f"zfs get: property {prop!r} missing for {name!r}")
        return props[prop][0]

    def number(props: dict[str, tuple[str, str]], prop: str) -> int:
        return to_int(value(props, prop), prop, [name, prop, value(props, prop)], "zfs get")

    kind = value(own, "type")
    if kind not in DATASET_TYPES:
        raise ParseError(f"zfs get: {name!r} is a {kind}, not a filesystem or volume")
    snapshots = [
        Snapshot(
            snap,
            number(props, "guid"),
            number(props, "createtxg"),
            number(props, "written"),
            number(props, "referenced"),
        )
        for snap, props in properties.items()
        if snap.partition("@")[0] == name and "@" in snap
    ]
    mountpoint, mp_source = own.get("mountpoint", (ABSENT, ABSENT))
    return attach_snapshots(
        Dataset(
            name=name,
            kind=kind,
            used=number(own, "used"),
            referenced=number(own, "referenced"),
            mountpoint=None if kind == VOLUME or mountpoint == ABSENT else mountpoint,
            mountpoint_source=mp_source,
            encryption=value(own, "encryption"),
        ),
        snapshots,
    )


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
    return Capture(
        zfs_version=header.get("zfs-version", "unknown"),
        pools=tuple(pool for pool in header.get("pools", "").split("\t") if pool),
        list_output="".join(sections[LIST_MARK]),
        get_output="".join(sections[GET_MARK]),
    )
