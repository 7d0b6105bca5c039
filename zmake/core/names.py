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
