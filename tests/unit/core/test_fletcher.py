"""Fletcher-4 summed block by block (core/fletcher.py) is the word-by-word definition OpenZFS's
scalar code runs (the test helper's, written apart from zmake's): in either byte order, from
any state, for any length — a last partial word ignored, as OpenZFS ignores it."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.support.stream_builder import fletcher
from zmake.core.fletcher import ROW, ROWS, ZERO, update

BLOCK = ROW * ROWS * 4  # bytes summed as one block


SIZES = [0, 3, 4, 280, ROW * 4 - 4, ROW * 4, ROW * 4 + 6, 4096, BLOCK - 4, BLOCK,
         BLOCK + ROW * 4 + 8, 2 * BLOCK + 1]  # fmt: skip


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("order", ["<", ">"])
def test_blocks_sum_as_the_definition(size: int, order: str) -> None:
    data = os.urandom(size)
    state = (2**64 - 1, 2**63 + 5, 12345, 2**64 - 7)  # sums near the wrap
    assert update(state, data, order) == fletcher(state, data, order)
    assert update(ZERO, data, order) == fletcher(ZERO, data, order)


def test_words_at_their_largest_do_not_overflow_a_slot() -> None:
    data = b"\xff" * (BLOCK + 12)
    assert update(ZERO, data) == fletcher(ZERO, data, "<")


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3 * ROW * 4 + 11), st.tuples(*[st.integers(0, 2**64 - 1)] * 4),
       st.sampled_from(["<", ">"]))  # fmt: skip
def test_any_bytes_from_any_state(
    data: bytes, state: tuple[int, int, int, int], order: str
) -> None:
    assert update(state, data, order) == fletcher(state, data, order)


def test_carried_on_piece_by_piece_is_the_sum_of_the_whole() -> None:
    """As a payload is read: a MiB at a time (pieces of whole words)."""
    data = os.urandom(BLOCK + 1000)
    pieces = update(update(ZERO, data[:4096]), data[4096:])
    assert pieces == update(ZERO, data) == fletcher(ZERO, data, "<")
