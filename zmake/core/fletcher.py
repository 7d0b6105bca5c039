"""Fletcher-4, the checksum of a `zfs send` stream, as OpenZFS computes it. Pure: no process.

OpenZFS (zfs_fletcher.c, fletcher_4_scalar_native) runs four 64-bit sums over the buffer's
32-bit words — a += w; b += a; c += b; d += c — and ignores a last partial word (size % 4
bytes). A stream's words are read in the byte order of the host that wrote it ("<" or ">").

A word-by-word loop in Python manages ~10 MB/s, so whole blocks are summed at once instead.
After the n words w_0..w_{n-1}, each word has added to (a, b, c, d) its value times
(1, m, C(m+1, 2), C(m+2, 3)), where m = n - k counts the words from w_k to the end. The
block is laid out as rows of ROW words (k = q*ROW + r); integers of a whole row (two of them:
even and odd words, in 64-bit slots) are summed row by row, four times over (s1 += row;
s2 += s1; …), which gives every column r its sums weighted by C(p+j, j), p = rows after q.
A fixed table (`columns`) turns those into the weights above: all the per-word work is big
integer additions, in C."""

from __future__ import annotations

import sys
from array import array
from functools import cache
from math import comb
from operator import mul

Checksum = tuple[int, int, int, int]
ZERO: Checksum = (0, 0, 0, 0)
MASK = (1 << 64) - 1
ROW = 256  # words per row
ROWS = 512  # rows per block at most: C(ROWS+3, 4) * (2**32 - 1) still fits a 64-bit slot
LITTLE_HOST = sys.byteorder == "little"
EVENS = int.from_bytes(b"\xff\xff\xff\xff\0\0\0\0" * (ROW // 2), "little")  # even words' slots


def update(state: Checksum, data: bytes | memoryview, order: str = "<") -> Checksum:
    """The checksum `state` carried on over `data` (fletcher_4_incremental_native or
    _byteswap: `order` is the stream's byte order)."""
    words = len(data) // 4
    if order != "<":  # big-endian words: bytes turned around once, then read as "<"
        swapped = array("I")
        swapped.frombytes(data[: words * 4])
        swapped.byteswap()
        data = swapped.tobytes()
    view = memoryview(data)[: words * 4]
    whole = words // ROW * ROW
    for start in range(0, whole, ROW * ROWS):
        block = view[start * 4 : min(whole, start + ROW * ROWS) * 4]
        state = carried(state, len(block) // 4, block_sums(block))
    return scalar(state, view[whole * 4 :])


def carried(state: Checksum, n: int, sums: Checksum) -> Checksum:
    """(a, b, c, d) after n words whose own weighted sums are `sums`."""
    a, b, c, d = state
    n2, n3 = comb(n + 1, 2), comb(n + 2, 3)
    return ((a + sums[0]) & MASK, (b + n * a + sums[1]) & MASK,
            (c + n * b + n2 * a + sums[2]) & MASK,
            (d + n * c + n2 * b + n3 * a + sums[3]) & MASK)  # fmt: skip


def scalar(state: Checksum, data: memoryview) -> Checksum:
    """Word by word, as OpenZFS's scalar code: for the few words left over."""
    words = array("I")
    words.frombytes(data)
    if not LITTLE_HOST:
        words.byteswap()
    a, b, c, d = state
    for word in words:
        a = (a + word) & MASK
        b = (b + a) & MASK
        c = (c + b) & MASK
        d = (d + c) & MASK
    return a, b, c, d


def block_sums(block: memoryview) -> Checksum:
    """Σ w_k (1, m, C(m+1, 2), C(m+2, 3)) over a block of whole rows (little-endian words)."""
    width = ROW * 4
    e1 = e2 = e3 = e4 = o1 = o2 = o3 = o4 = 0
    for start in range(0, len(block), width):
        row = int.from_bytes(block[start : start + width], "little")
        e1 += row & EVENS
        e2 += e1
        e3 += e2
        e4 += e3
        o1 += (row >> 32) & EVENS
        o2 += o1
        o3 += o2
        o4 += o3
    even = [slots(s, width) for s in (e1, e2, e3, e4)]
    odd = [slots(s, width) for s in (o1, o2, o3, o4)]
    sums = [0, 0, 0, 0]
    for t, j, for_even, for_odd in columns():
        sums[t] += sum(map(mul, for_even, even[j])) + sum(map(mul, for_odd, odd[j]))
    return sums[0], sums[1], sums[2], sums[3]


def slots(value: int, width: int) -> array[int]:
    """A row-wide integer of 64-bit slots, as the slots' values."""
    found = array("Q")
    found.frombytes(value.to_bytes(width, "little"))
    if not LITTLE_HOST:
        found.byteswap()
    return found


def weight(t: int, m: int) -> int:
    """What a word adds to sum t when m words (itself included) run to the end: 1, m,
    C(m+1, 2), C(m+2, 3), as polynomials in m (defined for any m)."""
    return (1, m, m * (m + 1) // 2, m * (m + 1) * (m + 2) // 6)[t]


@cache
def columns() -> list[tuple[int, int, list[int], list[int]]]:
    """(t, j, per even column, per odd column): the coefficients a with
    weight(t, ROW*p + s) = Σ_j a[t][j](s) C(p+j, j), s = ROW - r. C(p+j, j) at p = -1-i is
    (-1)^j C(i, j) for j <= i and 0 after, so a[t][j](s) = Σ_i (-1)^i C(j, i) g(-1-i)."""
    table = []
    for t in range(4):
        for j in range(t + 1):
            column = [
                sum((-1) ** i * comb(j, i) * weight(t, ROW * (-1 - i) + ROW - r)
                    for i in range(j + 1))
                for r in range(ROW)
            ]  # fmt: skip
            table.append((t, j, column[0::2], column[1::2]))
    return table
