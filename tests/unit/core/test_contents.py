"""Content verification, the pure part (core/contents.py): sampling, hashing, comparing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zmake.core.contents import compare, every_from_sample, hash_argv, parse_hashes
from zmake.core.errors import UsageError
from zmake.core.model import FILESYSTEM


def test_sampling_and_its_limits() -> None:
    assert every_from_sample(None) == 1 and every_from_sample("100%") == 1
    assert every_from_sample("10%") == 10 and every_from_sample("33") == 3
    for bad in ("0%", "150%", "x"):
        with pytest.raises(UsageError):
            every_from_sample(bad)


NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\0/"), min_size=1, max_size=12)


@given(st.dictionaries(NAMES, st.binary(max_size=64), min_size=1, max_size=8), st.data())
def test_compare_names_the_first_difference(files: dict[str, bytes], data: st.DataObject) -> None:
    import hashlib

    source = {f"./{n}": hashlib.sha256(b).hexdigest() for n, b in files.items()}
    assert compare(source, dict(source)).same
    victim = data.draw(st.sampled_from(sorted(source)))
    changed = {**source, victim: hashlib.sha256(b"other").hexdigest()}
    if changed[victim] != source[victim]:
        assert compare(source, changed).difference == f"{victim[2:]} differs"
    missing = {k: v for k, v in source.items() if k != victim}
    assert compare(source, missing).difference == f"{victim[2:]} is missing on the backup"
    assert compare(missing, source).difference == f"{victim[2:]} is on the backup only"


def test_the_hash_listing_reads_a_directory_and_samples_alike(tmp_path: Path) -> None:
    """The script zmake runs on each side, run here on a plain directory (the .zfs/snapshot
    case): odd names survive, a sample picks the same files from equal trees."""
    for side in ("a", "b"):
        root = tmp_path / side
        (root / "sub dir").mkdir(parents=True)
        for i in range(10):
            (root / "sub dir" / f"f:{i}").write_bytes(bytes([i]) * 100)
        (root / "new\nline").write_text("x")
    listings = {}
    for side in ("a", "b"):
        argv = hash_argv(FILESYSTEM, "p/x@s", str(tmp_path / side), every=3)
        result = subprocess.run(argv, capture_output=True, text=True, check=True)
        listings[side] = parse_hashes(result.stdout)
    assert listings["a"] == listings["b"] and listings["a"] is not None
    assert len(listings["a"]) == 4  # 11 files, every 3rd
    (tmp_path / "b" / "sub dir" / "f:0").write_bytes(b"changed")
    runs = [subprocess.run(hash_argv(FILESYSTEM, "p/x@s", str(tmp_path / s)),
                           capture_output=True, text=True) for s in "ab"]  # fmt: skip
    full = [parse_hashes(run.stdout) for run in runs]
    assert full[0] is not None and full[1] is not None and len(full[0]) == 11
    assert compare(full[0], full[1]).difference == "sub dir/f:0 differs"
    assert parse_hashes("abc  ./x\n") is None  # cut short: no end marker, no verdict
