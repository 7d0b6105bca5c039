"""Write a synthetic zmake capture of one pool with N datasets (default 10,000).

Deterministic (seeded), with nested trees, skewed sizes, three snapshots each, a few zvols,
encrypted branches and names with spaces and `:`. Used by bench/generate_scale.py.

    python bench/make_large_capture.py 10000 > sample-pools/large-10k.zcap
"""

from __future__ import annotations

import random
import sys

from zmake.core.parse import Capture, render_capture
from zmake.sides.zfs_argv import source_get_argv, source_list_argv

POOL = "big"
WORDS = ["home", "media", "vm", "db", "logs", "proj", "cache", "mail", "web", "data"]


def dataset_names(count: int, rng: random.Random) -> list[str]:
    names = [POOL]
    while len(names) < count:
        parent = rng.choice(names[: max(1, len(names) // 2 + 1)])
        if parent.count("/") >= 5:
            continue
        word = rng.choice(WORDS)
        suffix = rng.choice(["", " copy", ":v2", ".old", "-x", "_y"])
        name = f"{parent}/{word}{len(names)}{suffix}"
        names.append(name)
    return names


def capture(count: int, seed: int = 7) -> Capture:
    rng = random.Random(seed)
    names = dataset_names(count, rng)
    list_lines, get_lines = [], []
    txg = 100
    snapshot_lines = []
    for index, name in enumerate(names):
        kind = "volume" if index % 97 == 5 else "filesystem"
        referenced = int(rng.paretovariate(1.2) * 64 * 1024)
        list_lines.append(
            f"{name}\t{kind}\t{rng.getrandbits(63)}\t{txg}\t{referenced}\t{referenced}\t0"
        )
        encrypted = "aes-256-gcm" if "/db" in name else "off"
        if kind == "volume":
            get_lines.append(f"{name}\tmountpoint\t-\t-")
        elif index % 13 == 0:
            get_lines.append(f"{name}\tmountpoint\t/srv/{index}\tlocal")
        else:
            get_lines.append(f"{name}\tmountpoint\t/{name}\tinherited from {POOL}")
        get_lines.append(
            f"{name}\tencryption\t{encrypted}\t{'local' if encrypted != 'off' else 'default'}"
        )
    for day in range(3):
        txg += 10
        for name in names:
            written = int(rng.paretovariate(1.5) * 8 * 1024)
            snapshot_lines.append(
                f"{name}@zmake-2026110{day + 1}-020000\tsnapshot\t{rng.getrandbits(63)}\t{txg}\t"
                f"{written}\t{written * 4}\t{written}"
            )
    return Capture(
        zfs_version="synthetic (bench/make_large_capture.py)",
        pools=(POOL,),
        list_output="\n".join(list_lines + snapshot_lines) + "\n",
        get_output="\n".join(get_lines) + "\n",
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    sys.stdout.write(
        render_capture(
            capture(count),
            " ".join(source_list_argv([POOL])),
            " ".join(source_get_argv([POOL])),
        )
    )


if __name__ == "__main__":
    main()
