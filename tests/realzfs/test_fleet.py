"""Many machines, one backup host (issue 26) on real OpenZFS: a fleet config pulled by
`zmake backup` through distinct sshd addresses in one Makefile, each source host held to its
streams, an unreachable host failing once and alone, a frozen stream stopped and left
resumable, and the next run finishing with every GUID; the fleet's check (a pushed source
judged by its backups' creation) and status; a host lost mid-night failing its sends once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from tests.realzfs.hosts import NOTHING_LISTENS, kill_host, logins, ssh_config, sshds
from tests.realzfs.support import (
    bytes_counter,
    crawling_ssh,
    fill,
    snapshot_guids,
    wait_for_bytes,
    zfs,
)

# source → (its sshd address, its datasets below <src pool>/<source>)
SOURCES = {
    "a": ("127.0.0.1", ["d1", "d2", "d3", "d4"]),
    "b": ("127.0.0.3", ["d1", "d2", "d3", "d4"]),
    "c": ("127.0.0.4", ["d1", "d2"]),
}
STALL = "30s"  # under emulation 8 streams starting at once can idle 10 s
MEGABYTES = 1.5  # per dataset and snapshot: more than a batch's small send (1 MiB)


class StreamCounter:
    """The most streams of each source running at once: the throttling pv of its ssh wrapper
    behind a remote `zfs send` (the send itself may end early, its data in socket buffers)."""

    def __init__(self, wrappers: dict[str, str]) -> None:
        self.wrappers = wrappers
        self.most: Counter[str] = Counter()
        self.running = True
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self) -> None:
        while self.running:  # /proc read here: a `ps` per poll would starve the guest's CPU
            now: Counter[str] = Counter()
            for _pid, parent in streams():
                for source, wrapper in self.wrappers.items():
                    if wrapper in parent:
                        now[source] += 1
            self.most |= now
            time.sleep(0.3)

    def stop(self) -> Counter[str]:
        self.running = False
        self.thread.join()
        return self.most


def relays(name: str) -> list[tuple[int, list[str]]]:
    """Every process called `name`, with its parent's argv."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if (stat.parent / "comm").read_text().strip() != name:
                continue
            ppid = stat.read_text().rpartition(")")[2].split()[1]
            parent = Path(f"/proc/{ppid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        found.append((int(stat.parent.name), parent[:-1] if parent[-1:] == [""] else parent))
    return found


def streams() -> list[tuple[int, list[str]]]:
    """The pv of every data stream (its wrapper runs a remote `zfs send`, not an estimate),
    with its wrapper's argv."""
    found = []
    for pid, parent in relays("pv"):
        remote = parent[-1] if parent else ""
        if remote.startswith("zfs send ") and " -n " not in remote:
            found.append((pid, parent))
    return found


def freeze(wrapper: str) -> list[int]:
    """SIGSTOP the pv of every data stream of the ssh wrapper `wrapper` (not of a query: the
    watchdog guards streams; ssh's keepalives end a query whose peer died)."""
    frozen = [pid for pid, parent in streams() if wrapper in parent]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    assert frozen, f"no pv of {wrapper}"
    return frozen


def config_text(pools, wrappers: dict[str, str], plain_ssh: str) -> str:
    lines = [f'stall-timeout = "{STALL}"', "host-streams = 2", 'compress = "none"']
    for source in SOURCES:
        lines += [f"[sources.{source}]", f'source = "root@fleet-{source}"',
                  f'ssh = "{wrappers[source]}"', f'dest = "{pools.backup}/{source}"',
                  f'pools = ["{pools.src}/{source}"]']  # fmt: skip
    lines += ["[sources.dead]", 'source = "root@fleet-dead"', f'ssh = "{plain_ssh}"',
              f'dest = "{pools.backup}/dead"', f'pools = ["{pools.src}/a"]']  # fmt: skip
    return "\n".join(lines) + "\n"


def new_data(pools, snapshot: str) -> None:
    for source, (_, children) in SOURCES.items():
        for child in children:
            fill(f"{pools.src}/{source}/{child}", MEGABYTES, label=snapshot)
    zfs("snapshot", "-r", f"{pools.src}@{snapshot}")


def backed_up(pools, source: str) -> bool:
    return snapshot_guids(f"{pools.backup}/{source}/{source}") == snapshot_guids(
        f"{pools.src}/{source}"
    )


def test_a_fleet_in_one_makefile(pools, zm, tmp_path) -> None:
    zfs("set", f"mountpoint=/tmp/{pools.src}", pools.src)
    zfs("create", pools.backup)  # the sources' dests go below it
    for source, (_, children) in SOURCES.items():
        zfs("create", f"{pools.src}/{source}")
        for child in children:
            zfs("create", f"{pools.src}/{source}/{child}")
    new_data(pools, "one")
    names = {f"fleet-{s}": address for s, (address, _) in SOURCES.items()}
    client = ssh_config({**names, "fleet-dead": NOTHING_LISTENS}, tmp_path / "ssh_config")
    plain = f"ssh -F {client}"
    wrappers = {s: crawling_ssh(tmp_path / f"ssh-{s}", plain, "50k", pull=True) for s in SOURCES}
    config = tmp_path / "zmake.toml"
    config.write_text(config_text(pools, wrappers, plain))
    fleet = [*zm.argv("backup", "-c", str(config), "-j8"), "--yes"]

    with sshds(["127.0.0.3", "127.0.0.4"], tmp_path) as logs:
        # The control: without the per-host limit a source runs more than 2 streams at once,
        # and the counter sees it.
        counter = StreamCounter(wrappers)
        first = subprocess.run([*fleet, "--host-streams", "8"], env=zm.env(), capture_output=True,
                               text=True, timeout=900)  # fmt: skip
        unlimited = counter.stop()
        said = first.stdout + first.stderr
        assert first.returncode != 0, said  # the dead host
        assert "stalled" not in said, said
        assert unlimited["a"] > 2 or unlimited["b"] > 2, (unlimited, said)
        for source in SOURCES:
            assert backed_up(pools, source), (source, said)
        assert "backup: dead: cannot reach root@fleet-dead" in said, said  # once, at its read
        dead_rows = [line for line in said.splitlines() if line.startswith("dead:")]
        assert len(dead_rows) == 1 and "failed" in dead_rows[0], said  # no send tried
        assert "  dead:*: cannot reach root@fleet-dead" in said, said
        assert "dead (root@fleet-dead): failed before any send" in said, said
        assert "a (root@fleet-a): 5 datasets up to date" in said, said
        assert logins(logs["127.0.0.3"]) > 0 and logins(logs["127.0.0.4"]) > 0

        # The night: at most 2 streams per host; c frozen mid-stream and stopped after 30 s.
        new_data(pools, "two")
        bytes_counter(wrappers["c"]).unlink()  # the first run's counts
        counter = StreamCounter(wrappers)
        log = tmp_path / "night.log"
        with open(log, "w") as output:
            night = subprocess.Popen(fleet, env=zm.env(), stdout=output, stderr=output,
                                     stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        wait_for_bytes(wrappers["c"], 200_000, night)
        freeze(wrappers["c"])
        code = night.wait(timeout=900)
        limited = counter.stop()
        said = log.read_text()
        assert code != 0, said
        assert max(limited.values()) == 2 and all(n <= 2 for n in limited.values()), limited
        assert f"stalled, no data moved for {STALL}" in said, said
        assert backed_up(pools, "a") and backed_up(pools, "b"), said
        assert not backed_up(pools, "c"), said
        assert "c (root@fleet-c): " in said and "of 3 datasets not up to date" in said, said
        assert "b (root@fleet-b): 5 datasets up to date" in said, said

        # The next night, the link healthy: c resumes and every reachable source is whole.
        metrics = tmp_path / "fleet.prom"
        last = subprocess.run([*fleet, "--metrics", str(metrics)], env=zm.env(),
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        said = last.stdout + last.stderr
        for source in SOURCES:
            assert backed_up(pools, source), (source, said)
        tokens = zfs("get", "-H", "-r", "-o", "value", "receive_resume_token", pools.backup)
        assert set(tokens.split()) <= {"-"}, tokens
        assert "c (root@fleet-c): 3 datasets up to date" in said, said
        assert last.returncode != 0 and "1 of 4 sources are not up to date (dead)" in said, said
        for source, (_, children) in SOURCES.items():
            for child in ["", *(f"/{c}" for c in children)]:
                labels = (
                    f'dataset="{pools.src}/{source}{child}",source="{source}",'
                    f'host="root@fleet-{source}",target="local:{pools.backup}/{source}"'
                )
                assert f"zmake_backup_up_to_date{{{labels}}} 1" in metrics.read_text()
        assert 'zmake_run_datasets_failed{target="fleet"} 1' in metrics.read_text()

        # One view: the fleet's check, one line for all; the dead host UNKNOWN for its part.
        check = zm("check", "-c", str(config), check=False)
        lines = check.stdout.splitlines()
        assert check.returncode == 3, check.stdout + check.stderr
        assert lines[0].startswith("ZMAKE UNKNOWN - 4 sources, 13 datasets, oldest backup "), lines
        assert lines[1:] == [
            f"dead: UNKNOWN - cannot reach root@fleet-dead over ssh: ssh: connect "
            f"to host {NOTHING_LISTENS} port 22: Connection refused"
        ], lines

        # A source that pushes by itself is judged from its backups here alone: a's tree, as
        # if a pushed it. A received snapshot keeps its creation on the source.
        with open(config, "a") as more:
            more.write(f'[sources.pushed]\ndest = "{pools.backup}/a"\npush = true\n')
        judged = json.loads(zm("check", "-c", str(config), "--json", check=False).stdout)
        pushed = {row["dataset"]: row for row in judged["datasets"] if row["source"] == "pushed"}
        mirror = f"{pools.backup}/a/a"
        assert set(pushed) == {mirror, *(f"{mirror}/{child}" for child in SOURCES["a"][1])}
        created = int(zfs("get", "-H", "-p", "-o", "value", "creation", f"{pools.src}/a@two"))
        assert {(row["state"], row["backed_up_at"]) for row in pushed.values()} == {
            ("pushed", created)}, pushed  # fmt: skip
        status = zm("status", "-c", str(config), check=False)
        assert status.returncode == 1, status.stdout + status.stderr
        assert status.stderr.startswith("zmake: status: dead: cannot reach root@fleet-dead")
        states = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[1:]}
        assert states[f"c:{pools.src}/c/d2"] == "up", status.stdout  # up to date
        assert states[f"pushed:{mirror}/d1"] == "pushed", status.stdout

        # A host lost mid-night (its sshd and sessions killed as its first stream moves): its
        # sends fail once each, those not yet started at once, untried; the others finish.
        zfs("create", f"{pools.src}/c/d3")  # a third child: one of c's sends must wait
        fill(f"{pools.src}/c/d3", MEGABYTES, label="three")
        new_data(pools, "three")
        bytes_counter(wrappers["c"]).unlink()
        with open(log, "w") as output:
            night = subprocess.Popen(fleet, env=zm.env(), stdout=output, stderr=output,
                                     stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        wait_for_bytes(wrappers["c"], 100_000, night)
        kill_host(tmp_path, "127.0.0.4")
        code = night.wait(timeout=900)
        said = log.read_text()
        assert code != 0, said
        assert backed_up(pools, "a") and backed_up(pools, "b"), said
        assert "not tried: earlier in this run, cannot reach root@fleet-c over ssh" in said, said
        lost = "c (root@fleet-c): 4 of 4 datasets not up to date; unreachable during the run: "
        assert lost in said, said
