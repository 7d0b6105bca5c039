"""`zmake generate` on the guest's pools, and the generated Makefile run by make -jN."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.realzfs.support import execute, exists, fill, snapshot_guids, zfs

TREE = ("home", "home/alice", "home/bob smith", "media", "media/films:2024", "vm")


@pytest.fixture
def tree(pools) -> list[str]:
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    names = [f"{pools.src}/{name}" for name in TREE]
    for index, name in enumerate(names):
        zfs("create", name)
        fill(name, 0.3 + 0.4 * index)
    zfs("snapshot", "-r", f"{pools.src}@first")
    for name in names[:3]:
        fill(name, 0.2)
    zfs("snapshot", "-r", f"{pools.src}@second")
    return names


def counting_zfs(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH directory whose `zfs` logs each call, then runs the real zfs."""
    real = execute("sh", "-c", "command -v zfs").stdout.strip()
    folder = tmp_path / "counting"
    folder.mkdir()
    log = tmp_path / "zfs-calls.log"
    wrapper = folder / "zfs"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return folder, log


def test_generate_reads_pool_with_two_zfs_calls(pools, tree, zm, tmp_path) -> None:
    folder, log = counting_zfs(tmp_path)
    env = zm.env()
    env["PATH"] = f"{folder}:{env['PATH']}"
    makefile = tmp_path / "Makefile"
    done = subprocess.run(
        ["python3", "-m", "zmake", "generate", pools.src, *zm.target_args(), "-o", str(makefile)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert log.read_text().split() == ["list", "get"]
    dry = execute("make", "-n", "-f", str(makefile)).stdout
    sends = [line for line in dry.splitlines() if " send --stamp " in line]
    assert len(sends) == len(tree) + 1  # every dataset and the pool root
    order = [line.split("' -- ", 1)[1].strip("'") for line in sends]
    assert order.index(f"{pools.src}/home/alice") < order.index(f"{pools.src}/home")
    assert order[-1] == pools.src


def run_make(
    makefile: Path, jobs: int, env: dict[str, str], *overrides: str, cwd: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["make", f"-j{jobs}", "-f", str(makefile), *overrides],
        env=env, start_new_session=True, text=True, cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def planted(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """Where a stranger could have planted a `zmake` package: a directory (to run make in)
    and PYTHONPATH (with a sitecustomize too). Each writes a file into the markers folder
    when Python imports it (issue 23: the Makefile's ZMAKE must run neither)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    spy = "import pathlib\npathlib.Path({!r}).write_text(__file__)\n"
    folders = {"cwd": tmp_path / "writable", "pythonpath": tmp_path / "pythonpath"}
    for name, folder in folders.items():
        (folder / "zmake").mkdir(parents=True)
        for module in ("__init__.py", "__main__.py"):
            (folder / "zmake" / module).write_text(spy.format(str(markers / name)))
    sitecustomize = folders["pythonpath"] / "sitecustomize.py"
    sitecustomize.write_text(spy.format(str(markers / "sitecustomize")))
    return folders["cwd"], {"PYTHONPATH": str(folders["pythonpath"])}, markers


def test_make_j4_killed_then_rerun_converges(pools, tree, zm, ssh_config, tmp_path) -> None:
    """Every make runs in a directory holding a planted `zmake`, with PYTHONPATH pointing at
    another: the backup completes all the same, and neither ever runs."""
    makefile = tmp_path / "Makefile"
    zm("generate", pools.src, *zm.target_args(), "-o", str(makefile))
    slow = tmp_path / "slowssh"
    slow.write_text(f'#!/bin/sh\npv -q -L 300k | ssh -F {ssh_config} "$@"\n')
    slow.chmod(0o755)
    cwd, hostile, markers = planted(tmp_path)
    env = {**zm.env(), **hostile}
    make = run_make(makefile, 4, env, f"SSH={slow}", cwd=cwd)
    time.sleep(20)
    for _ in range(120):  # a loaded host: until the first receive has begun
        if exists(pools.backup):
            break
        time.sleep(1)
    assert make.poll() is None, "the throttled run finished before it could be killed"
    os.killpg(make.pid, signal.SIGKILL)
    print(make.communicate()[0])  # shown if what follows fails
    partial = snapshot_guids(pools.backup)
    assert partial != snapshot_guids(pools.src)

    rerun = run_make(makefile, 4, env, cwd=cwd)
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output
    assert snapshot_guids(pools.backup) == snapshot_guids(pools.src)
    again = run_make(makefile, 4, env, cwd=cwd)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output
    # every target's stamp now exists: the third run sends nothing and says nothing (the
    # Makefile checked itself against the pools, silently, and `all` found no failure)
    assert output == "", output
    assert sorted(path.name for path in markers.iterdir()) == []
    # The control: the plants are live; `python -m zmake` from there runs the stranger's.
    subprocess.run(["python3", "-m", "zmake", "--version"], cwd=cwd, env=env, check=False)
    assert sorted(path.name for path in markers.iterdir()) == ["cwd", "sitecustomize"]
