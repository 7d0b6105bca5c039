"""A typical night for the shared fake `zfs` (fake_zfs.py): a pool of small datasets, each
backed up at @s1 (zmake's bookmark of @s1 kept on the source) and with a new @s2 to send.

Used by the call-count tests (tests/unit/targets/pool/test_send_calls.py) and by the
call-count benchmark (bench/calls.py): both run the real `zmake` against these answers and
count, from the fake's log, every zfs call on each side and every ssh session."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.unit.support.fake_zfs import SSH, install, on_path

POOL, DEST, REMOTE = "tank", "backup/tank", "nas"
SMALL = 65536  # each snapshot's bytes: a small change, batched by the Makefile


def names(count: int) -> list[str]:
    """The pool and `count` children; every fifth with a space and a `:` in its name."""
    return [POOL, *(f"{POOL}/d{i:03d}{' x:y' if i % 5 == 0 else ''}" for i in range(count))]


def backup_of(name: str) -> str:
    return DEST + name.removeprefix(POOL)


def write_answers(folder: Path, count: int) -> list[str]:
    """The fake's answer files for a night over `count` datasets (and their pool)."""
    datasets = names(count)
    folder.mkdir(parents=True, exist_ok=True)
    listed, got, local, backups = [], [], [], []
    for i, name in enumerate(datasets):
        ds, s1, s2, backup = 1000 + i, 100000 + i, 200000 + i, 500000 + i
        listed.append(f"{name}\tfilesystem\t{ds}\t3\t{3 * SMALL}\t{SMALL}\t0\t1780000000\n")
        listed.append(f"{name}@s1\tsnapshot\t{s1}\t7\t0\t{SMALL}\t{SMALL}\t1780000000\n")
        listed.append(f"{name}@s2\tsnapshot\t{s2}\t9\t0\t{SMALL}\t{SMALL}\t1780086400\n")
        got += [f"{name}\tmountpoint\t/{name}\tdefault\n", f"{name}\tencryption\toff\tdefault\n",
                f"{name}\tencryptionroot\t-\t-\n"]  # fmt: skip
        local += rows(name, {"type": "filesystem", "guid": ds, "createtxg": 3,
                             "written": SMALL, "referenced": SMALL, "used": 3 * SMALL,
                             "creation": 1780000000, "mountpoint": f"/{name}"})  # fmt: skip
        for snap, guid, txg in (("s1", s1, 7), ("s2", s2, 9)):
            props = {
                "type": "snapshot",
                "guid": guid,
                "createtxg": txg,
                "written": SMALL,
                "referenced": SMALL,
                "used": 0,
                "creation": 1780000000,
                "mountpoint": "-",
            }
            local += rows(f"{name}@{snap}", props)  # fmt: skip
        local += rows(f"{name}#zmake-{backup:016x}-7", {"type": "bookmark", "guid": s1,
                                                        "createtxg": 7})  # fmt: skip
        backups.append(f"{backup_of(name)}\tfilesystem\t{backup}\t5\t{SMALL}\t0\t-\toff\t-\t-\t"
                       "no\ton\t-\n")  # fmt: skip
        backups.append(f"{backup_of(name)}@s1\tsnapshot\t{s1}\t6\t{SMALL}\t{SMALL}\t-\toff\t-\t"
                       "-\t-\t-\t-\n")  # fmt: skip
    answers = {"list.txt": listed, "get.txt": got, "send-get.txt": local, "backup.txt": backups,
               "names.txt": [n + "\n" for n in datasets], "mounted.txt": [],
               "datasets.txt": [b for b in backups if "@" not in b]}  # fmt: skip
    for file, lines in answers.items():
        (folder / file).write_text("".join(lines))
    return datasets


def rows(name: str, props: dict[str, object]) -> list[str]:
    own = {"encryption": "off", "encryptionroot": "-", **props}
    return [f"{name}\t{prop}\t{value}\t-\n" for prop, value in own.items()]


def environment(tmp_path: Path, count: int) -> tuple[dict[str, str], Path, list[str]]:
    """(env for `zmake` with the fake zfs and ssh first on PATH, the call log, the datasets)."""
    datasets = write_answers(tmp_path / "answers", count)
    folder = tmp_path / "bin"
    install(folder)
    install(folder, "ssh", SSH)
    log = tmp_path / "calls.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZMAKE_", "MAKE", "FAKE_"))}
    env.update(PATH=on_path(folder), ZMAKE_RUN_DIR=str(tmp_path / "run"), FAKE_LOG=str(log),
               FAKE_LOG_FORMAT="json", FAKE_DIR=str(tmp_path / "answers"))  # fmt: skip
    return env, log, datasets


@dataclass(frozen=True)
class Calls:
    """What the fake's log says a run did."""

    local: Counter[str]  # zfs subcommand (with `send -n` as "estimate") → calls on the source
    remote: Counter[str]  # … on the backup side
    ssh: int  # ssh sessions (each a command through a master, or a connection)

    def total(self) -> int:
        return sum(self.local.values()) + sum(self.remote.values())


def calls_in(log: Path) -> Calls:
    local: Counter[str] = Counter()
    remote: Counter[str] = Counter()
    ssh = 0
    for line in log.read_text().splitlines() if log.exists() else []:
        record = json.loads(line)
        if record["prog"] == "ssh":
            ssh += "-G" not in record["options"]  # `ssh -G` only prints its configuration
            continue
        argv = record["argv"]
        kind = "estimate" if argv[:2] == ["send", "-n"] else argv[0]
        (local if record["side"] == "local" else remote)[kind] += 1
    return Calls(local, remote, ssh)
