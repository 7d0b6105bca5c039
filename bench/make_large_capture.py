"""Write a synthetic zmake capture of one pool with N datasets (default 10,000).

Deterministic (seeded), with nested trees, skewed sizes, three snapshots each, a few zvols,
encrypted branches and names with spaces and `:`. Used by bench/generate_scale.py.

    python bench/make_large_capture.py 10000 > sample-pools/large-10k.zcap

The columns are zmake's own (`SOURCE_LIST_PROPS`, `SOURCE_GET_PROPS`), and the output is
parsed back before it is written: when the capture format grows a field, this script fails
here (and tests/unit/test_bench_scripts.py with it) instead of writing a capture zmake refuses.
"""

from __future__ import annotations

import argparse
import calendar
import random
import sys

from zmake.core.parse import (
    SOURCE_GET_PROPS,
    SOURCE_LIST_PROPS,
    Capture,
    parse_capture,
    parse_source,
    render_capture,
)
from zmake.sides.zfs_argv import source_get_argv, source_list_argv

POOL = "big"
# The columns this script writes, in order; checked against zmake's at start.
LIST_COLUMNS = ("name", "type", "guid", "createtxg", "used", "referenced", "written", "creation")
GET_PROPERTIES = ("mountpoint", "encryption", "encryptionroot")
# When the pool and its datasets were created (2026-10-01 00:00 UTC); snapshots are taken
# at 02:00 UTC on the day their names say.
CREATED = calendar.timegm((2026, 10, 1, 0, 0, 0))
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


def encryption_root(name: str) -> str | None:
    """The encrypted branches: every dataset at or under one whose own name starts with `db`
    (`big/db12`, `big/home3/db40/x`); the topmost such dataset is the encryption root."""
    parts = name.split("/")
    for depth in range(1, len(parts)):
        if parts[depth].startswith("db"):
            return "/".join(parts[: depth + 1])
    return None


def capture(count: int, seed: int = 7) -> Capture:
    if (LIST_COLUMNS, GET_PROPERTIES) != (SOURCE_LIST_PROPS, SOURCE_GET_PROPS):
        sys.exit(
            f"make_large_capture.py writes the columns {LIST_COLUMNS} and {GET_PROPERTIES}; "
            f"zmake now reads {SOURCE_LIST_PROPS} and {SOURCE_GET_PROPS}: update this script"
        )
    rng = random.Random(seed)
    names = dataset_names(count, rng)
    list_lines, get_lines = [], []
    txg = 100
    snapshot_lines = []
    for index, name in enumerate(names):
        kind = "volume" if index % 97 == 5 else "filesystem"
        referenced = int(rng.paretovariate(1.2) * 64 * 1024)
        # name, type, guid, createtxg, used, referenced, written, creation
        list_lines.append(
            f"{name}\t{kind}\t{rng.getrandbits(63)}\t{txg}\t{referenced}\t{referenced}\t0\t"
            f"{CREATED + index}"
        )
        root = encryption_root(name)
        if kind == "volume":
            get_lines.append(f"{name}\tmountpoint\t-\t-")
        elif index % 13 == 0:
            get_lines.append(f"{name}\tmountpoint\t/srv/{index}\tlocal")
        else:
            get_lines.append(f"{name}\tmountpoint\t/{name}\tinherited from {POOL}")
        if root is None:
            get_lines.append(f"{name}\tencryption\toff\tdefault")
        else:
            get_lines.append(f"{name}\tencryption\taes-256-gcm\t-")
        get_lines.append(f"{name}\tencryptionroot\t{root or '-'}\t-")
    for day in range(3):
        txg += 10
        taken = calendar.timegm((2026, 11, day + 1, 2, 0, 0))
        for name in names:
            written = int(rng.paretovariate(1.5) * 8 * 1024)
            snapshot_lines.append(
                f"{name}@zmake-2026110{day + 1}-020000\tsnapshot\t{rng.getrandbits(63)}\t{txg}\t"
                f"{written}\t{written * 4}\t{written}\t{taken}"
            )
    return Capture(
        zfs_version="synthetic (bench/make_large_capture.py)",
        pools=(POOL,),
        list_output="\n".join(list_lines + snapshot_lines) + "\n",
        get_output="\n".join(get_lines) + "\n",
    )


def render(count: int, seed: int = 7) -> str:
    """The capture file's text, parsed back as zmake parses it (a ParseError if refused)."""
    text = render_capture(
        capture(count, seed),
        " ".join(source_list_argv([POOL])),
        " ".join(source_get_argv([POOL])),
    )
    parsed = parse_capture(text, "make_large_capture.py's output")
    parse_source(parsed.list_output, parsed.get_output)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Write a synthetic zmake capture of one pool to stdout."
    )
    parser.add_argument(
        "count", nargs="?", type=int, default=10_000, help="datasets (default 10000)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("count must be at least 1 (the pool itself)")
    sys.stdout.write(render(args.count, args.seed))


if __name__ == "__main__":
    main()
