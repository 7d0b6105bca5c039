"""Real-OpenZFS benchmarks: zmake against syncoid and zfs-autobackup, inside the test guest.

Run from the repository root (bench/run-realzfs.sh installs the peers and boots the guest):

    bench/run-realzfs.sh                      # every section, full sizes (~55 min)
    bench/run-realzfs.sh makespan --scale 0.1  # one section, a tenth of the data

Sections:
  makespan  12 nested datasets of skewed sizes, per-flow and link caps set by tc on loopback:
            zmake -j1/-j4/-j8, syncoid --recursive, zfs-autobackup; wall seconds, ratios to
            zmake -j8, and the lower bound max(total / link, largest / flow).
  flat16    16 sibling datasets (issue "slots and stamps"): zmake -j8 pushed and pulled, and
            -j16 (a job per dataset) vs syncoid, vs the bound, and the ssh connections each
            run opened.
  overhead  an up-to-date no-op over 60 datasets: ssh connections (sshd's log) and zfs
            invocations (a counting wrapper bind-mounted over the zfs binary), per dataset.
  datapath  one large dataset, no caps: zmake send vs the bare `zfs send | ssh zfs recv`.

Every timed run starts from an empty backup pool and is checked (snapshot GUIDs equal on both
sides) before its time is reported. Nothing here is pass/fail: it prints figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.realzfs.conftest import (  # noqa: E402  (the repository root is not installed)
    remote_name,
    run,
    snapshot_guids,
    ssh_config_path,
    sshd_connection_count,
    zfs,
    zpool,
)

WORK = Path("/tmp/zmake-bench")
SRC, DST = "bsrc", "bdst"
MiB = 1024 * 1024
FLOW_MBIT, LINK_MBIT = 2, 16
PEERS_VENV = Path(os.environ.get("ZMAKE_BENCH_VENV", "/opt/zmake-bench"))

# name below SRC → MiB written. Big leaves under small parents: children go before parents,
# so a big parent over a big child would make the chain, not one flow, the bound.
SKEWED = {
    "bench": 1, "bench/vm": 1, "bench/vm/disk one": 24, "bench/media": 2,
    "bench/media/photos": 16, "bench/media/music": 14, "bench/home": 2,
    "bench/home/alice": 12, "bench/home/bob": 10, "bench/docs": 8, "bench/mail": 6,
    "bench/db": 4,
}  # fmt: skip
FLAT16 = {"flat": 0.0, **{f"flat/d{n:02d}{' x' if n % 5 == 0 else ''}": 3.7 for n in range(16)}}
MANY60 = {"many": 0.0, **{f"many/d{n:02d}": 0.06 for n in range(60)}}
BIG = {"big": 192}  # the guest gets 6G: tmpfs holds both pools


# --- pools, data, caps --------------------------------------------------------------------


def fresh_pool(name: str) -> None:
    with_output(["zpool", "destroy", "-f", name], check=False)
    image = WORK / f"{name}.img"
    image.unlink(missing_ok=True)
    run(["truncate", "-s", "2G", str(image)])
    zpool("create", "-o", "cachefile=none", "-m", "none", name, str(image))


def build_source(tree: dict[str, float], scale: float) -> str:
    """A fresh source pool holding `tree` (random data), one recursive snapshot; its root."""
    fresh_pool(SRC)
    root = f"{SRC}/{next(iter(tree))}"
    for relative, mib in tree.items():
        name = f"{SRC}/{relative}"
        mountpoint = WORK / "mnt" / relative
        zfs("create", "-o", f"mountpoint={mountpoint}", name)
        write_random(mountpoint / "data.bin", int(mib * scale * MiB))
    zfs("snapshot", "-r", f"{root}@bench")
    return root


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        while size > 0:
            chunk = min(size, MiB)
            out.write(os.urandom(chunk))
            size -= chunk


def tree_bytes(root: str) -> dict[str, int]:
    """What each dataset's full stream carries (referenced at the snapshot)."""
    out = zfs("list", "-H", "-p", "-o", "name,referenced", "-t", "snapshot", "-r", root)
    return {line.split("\t")[0]: int(line.split("\t")[1]) for line in out.splitlines()}


@contextmanager
def capped_link() -> Iterator[None]:
    """The slow uplink: LINK_MBIT for everything on loopback, FLOW_MBIT per TCP flow."""
    tc = ["tc", "qdisc"]
    run([*tc, "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"])
    try:
        run(["tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb",
             "rate", f"{LINK_MBIT}mbit", "ceil", f"{LINK_MBIT}mbit"])  # fmt: skip
        run([*tc, "add", "dev", "lo", "parent", "1:10", "handle", "10:", "fq",
             "maxrate", f"{FLOW_MBIT}mbit"])  # fmt: skip
        yield
    finally:
        run([*tc, "del", "dev", "lo", "root"])


def lower_bound(sizes: dict[str, int]) -> float:
    total, largest = sum(sizes.values()), max(sizes.values())
    return max(total * 8 / (LINK_MBIT * 1e6), largest * 8 / (FLOW_MBIT * 1e6))


# --- the tools ----------------------------------------------------------------------------


TOOL_TIMEOUT = 1800  # seconds; a run past it is reported as failed, the others go on


def with_output(
    argv: list[str],
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = TOOL_TIMEOUT,
) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if check and done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}:\n" + "\n".join(tail))
    return done.stdout


def ssh_command() -> str:
    return f"ssh -F {ssh_config_path()}"


def zmake_backup(root: str, jobs: int, run_dir: Path | None = None) -> None:
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="run-", dir=WORK))
    with_output([sys.executable, "-m", "zmake", "backup", root, "-j", str(jobs), "--yes",
                 "--remote", remote_name(), "--ssh", ssh_command(), "--dest", DST,
                 "--run-dir", str(run_dir)])  # fmt: skip


def zmake_pull(root: str, jobs: int) -> None:
    """The same backup pulled: make runs on the backup side (here), the source over ssh."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=WORK))
    with_output([sys.executable, "-m", "zmake", "backup", root, "-j", str(jobs), "--yes",
                 "--source", remote_name(), "--ssh", ssh_command(), "--dest", DST,
                 "--run-dir", str(run_dir)])  # fmt: skip


def ideal_shell(root: str, jobs: int) -> None:
    """The floor under any tool that keeps a connection per job: `jobs` ssh masters opened at
    once, each carrying its share of the children's full streams back to back, then the parent
    (-F over the placeholder the children made). No queries, no interpreter, no umount: what is
    left is key exchanges, the streams and their CPU."""
    children = sorted(
        line.split("@")[0] for line in tree_bytes(root) if not line.startswith(f"{root}@")
    )
    ssh, remote = ssh_command(), remote_name()
    sockets = [WORK / f"ideal-{slot}.sock" for slot in range(jobs)]

    def stream(name: str, socket: Path, force: str = "") -> str:
        receive = shlex.quote(f"zfs recv -u -s {force}-d {DST}")
        once = (f"zfs send -L -c {shlex.quote(name + '@bench')} | "
                f"{ssh} -S {socket} -o ControlMaster=no {remote} {receive}")  # fmt: skip
        # Two children may both create the missing parent; the loser fails at once: again.
        return f"{{ {once} || {once}; }}"

    per_slot = [[stream(name, socket) for name in children[slot::jobs]]
                for slot, socket in enumerate(sockets)]  # fmt: skip
    over_masters(sockets, per_slot, stream(root, sockets[0], "-F "))


def over_masters(sockets: list[Path], per_slot: list[list[str]], last: str) -> None:
    """A bash script: a master per socket, all opened at once, each then running its own
    streams back to back; `last` (the parent) after all of them; the masters closed."""
    ssh, remote = ssh_command(), remote_name()
    workers = []
    for socket, streams in zip(sockets, per_slot, strict=True):
        steps = [f"{ssh} -M -S {socket} -o ControlPersist=yes -fN {remote}", *streams]
        workers.append("( " + " && ".join(steps) + " ) &")
    close = [f"{ssh} -S {socket} -O exit {remote} 2>/dev/null || true" for socket in sockets]
    script = ["set -eo pipefail", *workers, "for job in $(jobs -p); do wait $job; done", last,
              *close]  # fmt: skip
    with_output(["bash", "-c", "\n".join(script)])


def syncoid(root: str) -> None:
    key = ssh_config_path().parent / "id_ed25519"
    options = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"]
    with_output(["syncoid", "--recursive", "--no-sync-snap", "--compress=none",
                 f"--sshkey={key}", *[f"--sshoption={o}" for o in options],
                 root, f"root@127.0.0.1:{DST}/{root.partition('/')[2]}"])  # fmt: skip


def zfs_autobackup(root: str) -> None:
    label = root.partition("/")[2]
    zfs("set", f"autobackup:{label}=true", root)
    with_output([str(PEERS_VENV / "bin" / "zfs-autobackup"), "--ssh-config",
                 str(ssh_config_path()), "--ssh-target", remote_name(), "--no-snapshot",
                 "--other-snapshots", "--no-progress", "--clear-mountpoint", "--strip-path", "1",
                 label, DST])  # fmt: skip


@dataclass
class Timed:
    tool: str
    seconds: float
    connections: int
    cpu_seconds: float


def busy_cpu_seconds() -> float:
    """CPU time the whole guest has spent not idle (every process, kernel included)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields) - idle - iowait) / os.sysconf("SC_CLK_TCK")


TOOLS: list[str] = []  # --tools: run only the contenders whose name contains one of these


def timed_run(tool: str, action: Callable[[], None], root: str) -> Timed | None:
    """One run into an empty backup pool, verified (GUIDs) before its time counts; None
    (and the reason printed) when the tool failed."""
    fresh_pool(DST)
    before = sshd_connection_count()
    cpu_before = busy_cpu_seconds()
    started = time.monotonic()
    try:
        action()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"  {tool:<16} FAILED after {time.monotonic() - started:.0f} s: {exc}", flush=True)
        return None
    seconds = time.monotonic() - started
    cpu = busy_cpu_seconds() - cpu_before
    connections = sshd_connection_count() - before
    mirror = f"{DST}/{root.partition('/')[2]}"
    if snapshot_guids(mirror) != snapshot_guids(root):
        raise RuntimeError(f"{tool}: {mirror} does not hold every snapshot of {root}")
    print(f"  {tool:<16} {seconds:8.1f} s  {connections:3d} ssh connections  "
          f"{cpu:6.1f} CPU-s", flush=True)  # fmt: skip
    return Timed(tool, seconds, connections, cpu)


# --- sections -----------------------------------------------------------------------------


def makespan(scale: float, tree: dict[str, float], contenders: dict[str, Callable[[str], None]]):
    root = build_source(tree, scale)
    sizes = tree_bytes(root)
    bound = lower_bound(sizes)
    print(f"  {len(sizes)} datasets, {sum(sizes.values()) / MiB:.1f} MiB, largest "
          f"{max(sizes.values()) / MiB:.1f} MiB; caps {FLOW_MBIT} Mbit/flow, {LINK_MBIT} Mbit "
          f"link; lower bound {bound:.1f} s", flush=True)  # fmt: skip
    chosen = {tool: action for tool, action in contenders.items()
              if not TOOLS or any(part in tool for part in TOOLS)}  # fmt: skip
    with capped_link():
        runs = [timed_run(tool, lambda a=action: a(root), root)
                for tool, action in chosen.items()]  # fmt: skip
    results = [r for r in runs if r is not None]
    reference = next((r for r in results if r.tool == "zmake -j8"), results[0])
    print(f"  {'tool':<16} {'seconds':>8}  {'÷ ' + reference.tool:>11}  {'÷ bound':>8}  "
          "ssh/dataset  CPU-s")  # fmt: skip
    for r in results:
        print(f"  {r.tool:<16} {r.seconds:8.1f}  {r.seconds / reference.seconds:11.2f}  "
              f"{r.seconds / bound:8.2f}  {r.connections / len(sizes):11.2f}  "
              f"{r.cpu_seconds:5.1f}")  # fmt: skip
    return {"bound": bound, "bytes": sum(sizes.values()), "datasets": len(sizes),
            "runs": [r.__dict__ for r in results]}  # fmt: skip


def section_makespan(scale: float):
    print("== makespan: 12 nested datasets, skewed sizes", flush=True)
    return makespan(scale, SKEWED, {
        "zmake -j1": lambda r: zmake_backup(r, 1),
        "zmake -j4": lambda r: zmake_backup(r, 4),
        "zmake -j8": lambda r: zmake_backup(r, 8),
        "syncoid": syncoid,
        "zfs-autobackup": zfs_autobackup,
    })  # fmt: skip


def section_flat16(scale: float):
    print("== flat16: 16 sibling datasets", flush=True)
    return makespan(scale, FLAT16, {
        "zmake -j8": lambda r: zmake_backup(r, 8),
        "zmake pull -j8": lambda r: zmake_pull(r, 8),
        "zmake -j16": lambda r: zmake_backup(r, 16),
        "shell floor 8": lambda r: ideal_shell(r, 8),
        "syncoid": syncoid,
    })  # fmt: skip


@contextmanager
def counting_zfs() -> Iterator[Path]:
    """Every zfs invocation on this machine (both sides) appends a line to the yielded log."""
    real = Path(shutil.which("zfs") or "/usr/sbin/zfs").resolve()
    copy, wrapper, log = WORK / "zfs.real", WORK / "zfs-counting", WORK / "zfs-calls.log"
    shutil.copy2(real, copy)
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {copy} "$@"\n')
    wrapper.chmod(0o755)
    log.write_text("")
    run(["mount", "--bind", str(wrapper), str(real)])
    try:
        yield log
    finally:
        run(["umount", str(real)])


def count_noop(tool: str, action: Callable[[], None], datasets: int, log: Path) -> dict:
    before_ssh, before_zfs = sshd_connection_count(), len(log.read_text().splitlines())
    started = time.monotonic()
    try:
        action()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"  {tool:<28} FAILED: {exc}", flush=True)
        return {"tool": tool, "failed": str(exc)}
    seconds = time.monotonic() - started
    ssh = sshd_connection_count() - before_ssh
    calls = len(log.read_text().splitlines()) - before_zfs
    print(f"  {tool:<28} {seconds:7.1f} s  ssh {ssh:4d} ({ssh / datasets:.2f}/dataset)  "
          f"zfs {calls:5d} ({calls / datasets:.2f}/dataset)", flush=True)  # fmt: skip
    return {"tool": tool, "seconds": seconds, "ssh": ssh, "zfs": calls}


def section_overhead(scale: float):
    print("== overhead: an up-to-date no-op over 60 datasets and their parent", flush=True)
    root = build_source(MANY60, 1.0)
    datasets = len(tree_bytes(root))
    fresh_pool(DST)
    stamped = WORK / "run-stamped"
    shutil.rmtree(stamped, ignore_errors=True)
    zmake_backup(root, 8, stamped)  # the initial replication, not counted
    with counting_zfs() as log:
        return [
            count_noop("zmake backup (stamps kept)", lambda: zmake_backup(root, 8, stamped),
                       datasets, log),
            count_noop("zmake backup (fresh run dir)", lambda: zmake_backup(root, 8),
                       datasets, log),
            count_noop("syncoid --recursive", lambda: syncoid(root), datasets, log),
            count_noop("zfs-autobackup", lambda: zfs_autobackup(root), datasets, log),
        ]  # fmt: skip


def bare_pipeline(root: str) -> None:
    command = (f"set -o pipefail; zfs send -L -c {shlex.quote(root + '@bench')} | "
               f"{ssh_command()} {remote_name()} "
               f"{shlex.quote(f'zfs recv -u -s -d {DST}')}")  # fmt: skip
    with_output(["bash", "-c", command])


def zmake_send(root: str, report: Path) -> None:
    env = dict(os.environ, ZMAKE_REPORT=str(report), ZMAKE_RUN_DIR=str(WORK / "run-send"))
    with_output([sys.executable, "-m", "zmake", "send", root, "--remote", remote_name(),
                 "--ssh", ssh_command(), "--dest", DST], env=env)  # fmt: skip


def checked(result: Timed | None) -> float:
    if result is None:
        raise RuntimeError("a data-path run failed; no ratio to report")
    return result.seconds


def section_datapath(scale: float):
    print("== datapath: one large dataset, no caps", flush=True)
    root = build_source(BIG, scale)
    size = sum(tree_bytes(root).values())
    report = WORK / "send-report.jsonl"
    bare, ours, piped = [], [], []
    for _ in range(2):  # alternate, keep the best of each
        bare.append(checked(timed_run("bare pipeline", lambda: bare_pipeline(root), root)))
        report.unlink(missing_ok=True)
        ours.append(checked(timed_run("zmake send", lambda: zmake_send(root, report), root)))
        piped.append(float(json.loads(report.read_text().splitlines()[-1])["seconds"]))
    rate = size / MiB
    print(f"  {size / MiB:.0f} MiB: bare {rate / min(bare):.2f} MiB/s; zmake send transfer "
          f"{rate / min(piped):.2f} MiB/s (ratio {min(bare) / min(piped):.2f}), end to end "
          f"{rate / min(ours):.2f} MiB/s (ratio {min(bare) / min(ours):.2f})")  # fmt: skip
    return {"bytes": size, "bare": bare, "zmake_transfer": piped, "zmake_end_to_end": ours}


SECTIONS = {
    "makespan": section_makespan,
    "flat16": section_flat16,
    "datapath": section_datapath,
    "overhead": section_overhead,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply data sizes")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--tools", help="comma-separated parts of contender names to run only")
    args = parser.parse_args()
    TOOLS.extend(part for part in (args.tools or "").split(",") if part)
    if os.environ.get("ZMAKE_GUEST") != "1":
        # it creates and destroys pools named bsrc/bdst: never on a real machine
        parser.error("runs only inside the test guest: use bench/run-realzfs.sh")
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    version = zfs("version").splitlines()[0]
    print(f"zmake bench, {version}, {os.cpu_count()} guest CPUs (TCG), scale {args.scale}")
    figures = {}
    try:
        for name in args.sections or SECTIONS:
            started = time.monotonic()
            figures[name] = SECTIONS[name](args.scale)
            print(f"  ({name}: {time.monotonic() - started:.0f} s)", flush=True)
    finally:
        for pool in (SRC, DST):
            with_output(["zpool", "destroy", "-f", pool], check=False)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
