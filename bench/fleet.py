"""Many machines, one backup host (issue 26) on real OpenZFS: S simulated sources of D
datasets each, every source its own pool behind its own sshd address, pulled into one backup
pool. zmake's fleet (one config, one Makefile, `-j8`, at most 2 streams per host) against a
shell loop of syncoid runs and of bzfs runs (a source per job, 8 jobs at once under
`xargs -P`), side by side in one run, with the link caps of bench/realzfs.py.

    bench/run-realzfs.sh fleet                            # 20 sources x 20 datasets
    bench/run-realzfs.sh fleet --sources 4 --datasets 5   # a quick look
    bench/run-realzfs.sh fleet --tools zmake --budget 1800

Two nights per contender: a small change (64 KiB new in every dataset and a new recursive
snapshot on every source), then the same again with nothing new. The first night (untimed)
is zmake's own full replication, so its bookmarks and stamps exist as on any later night.
Every timed night is checked (every source's snapshot GUIDs on the backup host) before its
time counts. Connections are the logins every source's sshd logged; zfs calls are counted
on both sides by a wrapper over the zfs binary."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realzfs import (
    DST,
    PEERS_VENV,
    WORK,
    busy_cpu_seconds,
    capped_link,
    counting_zfs,
    fresh_pool,
    snapshot_guids,
    with_output,
    write_random,
    zfs,
)

from tests.realzfs.hosts import logins, root_ssh_dir, ssh_config, sshds

JOBS, HOST_STREAMS = 8, 2
CHANGE = 64 * 1024
RUN_DIR = WORK / "run-fleet"
NIGHT_TIMEOUT = 3 * 3600
Action = Callable[[], None]


@dataclass(frozen=True)
class Source:
    name: str  # the fleet's name for it, and its Host in the ssh config
    address: str  # its sshd's loopback address
    pool: str

    @property
    def root(self) -> str:
        return f"{self.pool}/data"

    @property
    def mirror(self) -> str:
        return f"{DST}/{self.name}/data"


def fleet(count: int) -> list[Source]:
    return [Source(f"s{i:02d}", f"127.0.1.{i + 1}", f"fs{i:02d}") for i in range(count)]


def build(sources: list[Source], datasets: int) -> list[str]:
    """Every source's pool with `datasets` children of 64 KiB below POOL/data, snapshot @n0;
    the backup pool with a dataset per source. Returns every child, all sources."""
    children = []
    for source in sources:
        fresh_pool(source.pool)
        zfs("create", "-o", f"mountpoint={WORK / 'mnt' / source.pool}", source.root)
        for i in range(datasets):
            child = f"{source.root}/d{i:02d}{' x:y' if i % 10 == 0 else ''}"
            zfs("create", child)
            write_random(mountpoint(child) / "base.bin", CHANGE)
            children.append(child)
        zfs("snapshot", "-r", f"{source.root}@n0")
    fresh_pool(DST)
    for source in sources:
        zfs("create", f"{DST}/{source.name}")
    return children


def mountpoint(name: str) -> Path:
    return Path(zfs("get", "-H", "-o", "value", "mountpoint", name).strip())


def next_night(sources: list[Source], children: list[str], night: int) -> None:
    for child in children:
        write_random(mountpoint(child) / f"night-{night}.bin", CHANGE)
    for source in sources:
        zfs("snapshot", "-r", f"{source.root}@n{night}")


def zmake_config(sources: list[Source], client: Path) -> Path:
    lines = [f'ssh = "ssh -F {client}"', f"jobs = {JOBS}", f"host-streams = {HOST_STREAMS}",
             f'run-dir = "{RUN_DIR}"', "snapshot = false", "prune = false"]  # fmt: skip
    for source in sources:
        lines += ["", f"[sources.{source.name}]", f'source = "root@{source.name}"',
                  f'dest = "{DST}/{source.name}"', f'pools = ["{source.root}"]']  # fmt: skip
    path = WORK / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def zmake(config: Path) -> None:
    with_output([sys.executable, "-m", "zmake", "backup", "--all", "-c", str(config), "--yes"],
                timeout=NIGHT_TIMEOUT)  # fmt: skip


def loop(per_source: list[list[str]]) -> None:
    """The peers' way: a job per source, JOBS of them at once (`xargs -P`), each its tool's
    command; any failure fails the loop."""
    script = WORK / "loop.txt"
    script.write_text("".join(shlex.join(argv) + "\0" for argv in per_source))
    command = f"xargs -0 -P {JOBS} -I CMD bash -c CMD < {shlex.quote(str(script))}"
    with_output(["bash", "-c", command], timeout=NIGHT_TIMEOUT)


def syncoid_argv(source: Source) -> list[str]:
    key = root_ssh_dir() / "id_ed25519"
    options = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"]
    return ["syncoid", "--recursive", "--no-sync-snap", "--compress=none", f"--sshkey={key}",
            *[f"--sshoption={o}" for o in options], f"root@{source.address}:{source.root}",
            source.mirror]  # fmt: skip


def bzfs_argv(source: Source, client: Path) -> list[str]:
    return [str(PEERS_VENV / "bin" / "bzfs"), f"root@{source.name}:{source.root}", source.mirror,
            "--recursive", f"--threads={HOST_STREAMS}", f"--ssh-src-config-file={client}",
            "--compression-program=-", "--mbuffer-program=-", "--pv-program=-"]  # fmt: skip


@dataclass
class Night:
    tool: str
    seconds: float
    connections: int
    zfs_calls: int
    cpu: float


def contenders(sources: list[Source], config: Path, client: Path) -> list[tuple[str, Action]]:
    peers_config = WORK / "bzfs_ssh_config"  # bzfs wants that name in the file's
    shutil.copy(client, peers_config)
    return [
        ("zmake fleet -j8", lambda: zmake(config)),
        ("bzfs loop", lambda: loop([bzfs_argv(s, peers_config) for s in sources])),
        ("syncoid loop", lambda: loop([syncoid_argv(s) for s in sources])),
    ]


def timed(tool: str, action: Callable[[], None], sources: list[Source], logs: dict[str, Path],
          calls: Path) -> Night:  # fmt: skip
    before = sum(logins(log) for log in logs.values()), len(calls.read_text().splitlines())
    cpu, started = busy_cpu_seconds(), time.monotonic()
    action()
    seconds = time.monotonic() - started
    for source in sources:
        if snapshot_guids(source.mirror) != snapshot_guids(source.root):
            raise RuntimeError(f"{tool}: {source.mirror} lacks a snapshot of {source.root}")
    connections = sum(logins(log) for log in logs.values()) - before[0]
    zfs_calls = len(calls.read_text().splitlines()) - before[1]
    night = Night(tool, seconds, connections, zfs_calls, busy_cpu_seconds() - cpu)
    print(f"  {tool:<28} {seconds:7.1f} s  {night.connections:4d} ssh logins", flush=True)
    return night


def nights(sources: list[Source], children: list[str], budget: float, wanted: list[str],
           logs: dict[str, Path], calls: Path) -> list[Night]:  # fmt: skip
    client = WORK / "fleet_ssh_config"
    config = zmake_config(sources, client)
    rows, night, started = [], 0, time.monotonic()
    for tool, action in contenders(sources, config, client):
        if wanted and not any(part in tool for part in wanted):
            continue
        for change in (True, False):
            label = f"{tool}, {'small change' if change else 'no change'}"
            if time.monotonic() - started > budget:
                print(f"  {label:<28} not run: past the budget of {budget:.0f} s", flush=True)
                continue
            if change:
                night += 1
                next_night(sources, children, night)
            try:
                rows.append(timed(label, action, sources, logs, calls))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"  {label:<28} FAILED: {exc}", flush=True)
                return rows  # the next night would start from an unknown state
    return rows


def report(rows: list[Night], datasets: int) -> None:
    zmake = {row.tool.rpartition(", ")[2]: row.seconds for row in rows if "zmake" in row.tool}
    print("| night | seconds | ÷ zmake's | ssh logins | zfs calls per dataset "
          "| CPU-s per dataset | seconds per dataset |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ours = zmake.get(row.tool.rpartition(", ")[2])
        ratio = f"{row.seconds / ours:.2f}" if ours else "-"
        print(f"| {row.tool} | {row.seconds:.1f} | {ratio} | {row.connections} | "
              f"{row.zfs_calls / datasets:.2f} | {row.cpu / datasets:.2f} | "
              f"{row.seconds / datasets:.3f} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--datasets", type=int, default=20, help="per source")
    parser.add_argument("--tools", help="comma-separated parts of contender names to run only")
    parser.add_argument("--budget", type=float, default=6000,
                        help="seconds: no night starts after this long")  # fmt: skip
    args = parser.parse_args()
    if os.environ.get("ZMAKE_GUEST") != "1":
        parser.error("runs only inside the test guest: use bench/run-realzfs.sh fleet")
    if not 1 <= args.sources <= 250:
        parser.error("--sources: 1 to 250 (an address each in 127.0.1.0/24)")
    WORK.mkdir(parents=True, exist_ok=True)
    sources = fleet(args.sources)
    wanted = [part for part in (args.tools or "").split(",") if part]
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            logs = stack.enter_context(sshds([s.address for s in sources], WORK))
            ssh_config({s.name: s.address for s in sources}, WORK / "fleet_ssh_config")
            children = build(sources, args.datasets)
            shutil.rmtree(RUN_DIR, ignore_errors=True)
            zmake(zmake_config(sources, WORK / "fleet_ssh_config"))  # the first night
            datasets = len(children) + len(sources)
            print(f"== the fleet: {len(sources)} sources, {datasets} datasets, "
                  f"{CHANGE // 1024} KiB new in each per night; built and first night in "
                  f"{time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
            stack.enter_context(capped_link())
            calls = stack.enter_context(counting_zfs())
            rows = nights(sources, children, args.budget, wanted, logs, calls)
    finally:
        for pool in [DST, *(s.pool for s in sources)]:
            with_output(["zpool", "destroy", "-f", pool], check=False)
    report(rows, datasets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
