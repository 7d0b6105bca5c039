"""The datasets above a backup on the backup side (targets/pool/parents.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.support.zfsgen import components
from zmake.targets.pool.parents import parent_chain


def test_parent_chain_is_everything_between_dest_and_the_backup() -> None:
    assert parent_chain("b/laptop/home/alice", "b/laptop") == ["b/laptop", "b/laptop/home"]
    assert parent_chain("b/laptop/home", "b/laptop") == ["b/laptop"]
    assert parent_chain("b/laptop", "b/laptop") == []  # the pool root's backup is DEST itself
    assert parent_chain("backup/home", "backup") == ["backup"]


@given(st.lists(components(), min_size=1, max_size=4), st.sampled_from(["b", "b/x", "b/x y/z"]))
def test_parent_chain_is_outermost_first_and_within_dest(parts: list[str], dest: str) -> None:
    backup = "/".join([dest, *parts])
    chain = parent_chain(backup, dest)
    assert chain[0] == dest and len(chain) == len(parts)
    for outer, inner in zip(chain, [*chain[1:], backup], strict=True):
        assert inner.rpartition("/")[0] == outer
