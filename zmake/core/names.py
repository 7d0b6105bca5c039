"""Names zmake derives from dataset names: make targets, stamp and failure files. Pure.

The encoding is injective into characters make and the shell treat literally, so
`pool/my data` and `pool/vm:disk0` become ordinary file and target names."""

from __future__ import annotations

import re

SAFE = re.compile(r"[A-Za-z0-9._/-]")


def encode(dataset: str) -> str:
    """Every character outside [A-Za-z0-9._/-] (and `+`, the escape character itself)
    written as +XX per UTF-8 byte: collision-free and make-safe."""
    return "".join(
        char if SAFE.fullmatch(char) else "".join(f"+{b:02X}" for b in char.encode())
        for char in dataset
    )


def target_name(dataset: str) -> str:
    """`send/<encoded name>`: the phony make target of a dataset."""
    return f"send/{encode(dataset)}"


NAME_CHARACTER = re.compile(r"[A-Za-z0-9_.: -]")
RESERVED_PREFIXES = ("mirror", "raidz", "draid", "spare")  # zpool's words, and "log"
MAX_NAME = 255


def dataset_problem(name: str) -> str | None:
    """What makes `name` not a ZFS dataset name (OpenZFS zfs_namecheck), or None."""
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    if "@" in name or "#" in name:
        return "a dataset, not a snapshot (@) or bookmark (#)"
    components = name.split("/")
    if any(c == "" for c in components):
        return "an empty component (a leading, trailing or double /)"
    if any(c in (".", "..") for c in components):
        return ". and .. are not components"
    bad = sorted({char for char in name if char != "/" and not NAME_CHARACTER.fullmatch(char)})
    if bad:
        return f"{''.join(bad)!r} not allowed (letters, digits, _ - . : and space)"
    pool = components[0]
    if not pool[0].isalpha() or pool.startswith(RESERVED_PREFIXES) or pool == "log":
        return f"the pool name {pool!r} must start with a letter and not a zpool word"
    return None
