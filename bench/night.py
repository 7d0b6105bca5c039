"""The typical night on real OpenZFS (issue "speed at scale"): N small datasets, each with a
small change and one new snapshot, the backup holding the previous one. zmake against the
shell floor, bzfs and syncoid, side by side in one run, in the test guest, with the link caps
of bench/realzfs.py (16 Mbit link, 2 Mbit per flow).

    bench/run-realzfs.sh night                  # 100 datasets (~25 min, syncoid most of it)
    bench/run-realzfs.sh night --datasets 1000 --tools 'floor,zmake,bzfs'

Each contender gets a night of its own: 64 KiB new in every dataset and a new recursive
snapshot, sent from the one the previous contender left on both sides (the first night is
seeded by zmake, untimed, so zmake's own bookmarks exist as on any later night). Every run is
checked (all snapshot GUIDs equal on both sides) before its time counts.

The floor is the same design with no tool at all: 8 ssh masters opened at once, then a bare
`zfs send -i | ssh … zfs recv` per dataset, round robin over them, the parent last."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realzfs import (
    DST,
    PEERS_VENV,
    SRC,
    WORK,
    busy_cpu_seconds,
    capped_link,
    counting_zfs,
    fresh_pool,
    over_masters,
    remote_name,
    snapshot_guids,
    ssh_command,
    ssh_config_path,
    sshd_connection_count,
    syncoid,
    with_output,
    write_random,
    zfs,
    zmake_backup,
)

JOBS = 8
CHANGE = 64 * 1024
RUN_DIR = WORK / "run-night"  # one run directory for every zmake night, as a cron job keeps
NO_CHANGE = "zmake, no change"  # the night after zmake's, with no new snapshot


def build(count: int) -> tuple[str, list[str]]:
    """bsrc/night with `count` children of 64 KiB, snapshot @n0; bdst seeded by zmake."""
    fresh_pool(SRC)
    root = f"{SRC}/night"
    zfs("create", "-o", f"mountpoint={WORK / 'mnt' / 'night'}", root)
    children = [f"{root}/d{i:04d}{' x:y' if i % 10 == 0 else ''}" for i in range(count)]
    for child in children:
        zfs("create", child)
        write_random(mountpoint(child) / "base.bin", CHANGE)
    zfs("snapshot", "-r", f"{root}@n0")
    fresh_pool(DST)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    zmake_backup(root, JOBS, RUN_DIR)
    return root, children


def mountpoint(name: str) -> Path:
    return Path(zfs("get", "-H", "-o", "value", "mountpoint", name).strip())


def next_night(root: str, children: list[str], night: int) -> None:
    for child in children:
        write_random(mountpoint(child) / f"night-{night}.bin", CHANGE)
    zfs("snapshot", "-r", f"{root}@n{night}")


def floor(root: str, children: list[str], night: int) -> None:
    ssh, remote = ssh_command(), remote_name()
    sockets = [WORK / f"floor-{slot}.sock" for slot in range(JOBS)]

    def stream(name: str, socket: Path) -> str:
        backup = f"{DST}/{name.partition('/')[2]}"
        receive = shlex.quote(f"zfs recv -u {shlex.quote(backup)}")
        return (f"zfs send -i @n{night - 1} {shlex.quote(f'{name}@n{night}')} | "
                f"{ssh} -S {socket} -o ControlMaster=no {remote} {receive}")  # fmt: skip

    per_slot = [[stream(name, socket) for name in children[slot::JOBS]]
                for slot, socket in enumerate(sockets)]  # fmt: skip
    over_masters(sockets, per_slot, stream(root, sockets[0]))


def bzfs(root: str) -> None:
    config = WORK / "bzfs_ssh_config"  # bzfs wants that name in the file's
    shutil.copy(ssh_config_path(), config)
    with_output([str(PEERS_VENV / "bin" / "bzfs"), root,
                 f"{remote_name()}:{DST}/{root.partition('/')[2]}", "--recursive",
                 f"--threads={JOBS}", f"--ssh-dst-config-file={config}",
                 "--compression-program=-", "--mbuffer-program=-", "--pv-program=-"])  # fmt: skip


def contenders(children: list[str]) -> dict[str, Callable[[str, int], None]]:
    return {
        "shell floor 8": lambda root, night: floor(root, children, night),
        "zmake -j8": lambda root, night: zmake_backup(root, JOBS, RUN_DIR),
        NO_CHANGE: lambda root, night: zmake_backup(root, JOBS, RUN_DIR),
        "bzfs --threads=8": lambda root, night: bzfs(root),
        "syncoid": lambda root, night: syncoid(root),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--tools", help="comma-separated parts of contender names to run only")
    args = parser.parse_args()
    if os.environ.get("ZMAKE_GUEST") != "1":
        parser.error("runs only inside the test guest: use bench/run-realzfs.sh night")
    WORK.mkdir(parents=True, exist_ok=True)
    wanted = [part for part in (args.tools or "").split(",") if part]
    started = time.monotonic()
    root, children = build(args.datasets)
    datasets = len(children) + 1
    print(f"== the night: {datasets} datasets, {CHANGE // 1024} KiB new in each; seeded in "
          f"{time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
    rows = []
    try:
        with capped_link(), counting_zfs() as log:
            night = 0
            for tool, action in contenders(children).items():
                if wanted and not any(part in tool for part in wanted):
                    continue
                if tool != NO_CHANGE:
                    night += 1
                    next_night(root, children, night)
                try:
                    run = lambda a=action, n=night: a(root, n)  # noqa: E731
                    rows.append(timed(tool, run, root, log))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    print(f"  {tool:<18} FAILED: {exc}", flush=True)
                    break  # the next night would start from an unknown state
    finally:
        for pool in (SRC, DST):
            with_output(["zpool", "destroy", "-f", pool], check=False)
    report(rows, datasets)
    return 0


def timed(tool: str, action: Callable[[], None], root: str, log: Path) -> dict[str, float | str]:
    calls, ssh = len(log.read_text().splitlines()), sshd_connection_count()
    cpu, started = busy_cpu_seconds(), time.monotonic()
    action()
    seconds = time.monotonic() - started
    mirror = f"{DST}/{root.partition('/')[2]}"
    if snapshot_guids(mirror) != snapshot_guids(root):
        raise RuntimeError(f"{tool}: {mirror} does not hold every snapshot of {root}")
    row = {"tool": tool, "seconds": seconds, "cpu": busy_cpu_seconds() - cpu,
           "ssh": sshd_connection_count() - ssh,
           "zfs": len(log.read_text().splitlines()) - calls}  # fmt: skip
    print(f"  {tool:<18} {seconds:7.1f} s", flush=True)
    return row


def report(rows: list[dict[str, float | str]], datasets: int) -> None:
    by_tool = {str(row["tool"]): row for row in rows}
    floor_s = float(by_tool.get("shell floor 8", rows[0])["seconds"])
    zmake_s = float(by_tool.get("zmake -j8", rows[0])["seconds"])
    print(
        "| tool | seconds | ÷ floor | ÷ zmake | ssh connections | zfs calls per dataset "
        "| CPU-s per dataset |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        seconds = float(row["seconds"])
        print(f"| {row['tool']} | {seconds:.1f} | {seconds / floor_s:.2f} | "
              f"{seconds / zmake_s:.2f} | {row['ssh']} | {float(row['zfs']) / datasets:.2f} | "
              f"{float(row['cpu']) / datasets:.2f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
