"""Stream-file chains (core/chain.py): what the next file is, manifests, continuity, which chains
`prune --keep-chains` may delete."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zmake.core.chain import (
    Chain,
    StreamFile,
    chains_to_drop,
    continuity,
    manifest_text,
    newest_restorable,
    parse_manifests,
    plan_next,
)
from zmake.core.model import FILESYSTEM, Dataset, Snapshot

NAME = "tank/my data:1"


def dataset(count: int, first: int = 0, encrypted: bool = False) -> Dataset:
    snaps = tuple(Snapshot(f"{NAME}@s{i}", 100 + i, 10 + i) for i in range(first, first + count))
    return Dataset(NAME, FILESYSTEM, encryption="aes-256-gcm" if encrypted else "off",
                   snapshots=snaps)  # fmt: skip


def written(chains: list[Chain], local: Dataset, full_every: int | None) -> list[Chain]:
    """Apply plan_next until it says nothing is left, as FileSender does."""
    for _ in range(5):
        step = plan_next(local, chains, compressor="zstd", full_every=full_every)
        if step is None:
            return chains
        carried = tuple((s.short, s.guid, s.createtxg) for s in step.carried)
        new = StreamFile(step.file, step.base.guid if step.base else None, carried, 1, "x")
        chains = [c for c in chains if c.folder != step.chain.folder] + [step.chain.with_file(new)]
    raise AssertionError("plan_next never finished")


@given(st.lists(st.integers(1, 4), min_size=1, max_size=8), st.one_of(st.none(), st.integers(1, 3)))
def test_runs_keep_a_whole_chain_holding_every_snapshot(
    additions: list[int], full_every: int | None
) -> None:
    chains: list[Chain] = []
    total = 0
    names: set[str] = set()
    for added in additions:
        total += added
        local = dataset(total)
        chains = written(chains, local, full_every)
        newest = newest_restorable(chains, NAME)
        assert newest is not None and continuity(newest) == []
        assert newest.files[-1].to_guid == local.newest.guid  # type: ignore[union-attr]
        for chain in chains:
            assert continuity(chain) == []
            if full_every is not None:
                assert len(chain.files) - 1 <= full_every
            names |= {f"{chain.folder}/{f.name}" for f in chain.files}
    every = [f for c in chains for f in c.files]
    assert len(names) == len(every)  # a file name is never reused
    if full_every is None:  # one chain, from the oldest snapshot: the whole history
        assert len(chains) == 1
        held = [g for f in chains[0].files for _, g, _ in f.snapshots]
        assert held == [s.guid for s in dataset(total).snapshots]


def test_a_chain_whose_last_snapshot_is_gone_gets_a_new_full() -> None:
    chains = written([], dataset(3), None)
    pruned = dataset(2, first=3)  # s0..s2 destroyed on the source, s3 and s4 new
    after = written(chains, pruned, None)
    assert len(after) == 2
    fresh = max(after, key=lambda c: c.sequence)
    assert fresh.files[0].from_guid is None and fresh.files[0].to_guid == 104


def test_raw_for_encrypted_datasets() -> None:
    step = plan_next(dataset(1, encrypted=True), [], compressor="zstd", full_every=None)
    assert step is not None and step.chain.raw


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4, unique=True), st.booleans())
def test_manifests_read_back_as_written(guids: list[int], raw: bool) -> None:
    files = tuple(
        StreamFile(
            f"{i:04d}-{g:016x}.zfs.zst",
            None if i == 0 else guids[i - 1],
            ((f"s {i}:x", g, i + 1),),
            10 * i,
            f"{i:064x}",
        )
        for i, g in enumerate(guids)
    )
    chain = Chain("tank/a b:c", f"@chain-0000-{guids[0]:016x}", raw, "zstd", files)
    twice = manifest_text(chain) + "\n" + manifest_text(chain)
    assert parse_manifests(twice) == [chain, chain]


def test_continuity_names_the_break() -> None:
    chain = written([], dataset(3), None)[0]
    stray = StreamFile("0001-x", 999, (("s9", 109, 19),), 1, "y")
    broken = Chain(chain.dataset, chain.folder, False, "zstd", (chain.files[0], stray))
    problems = continuity(broken)
    assert len(problems) == 1 and problems[0].startswith("0001-x: starts at guid 999")


@given(st.integers(1, 6), st.integers(1, 4), st.sets(st.integers(0, 5)))
def test_keep_chains_never_drops_the_newest_whole_chain(
    count: int, keep: int, bad: set[int]
) -> None:
    chains = []
    for n in range(count):
        start = StreamFile("0000-a", None if n not in bad else 5, (("s", n, n),), 1, "x")
        chains.append(Chain(NAME, f"@chain-{n:04d}-{n:016x}", False, "zstd", (start,)))
    doomed = chains_to_drop(chains, keep)
    kept = [c for c in chains if c not in doomed]
    whole = [c for c in chains if not continuity(c)]
    if whole:
        assert newest_restorable(kept, NAME) == newest_restorable(chains, NAME)
        assert len([c for c in kept if not continuity(c)]) == min(keep, len(whole))
    else:
        assert doomed == []
