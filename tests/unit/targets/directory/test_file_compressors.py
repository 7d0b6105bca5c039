"""`--compress` changed within a chain (zstd, then bzip2): each file's compressor is recorded in the
manifest (core/chain.py), plain `zmake verify` fails on a file named for another compressor than
the manifest says (as a manifest written before the record per file says of a chain continued
with another compressor), and restore reads each file through its own decompressor — or
refuses, before any receive, what verify calls misnamed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.support.chain_dirs import DATASET, RecordingRunner, chain_on_disk
from tests.unit.support.stream_builder import compound_stream, plain_stream
from zmake.core.chain import (
    Chain,
    StreamFile,
    chain_folder,
    compressor_problems,
    file_name,
    manifest_text,
    parse_manifests,
    plan_next,
)
from zmake.core.errors import Refused
from zmake.core.model import FILESYSTEM, BackupDataset, Dataset, Snapshot
from zmake.reports.send import SendReport
from zmake.sides import zfs_calls
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side
from zmake.targets.directory.restore import restore
from zmake.targets.directory.send import FileOptions, FileSender
from zmake.targets.directory.verify import verify

MIXED = [(plain_stream(), "zstd"), (compound_stream(), "bzip2")]
OLD_KEYS = {"name", "from_guid", "snapshots", "size", "sha256"}


def verified(
    root: Path, capsys: pytest.CaptureFixture[str], *, deep: bool = False
) -> tuple[int, str]:
    code = verify(Runner(), Side(), str(root), deep=deep, repair=False, as_json=False)
    return code, capsys.readouterr().out


def test_manifests_keep_each_files_compressor_and_old_ones_mean_the_chains() -> None:
    files = tuple(StreamFile(file_name(i, 10 + i, c), None if i == 0 else 9 + i,
                             ((f"s{i}", 10 + i, i),), 5, "ab" * 32, c)
                  for i, c in enumerate(["zstd", "bzip2"]))  # fmt: skip
    chain = Chain(DATASET, chain_folder(0, 10), False, "zstd", files)
    text = manifest_text(chain)
    document = json.loads(text)
    assert document["version"] == 1 and document["compressor"] == "zstd"  # as old readers read
    assert [f["compressor"] for f in document["files"]] == ["zstd", "bzip2"]
    assert all(set(f) >= OLD_KEYS for f in document["files"])
    assert parse_manifests(text) == [chain]
    for f in document["files"]:
        del f["compressor"]  # a manifest as zmake wrote them before
    (old,) = parse_manifests(json.dumps(document))
    assert [old.compressor_of(f) for f in old.files] == ["zstd", "zstd"]
    assert compressor_problems(old) == [f"{files[1].name}: a bzip2 file by its name, but the "
                                        "manifest says zstd"]  # fmt: skip
    assert compressor_problems(chain) == []


def test_plain_verify_fails_on_a_file_named_for_another_compressor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = chain_on_disk(tmp_path, MIXED, recorded=False)  # the manifest says zstd, once
    code, out = verified(tmp_path, capsys)
    assert code == 1 and out.startswith("BAD "), out
    assert f"{chain.files[1].name}: a bzip2 file by its name, but the manifest says zstd" in out


def test_a_chain_recorded_per_file_verifies_each_through_its_own_decompressor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain_on_disk(tmp_path, MIXED)
    code, out = verified(tmp_path, capsys, deep=True)
    assert code == 0 and out.startswith("OK "), out


@pytest.mark.parametrize("name, why", [
    (file_name(1, 11, "zstd"), "a zstd file by its name, but the manifest says gzip"),
    ("0001-000000000000000b", "not named as a gzip stream file (.zfs.gz)"),
])  # fmt: skip
def test_a_name_that_is_not_the_recorded_compressors_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, why: str
) -> None:
    chain_on_disk(tmp_path, [(plain_stream(), "zstd"), (plain_stream(), "gzip")],
                  names=[file_name(0, 10, "zstd"), name])  # fmt: skip
    code, out = verified(tmp_path, capsys)
    assert code == 1 and f"{name}: {why}" in out, out


def no_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restore's reads of the receiving pool: nothing there yet, its parent is."""

    def there(_runner: Runner, _side: Side, names: list[str]) -> dict[str, BackupDataset]:
        return {name: BackupDataset(name, FILESYSTEM) for name in names}

    monkeypatch.setattr(zfs_calls, "read_backup", lambda *_: None)
    monkeypatch.setattr(zfs_calls, "read_datasets", there)


def test_restore_decompresses_each_file_with_its_own_compressor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = chain_on_disk(tmp_path, MIXED)
    no_pool(monkeypatch)
    runner = RecordingRunner()  # find and sha256sum run on the files; receives are recorded
    assert restore(runner, Side(), str(tmp_path), [], "rescue", dry_run=False) == 0
    receives = [stages for kind, stages in runner.calls if kind == "pipeline"]
    recv = ["zfs", "recv", "-u", "-s", "rescue/home"]
    assert [(Path(s[0][1]).name, s[1][0], s[2]) for s in receives] == [
        (chain.files[0].name, "zstd", recv),
        (chain.files[1].name, "bzip2", recv),
    ]


def test_restore_refuses_a_misnamed_file_before_any_receive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_on_disk(tmp_path, MIXED, recorded=False)
    no_pool(monkeypatch)
    runner = RecordingRunner()
    with pytest.raises(Refused, match="a bzip2 file by its name, but the manifest says zstd"):
        restore(runner, Side(), str(tmp_path), [], "rescue", dry_run=False)
    assert [kind for kind, _ in runner.calls if kind == "pipeline"] == []


def test_send_records_the_compressor_of_each_file(tmp_path: Path) -> None:
    first = StreamFile(file_name(0, 100, "zstd"), None, (("s0", 100, 10),), 5, "ab" * 32, "zstd")
    chain = Chain(DATASET, chain_folder(0, 100), False, "zstd", (first,))
    snaps = tuple(Snapshot(f"{DATASET}@s{i}", 100 + i, 10 + i) for i in range(2))
    local = Dataset(DATASET, FILESYSTEM, snapshots=snaps)
    step = plan_next(local, [chain], compressor="bzip2", full_every=None)
    assert step is not None and step.file.endswith(".zfs.bz2")
    runner = RecordingRunner({"sha256sum": "cd" * 32 + "  x\n", "stat": "7\n", "mkdir": "",
                              "mv": "", "sync": ""})  # fmt: skip
    options = FileOptions(Route(Side(), Side(), "/backup", to_dir=True), compressor="bzip2")
    written = FileSender(runner, options, tmp_path).write(local, step, SendReport(DATASET))
    assert (written.compressor, written.files[-1].compressor) == ("zstd", "bzip2")
    assert compressor_problems(written) == []
    sent, manifest = [stages for kind, stages in runner.calls if kind == "pipeline"]
    assert sent[1] == ["bzip2", "-c"]
    assert parse_manifests(manifest[0][2]) == [written]
