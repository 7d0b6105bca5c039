"""Stream-file chains of a directory target (`--to-dir DIR`). Pure: no processes.

    DIR/<encoded dataset>/@chain-0000-<full snapshot guid>/manifest.json
                                                        /0000-<to guid>.zfs.zst   full
                                                        /0001-<to guid>.zfs.zst   -I from 0000's

`encode` (core/names.py) escapes `@`, so a chain's folder can never be a child dataset's. A file is
written as NAME.part and renamed when its pipeline succeeded; a name is never reused, so an
rsync/rclone of DIR ships each file once. The manifest says, per file, the snapshots it
carries (name, guid, createtxg), its size, the SHA-256 of the stored bytes, and the compressor
it was written with (`--compress` may change between runs; a manifest without it per file, as
zmake wrote them before, means the chain's)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from zmake.core.errors import ParseError
from zmake.core.model import FILESYSTEM, BackupDataset, Dataset, Snapshot, dest_name
from zmake.core.names import encode

MANIFEST = "manifest.json"
CHAIN_PREFIX = "@chain-"
SUFFIX = {"zstd": ".zfs.zst", "lz4": ".zfs.lz4", "gzip": ".zfs.gz", "bzip2": ".zfs.bz2",
          "none": ".zfs"}  # fmt: skip


@dataclass(frozen=True)
class StreamFile:
    name: str  # within the chain's folder
    from_guid: int | None  # None: a full stream
    snapshots: tuple[tuple[str, int, int], ...]  # (short name, guid, createtxg), oldest first
    size: int
    sha256: str
    compressor: str | None = None  # None: the chain's

    @property
    def to_guid(self) -> int:
        return self.snapshots[-1][1]


@dataclass(frozen=True)
class Chain:
    dataset: str
    folder: str  # `@chain-NNNN-<guid>`, under the dataset's folder
    raw: bool
    compressor: str
    files: tuple[StreamFile, ...] = field(default=())

    @property
    def sequence(self) -> int:
        return int(self.folder.removeprefix(CHAIN_PREFIX).split("-")[0])

    @property
    def guids(self) -> set[int]:
        return {guid for f in self.files for _, guid, _ in f.snapshots}

    def with_file(self, new: StreamFile) -> Chain:
        return Chain(self.dataset, self.folder, self.raw, self.compressor, (*self.files, new))

    def compressor_of(self, stream: StreamFile) -> str:
        return stream.compressor or self.compressor


def dataset_folder(dataset: str) -> str:
    return encode(dataset)


def chain_folder(sequence: int, full_guid: int) -> str:
    return f"{CHAIN_PREFIX}{sequence:04d}-{full_guid:016x}"


def file_name(index: int, to_guid: int, compressor: str) -> str:
    return f"{index:04d}-{to_guid:016x}{SUFFIX[compressor]}"


def manifest_text(chain: Chain) -> str:
    document = {
        "version": 1,
        "dataset": chain.dataset,
        "chain": chain.folder,
        "raw": chain.raw,
        "compressor": chain.compressor,
        "flags": ["-w"] if chain.raw else ["-L", "-c"],
        "files": [
            {
                "name": f.name,
                "from_guid": f.from_guid,
                "snapshots": [{"name": n, "guid": g, "createtxg": t} for n, g, t in f.snapshots],
                "size": f.size,
                "sha256": f.sha256,
                **({"compressor": f.compressor} if f.compressor is not None else {}),
            }
            for f in chain.files
        ],
    }
    return json.dumps(document, indent=1) + "\n"


def parse_manifests(text: str, origin: str = "manifests") -> list[Chain]:
    """Manifests as `find … -exec cat {} +` prints them: JSON documents one after another."""
    decoder = json.JSONDecoder()
    chains: list[Chain] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return chains
        try:
            document, position = decoder.raw_decode(text, position)
            chains.append(chain_of(document))
        except (ValueError, KeyError, TypeError) as exc:
            raise ParseError(f"{origin}: not a zmake manifest ({exc})") from None


def chain_of(document: dict[str, object]) -> Chain:
    if document.get("version") != 1:
        raise ValueError(f"manifest version {document.get('version')!r}")
    files = tuple(
        StreamFile(
            name=str(f["name"]),
            from_guid=None if f["from_guid"] is None else int(f["from_guid"]),
            snapshots=tuple(
                (str(s["name"]), int(s["guid"]), int(s["createtxg"])) for s in f["snapshots"]
            ),
            size=int(f["size"]),
            sha256=str(f["sha256"]),
            compressor=str(f["compressor"]) if f.get("compressor") is not None else None,
        )
        for f in document["files"]  # type: ignore[attr-defined]
    )
    return Chain(str(document["dataset"]), str(document["chain"]), bool(document["raw"]),
                 str(document["compressor"]), files)  # fmt: skip


@dataclass(frozen=True)
class NextStream:
    chain: Chain  # as it is before this file (a new chain has no files)
    file: str
    base: Snapshot | None  # None: a full stream
    to: Snapshot
    carried: tuple[Snapshot, ...]  # what the file will hold, oldest first

    @property
    def new_chain(self) -> bool:
        return not self.chain.files


def plan_next(
    dataset: Dataset, chains: Sequence[Chain], *, compressor: str, full_every: int | None
) -> NextStream | None:
    """The next file of `dataset`'s newest chain: an `-I` incremental from the chain's last
    snapshot to the newest; a new chain (a full stream) when there is none yet (from the
    oldest snapshot: the history is kept), when the chain holds `full_every` incrementals,
    or when the source no longer has the chain's last snapshot. None: nothing to write."""
    newest = dataset.newest
    if newest is None:
        return None
    own = sorted((c for c in chains if c.dataset == dataset.name and c.files),
                 key=lambda c: c.sequence)  # fmt: skip
    current = own[-1] if own else None
    if current is not None and current.files[-1].to_guid == newest.guid:
        return None
    by_guid = {s.guid: s for s in dataset.snapshots}
    if current is not None and current.files[-1].to_guid in by_guid:
        full = full_every is not None and len(current.files) - 1 >= full_every
        if not full:
            base = by_guid[current.files[-1].to_guid]
            carried = tuple(s for s in dataset.snapshots if s.createtxg > base.createtxg)
            index = len(current.files)
            return NextStream(current, file_name(index, newest.guid, compressor), base,
                              newest, carried)  # fmt: skip
    first = dataset.snapshots[0] if current is None else newest
    sequence = current.sequence + 1 if current is not None else 0
    fresh = Chain(dataset.name, chain_folder(sequence, first.guid), dataset.encrypted, compressor)
    return NextStream(fresh, file_name(0, first.guid, compressor), None, first, (first,))


def continuity(chain: Chain) -> list[str]:
    """What breaks a chain: it must start with a full stream and each incremental must start
    at the snapshot the file before it ends with."""
    problems = []
    if not chain.files:
        return [f"{chain.folder}: no file"]
    if chain.files[0].from_guid is not None:
        problems.append(f"{chain.files[0].name}: the chain does not start with a full stream")
    for before, after in zip(chain.files, chain.files[1:], strict=False):
        if after.from_guid != before.to_guid:
            problems.append(f"{after.name}: starts at guid {after.from_guid}, but "
                            f"{before.name} ends at {before.to_guid}")  # fmt: skip
    return problems


def compressor_problems(chain: Chain) -> list[str]:
    return [p for p in (compressor_problem(chain, f) for f in chain.files) if p is not None]


def compressor_problem(chain: Chain, stream: StreamFile) -> str | None:
    """A file must be named as its compressor names files: a `.zfs.bz2` under a manifest that
    says zstd (a chain continued after --compress changed, before compressors were recorded
    per file) is not decompressed by what the manifest says."""
    compressor = chain.compressor_of(stream)
    named = next((c for c, suffix in SUFFIX.items() if stream.name.endswith(suffix)), None)
    if compressor not in SUFFIX:
        return f"{stream.name}: the manifest names no known compressor ({compressor})"
    if named is None:
        return f"{stream.name}: not named as a {compressor} stream file ({SUFFIX[compressor]})"
    if named != compressor:
        return f"{stream.name}: a {named} file by its name, but the manifest says {compressor}"
    return None


def newest_restorable(chains: Sequence[Chain], dataset: str) -> Chain | None:
    own = [c for c in chains if c.dataset == dataset and c.files and not continuity(c)]
    return max(own, key=lambda c: c.sequence, default=None)


def chains_to_drop(chains: Sequence[Chain], keep: int) -> list[Chain]:
    """`prune --keep-chains K`: per dataset, whole chains older than the newest K restorable
    ones. Never the only restorable chain; a chain never depends on another (each starts
    with a full stream), so what is kept restores on its own."""
    doomed = []
    for dataset in sorted({c.dataset for c in chains}):
        own = sorted((c for c in chains if c.dataset == dataset), key=lambda c: c.sequence)
        good = [c for c in own if c.files and not continuity(c)]
        if not good:
            continue
        kept = good[-max(1, keep) :]
        oldest_kept = kept[0].sequence
        doomed += [c for c in own if c.sequence < oldest_kept]
    return doomed


def as_backups(
    chains: Sequence[Chain], directory: str, sources: Mapping[str, Dataset]
) -> dict[str, BackupDataset]:
    """A directory target seen as backups (status, check): per source dataset, named as
    dest_name names a backup, the snapshots of its newest whole chain; a raw chain as a raw
    receive would leave it (encrypted, by the image of the source's encryption root)."""
    found = {}
    for dataset in {c.dataset for c in chains}:
        chain = newest_restorable(chains, dataset)
        if chain is None:
            continue
        name = dest_name(dataset, directory)
        held = [(n, g, t) for f in chain.files for n, g, t in f.snapshots]
        snaps = tuple(Snapshot(f"{name}@{n}", g, t) for n, g, t in held)
        source = sources.get(dataset)
        root = (source.encryption_root or source.name) if source is not None else dataset
        found[name] = BackupDataset(
            name, FILESYSTEM, snapshots=snaps,
            encryption="aes-256-gcm" if chain.raw else "off",
            encryption_root=dest_name(root, directory) if chain.raw else None,
        )  # fmt: skip
    return found
