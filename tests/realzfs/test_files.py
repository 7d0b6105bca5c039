"""Stream files (issue 16) on real OpenZFS: back a pool up to a directory — here and on the
loopback "backup" host over ssh — verify it, damage it, repair it, restore it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.realzfs.support import encrypted_tree, exists, fill, snapshot_guids, zfs


@pytest.fixture
def tree(pools, tmp_path) -> list[str]:
    """Nested datasets, names with a space and a colon, an encrypted dataset, a zvol."""
    *names, secret = encrypted_tree(pools.src, tmp_path / "key", ["home", "home/my data:1"])
    zfs("create", "-V", "4M", f"{pools.src}/vm:disk0")
    zfs("snapshot", "-r", f"{pools.src}@zmake-a")
    return [pools.src, *names, secret, f"{pools.src}/vm:disk0"]


def files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def slow_zstd(zm, tmp_path: Path) -> dict[str, str]:
    """zm's environment with a `zstd` first on PATH that crawls (300 kB/s): to be killed."""
    slow = tmp_path / "bin" / "zstd"
    slow.parent.mkdir(exist_ok=True)
    slow.write_text('#!/bin/sh\npv -q -L 300k | /usr/bin/zstd "$@"\n')
    slow.chmod(0o755)
    return {**zm.env(), "PATH": f"{slow.parent}:{os.environ['PATH']}"}


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert time.monotonic() < deadline, "never got there"
        time.sleep(0.5)
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def more_snapshots(tree: list[str], *names: str) -> None:
    for short in names:
        for name in tree[1:4]:
            fill(name, 0.05, label=short)
        zfs("snapshot", "-r", f"{tree[0]}@{short}")


def test_a_directory_backup_verifies_and_restores_with_every_guid(pools, tree, zm, tmp_path):
    directory = tmp_path / "usb disk:1"
    target = ["--to-dir", str(directory)]
    first = zm("backup", pools.src, *target, "-j", "4", "--yes", "--recovery", "5%",
               check=False)  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    more_snapshots(tree, "zmake-b", "zmake-c")
    second = zm("backup", pools.src, *target, "-j", "4", "--yes", "--recovery", "5%",
                check=False)  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert "incremental @zmake-a..@zmake-c" in second.stdout, second.stdout
    streams = [p for p in files_in(directory) if ".zfs" in p.name and p.suffix != ".par2"]
    assert len(streams) == 2 * len(tree) and not any(p.name.endswith(".part") for p in streams)
    manifests = [json.loads(p.read_text()) for p in directory.rglob("manifest.json")]
    secret = next(m for m in manifests if m["dataset"] == tree[3])
    assert secret["raw"] and secret["flags"] == ["-w"]

    checked = zm("check", pools.src, *target, check=False)
    assert checked.returncode == 0 and checked.stdout.startswith(
        f"ZMAKE OK - {len(tree)} datasets"
    ), checked.stdout + checked.stderr
    verified = zm("verify", str(directory), "--deep", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count("OK ") == len(tree)

    restored = f"{pools.dst}/restored"
    done = zm("restore", str(directory), "--into", restored, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_guids(restored) == snapshot_guids(pools.src)
    assert zfs("get", "-H", "-o", "value", "encryptionroot", f"{restored}/secret stuff").strip() \
        == f"{restored}/secret stuff"  # fmt: skip

    # One flipped byte: verify names the file, restore refuses before receiving anything.
    victim = next(p for p in streams if "home" in str(p.parent) and "my" not in str(p.parent))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    bad = zm("verify", str(directory), check=False)
    assert bad.returncode == 1 and f"{victim.name}: SHA-256 differs" in bad.stdout, bad.stdout
    again = f"{pools.dst}/again"
    refused = zm("restore", str(directory), "--into", again, check=False)
    assert refused.returncode != 0 and "damaged" in refused.stderr, refused.stderr
    assert not exists(again)
    repaired = zm("verify", str(directory), "--repair", check=False)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"repaired: {victim.name}" in repaired.stdout
    done = zm("restore", str(directory), tree[1], "--into", again, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_guids(f"{again}/home") == snapshot_guids(tree[1])


def test_killed_runs_leave_no_complete_looking_file_and_chains_stay_bounded(
    pools, tree, zm, tmp_path
):
    directory = tmp_path / "files"
    big = f"{pools.src}/big"
    zfs("create", big)
    fill(big, 4)
    zfs("snapshot", f"{big}@zmake-a")
    env = slow_zstd(zm, tmp_path)
    argv = [sys.executable, "-m", "zmake", "send", big, "--to-dir", str(directory)]
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    kill_when(proc, lambda: any(p.name.endswith(".part") for p in files_in(directory)))
    left = files_in(directory)
    assert left and all(p.name.endswith(".part") for p in left), left  # nothing looks done
    done = zm("send", big, "--to-dir", str(directory), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not any(p.name.endswith(".part") for p in files_in(directory))

    # --full-every 1: a new chain after one incremental; --keep-chains 1 keeps the newest.
    for short in ("zmake-b", "zmake-c", "zmake-d"):
        fill(big, 0.1, label=short)
        zfs("snapshot", f"{big}@{short}")
        zm("send", big, "--to-dir", str(directory), "--full-every", "1")
    chains = sorted(p.parent.name for p in directory.rglob("manifest.json"))
    assert len(chains) == 2, chains
    pruned = zm("prune", "--to-dir", str(directory), "--keep-chains", "1", "--yes")
    assert "deleted 1 chains" in pruned.stdout
    assert len(list(directory.rglob("manifest.json"))) == 1
    assert zm("verify", str(directory)).returncode == 0
    zm("restore", str(directory), "--into", f"{pools.dst}/big")
    newest = snapshot_guids(big)
    restored = snapshot_guids(f"{pools.dst}/big/big")
    assert restored and restored.items() <= newest.items() and "@zmake-d" in restored


def test_a_directory_on_another_host_over_ssh(pools, tree, zm, tmp_path):
    directory = f"/tmp/{pools.dst}-remote files"
    target = ["--remote", zm.remote, "--ssh", zm.ssh, "--to-dir", directory]
    done = zm("backup", pools.src, *target, "-j", "4", "--yes", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    more_snapshots(tree, "zmake-b")
    done = zm("backup", pools.src, *target, "-j", "4", "--yes", "--snapshot", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    verified = zm("verify", directory, "--remote", zm.remote, "--ssh", zm.ssh, check=False)
    assert verified.returncode == 0 and verified.stdout.count("OK ") == len(tree)
    restored = f"{pools.dst}/from-remote"
    done = zm("restore", directory, "--remote", zm.remote, "--ssh", zm.ssh, "--into", restored,
              check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_guids(restored) == snapshot_guids(pools.src)


def test_an_interrupted_restore_carries_on(pools, zm, tmp_path):
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    big = f"{pools.src}/big"
    zfs("create", big)
    fill(big, 3)
    zfs("snapshot", "-r", f"{pools.src}@zmake-a")
    fill(big, 0.2)
    zfs("snapshot", "-r", f"{pools.src}@zmake-b")
    directory = tmp_path / "files"
    zm("backup", pools.src, "--to-dir", str(directory), "--yes")
    plan = zm("restore", str(directory), "--into", f"{pools.dst}/r", "-n")
    assert plan.stdout.count("restore: ") == 4 and not exists(f"{pools.dst}/r")  # 2 x 2 files
    argv = [sys.executable, "-m", "zmake", "restore", str(directory), "--into", f"{pools.dst}/r"]
    proc = subprocess.Popen(argv, env=slow_zstd(zm, tmp_path), start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    kill_when(proc, lambda: exists(f"{pools.dst}/r/big"))
    done = zm("restore", str(directory), "--into", f"{pools.dst}/r", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_guids(f"{pools.dst}/r") == snapshot_guids(pools.src)


def rewrite_stream(path: Path, change: Callable[[bytearray], bytes]) -> None:
    """Change the stream inside `path` (decompressed, changed, recompressed by its own tool)
    and make its manifest agree, as a stream damaged before it was hashed would look."""
    tools = {".zst": ["zstd", "-q"], ".bz2": ["bzip2"], ".gz": ["gzip"], ".lz4": ["lz4", "-q"]}
    tool = tools[path.suffix]
    plain = subprocess.run([*tool, "-d", "-c", str(path)], capture_output=True, check=True).stdout
    packed = subprocess.run([*tool, "-c"], input=change(bytearray(plain)), capture_output=True,
                            check=True).stdout  # fmt: skip
    path.write_bytes(packed)
    manifest = path.parent / "manifest.json"
    document = json.loads(manifest.read_text())
    entry = next(f for f in document["files"] if f["name"] == path.name)
    entry["sha256"], entry["size"] = hashlib.sha256(packed).hexdigest(), len(packed)
    manifest.write_text(json.dumps(document))


def flip_middle(data: bytearray) -> bytes:
    data[len(data) // 2] ^= 0x01
    return bytes(data)


def test_a_chain_changing_compressor_restores_and_deep_verify_reads_real_streams(
    pools, tree, zm, tmp_path
):
    directory = tmp_path / "files"
    target = [pools.src, "--to-dir", str(directory), "-j", "2", "--yes"]
    zm("backup", *target, "--compress", "zstd")
    more_snapshots(tree, "zmake-b")
    zm("backup", *target, "--compress", "bzip2")  # the same chains, another compressor
    streams = [p for p in files_in(directory) if ".zfs" in p.name]
    assert {p.suffix for p in streams} == {".zst", ".bz2"}, streams
    deep = zm("verify", str(directory), "--deep", check=False)  # full, -I, raw, zvol streams
    assert deep.returncode == 0, deep.stdout + deep.stderr
    restored = f"{pools.dst}/mixed"
    done = zm("restore", str(directory), "--into", restored, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_guids(restored) == snapshot_guids(pools.src)

    # What only --deep sees: a stream changed (or cut) before it was hashed.
    home = [p for p in streams if p.suffix == ".bz2" and "home" in str(p.parent)
            and "my" not in str(p.parent)]  # fmt: skip
    (victim,) = home
    rewrite_stream(victim, flip_middle)
    plain = zm("verify", str(directory), check=False)
    assert plain.returncode == 0, plain.stdout  # the control: every SHA-256 agrees
    caught = zm("verify", str(directory), "--deep", check=False)
    assert caught.returncode == 1 and victim.name in caught.stdout, caught.stdout
    rewrite_stream(victim, lambda data: bytes(data[: len(data) * 3 // 4]))
    assert zm("verify", str(directory), check=False).returncode == 0
    cut = zm("verify", str(directory), "--deep", check=False)
    assert cut.returncode == 1 and victim.name in cut.stdout, cut.stdout
