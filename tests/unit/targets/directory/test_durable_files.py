"""A stream file is on disk before a manifest names it (targets/directory/send.py): the file is
fsynced before its rename (`dd … conv=fsync` ends the pipeline that writes it), its directory
after the rename and before the manifest is written (`sync DIR`: an fsync of the directory,
of each folder a new chain added too), and the manifest the same way: written, fsynced,
renamed, its directory fsynced.

The commands' order is checked as zmake issues them; then, on real files, the system calls
themselves as strace sees them (where strace may trace)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.support.chain_dirs import DATASET, RecordingRunner
from zmake.core.chain import MANIFEST, Chain, StreamFile, chain_folder, file_name, plan_next
from zmake.core.model import FILESYSTEM, Dataset, Snapshot
from zmake.reports.send import SendReport
from zmake.sides.side import Route, Side
from zmake.targets.directory.send import FileOptions, FileSender, chain_path, write_text

REPO = Path(__file__).resolve().parents[4]
ANSWERS = {"sha256sum": "cd" * 32 + "  x\n", "stat": "7\n", "mkdir": "", "mv": "", "sync": ""}


def source(count: int) -> Dataset:
    snaps = tuple(Snapshot(f"{DATASET}@s{i}", 100 + i, 10 + i) for i in range(count))
    return Dataset(DATASET, FILESYSTEM, snapshots=snaps)


def calls_of(runner: RecordingRunner) -> list[str]:
    """Each command as a line; a pipeline's stages joined by |, a manifest's text left out."""
    lines = []
    for kind, stages in runner.calls:
        shown = [["printf", "%s", "…"] if s[0] == "printf" else s for s in stages]
        lines.append(" | ".join(" ".join(stage) for stage in shown) if kind == "pipeline"
                     else " ".join(stages[0]))  # fmt: skip
    return lines


def written(chains: list[Chain], count: int, tmp_path: Path) -> tuple[list[str], str]:
    runner = RecordingRunner(ANSWERS)
    step = plan_next(source(count), chains, compressor="zstd", full_every=None)
    assert step is not None
    options = FileOptions(Route(Side(), Side(), "/backup", to_dir=True))
    FileSender(runner, options, tmp_path).write(source(count), step, SendReport(DATASET))
    return calls_of(runner), f"{chain_path('/backup', step.chain)}/{step.file}"


def test_a_new_chains_file_is_fsynced_renamed_and_its_folders_fsynced_before_the_manifest(
    tmp_path: Path,
) -> None:
    calls, final = written([], 1, tmp_path)
    folder = final.rsplit("/", 1)[0]
    assert calls == [
        f"mkdir -p {folder}",
        f"zfs send -L -c {DATASET}@s0 | zstd -q -c -T0 | "
        f"dd of={final}.part bs=1M status=none conv=fsync",
        f"sha256sum {final}.part",
        f"stat -c %s {final}.part",
        f"mv -f {final}.part {final}",
        f"sync -- {folder} /backup/tank/home /backup/tank /backup",
        f"printf %s … | dd of={folder}/{MANIFEST}.part status=none conv=fsync",
        f"mv -f {folder}/{MANIFEST}.part {folder}/{MANIFEST}",
        f"sync -- {folder}",
    ]


def test_an_incremental_file_the_same_way(tmp_path: Path) -> None:
    first = StreamFile(file_name(0, 100, "zstd"), None, (("s0", 100, 10),), 5, "ab" * 32, "zstd")
    chain = Chain(DATASET, chain_folder(0, 100), False, "zstd", (first,))
    calls, final = written([chain], 2, tmp_path)
    folder = final.rsplit("/", 1)[0]
    assert calls[1].endswith(f"dd of={final}.part bs=1M status=none conv=fsync")
    assert calls[4:] == [
        f"mv -f {final}.part {final}",
        f"sync -- {folder}",
        f"printf %s … | dd of={folder}/{MANIFEST}.part status=none conv=fsync",
        f"mv -f {folder}/{MANIFEST}.part {folder}/{MANIFEST}",
        f"sync -- {folder}",
    ]


SCRIPT = """
import sys
from pathlib import Path
from zmake.core.chain import plan_next
from zmake.core.model import FILESYSTEM, Dataset, Snapshot
from zmake.reports.send import SendReport
from zmake.sides import zfs_argv
from zmake.sides.runner import Runner
from zmake.sides.side import Route, Side
from zmake.targets.directory.send import FileOptions, FileSender

zfs_argv.stream_argv = lambda *_, **__: ["printf", "%s", "a stream's bytes"]  # no zfs here
local = Dataset("tank/home", FILESYSTEM, snapshots=(Snapshot("tank/home@s0", 100, 10),))
step = plan_next(local, [], compressor="zstd", full_every=None)
options = FileOptions(Route(Side(), Side(), sys.argv[1], to_dir=True))
FileSender(Runner(), options, Path(sys.argv[1])).write(local, step, SendReport("tank/home"))
"""


def traced(tmp_path: Path) -> list[tuple[str, ...]]:
    """fsync and rename calls of a real write, in order: ("fsync", path), ("rename", a, b)."""
    trace = tmp_path / "trace"
    argv = ["strace", "-f", "-qq", "-y", "-o", str(trace), "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
            sys.executable, "-c", SCRIPT, str(tmp_path / "backup")]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    events: list[tuple[str, ...]] = []
    for line in whole_calls(trace.read_text()):
        if found := re.search(r"\bf(?:data)?sync\(\d+<([^>]*)>\s*\)\s*= 0", line):
            events.append(("fsync", found[1]))
        elif found := re.search(
            r'rename\w*\((?:[^,"]+, )?"([^"]+)", (?:[^,"]+, )?"([^"]+)".*= 0', line
        ):
            events.append(("rename", found[1], found[2]))
    return events


def whole_calls(trace: str) -> list[str]:
    """strace's lines, a call another process interrupted (`<unfinished ...>`, later `<...
    resumed>`) joined into one line where it returned."""
    started: dict[str, str] = {}
    lines = []
    for line in trace.splitlines():
        pid, _, call = line.partition(" ")
        if call.endswith("<unfinished ...>"):
            started[pid] = call.removesuffix("<unfinished ...>")
        elif resumed := re.match(r"<\.\.\. \w+ resumed>\s*(.*)", call):
            lines.append(started.pop(pid, "").rstrip() + resumed[1])
        else:
            lines.append(call)
    return lines


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_on_real_files_each_fsync_comes_before_what_depends_on_it(tmp_path: Path) -> None:
    events = traced(tmp_path)
    (final,) = (tmp_path / "backup").rglob("0000-*.zfs.zst")
    folder = final.parent
    manifest = folder / MANIFEST
    expected = [
        ("fsync", f"{final}.part"),
        ("rename", f"{final}.part", str(final)),
        ("fsync", str(folder)),
        ("fsync", str(folder.parent)),  # tank/home: the chain's folder is new
        ("fsync", str(folder.parent.parent)),  # tank
        ("fsync", str(tmp_path / "backup")),
        ("fsync", f"{manifest}.part"),
        ("rename", f"{manifest}.part", str(manifest)),
        ("fsync", str(folder)),
    ]
    assert events == expected


def test_a_manifest_alone_is_written_the_same_way(tmp_path: Path) -> None:
    runner = RecordingRunner({"mv": "", "sync": ""})
    write_text(runner, Side(), "/backup/x/manifest.json", "{}\n")
    assert calls_of(runner) == [
        "printf %s … | dd of=/backup/x/manifest.json.part status=none conv=fsync",
        "mv -f /backup/x/manifest.json.part /backup/x/manifest.json",
        "sync -- /backup/x",
    ]
