"""Multi-index hashing: the plan and the tables behind :func:`pixelpipe.imaging.hamming.search`.

The index is multi-index hashing in its block-combination form (Manku, Jain and Das Sarma,
WWW 2007). The ``bits`` of a code are cut into ``B > t`` blocks. Two codes at distance
``d <= t`` differ in at most ``t`` blocks, so (pigeonhole) at least ``s = B - t`` blocks
are equal. For each of the ``C(B, s)`` choices of ``s`` blocks (a *table*), the codes are
sorted by those blocks, and only codes with equal keys become candidates; each candidate
is checked with its true distance. Recall is exact by construction, and the result is
tested against brute force. A pair is reported by exactly one table (the first, in
lexicographic order, whose blocks all agree), so no table's output needs merging.

The cost of one table is a sort of ``n`` keys plus ``n**2 / 2**(k+1)`` candidates for a
``k``-bit key; :func:`make_plan` picks ``B`` to minimise the sum over tables (and falls
back to brute force when that is cheaper, for small inputs). For 1M 64-bit codes at
``t = 8`` it picks ``B = 12`` (495 tables of 21-bit keys).

This module holds the plan (:class:`Block`, :class:`Plan`, :func:`make_plan` and its cost
model) and the work of one table (:class:`Entries`, the codes a table worker needs, and
:func:`table_pairs`). Collapsing identical codes, mapping the tables over workers and
merging their pairs is :mod:`pixelpipe.imaging.hamming`'s job.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Method = Literal["auto", "index", "brute"]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

# Cost model, in nanoseconds, measured with numpy on one core of the development machine.
_SORT_NS = 90.0  # per entry and table: keys, one sort, gathers
_CANDIDATE_NS = 25.0  # per candidate pair: gather, xor, popcount, compare
_BRUTE_NS = 2.5  # per pair and word for brute force
_MAX_TABLES = 20_000
_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Block:
    """A run of bits of one word: ``(code[word] >> shift) & (2**width - 1)``."""

    word: int
    shift: int
    width: int

    @property
    def mask(self) -> np.uint64:
        """The block's bits, shifted down."""
        return np.uint64((1 << self.width) - 1)


@dataclass(frozen=True)
class Plan:
    """How to search: brute force, or which blocks and how many per table.

    Attributes:
        method: ``index`` or ``brute``.
        bits: Significant bits of a code (the most significant of its words).
        threshold: The largest distance reported.
        blocks: The blocks the bits are cut into.
        per_table: Blocks per table key (``len(blocks) - threshold``).
        cost_s: Estimated seconds on one core.
    """

    method: Literal["index", "brute"]
    bits: int
    threshold: int
    blocks: tuple[Block, ...] = ()
    per_table: int = 0
    cost_s: float = 0.0

    @property
    def tables(self) -> int:
        """Number of tables."""
        return math.comb(len(self.blocks), self.per_table) if self.method == "index" else 0

    def combinations(self) -> list[tuple[int, ...]]:
        """The block indices of each table, in lexicographic order."""
        return list(itertools.combinations(range(len(self.blocks)), self.per_table))


def _cut(bits: int, count: int) -> tuple[Block, ...]:
    """Cut ``bits`` (most significant first, 64 per word) into ``count`` near-equal blocks.

    Blocks never straddle a word.
    """
    words = -(-bits // 64)
    sizes = [min(64, bits - 64 * w) for w in range(words)]
    # Blocks per word, proportional to its bits, at least one each.
    per_word = [max(1, round(count * s / bits)) for s in sizes]
    while sum(per_word) > count:
        per_word[per_word.index(max(per_word))] -= 1
    while sum(per_word) < count:
        per_word[per_word.index(min(per_word))] += 1
    blocks: list[Block] = []
    for word, (size, n) in enumerate(zip(sizes, per_word, strict=True)):
        start = 0  # bits from the most significant end
        for index in range(n):
            width = size // n + (1 if index < size % n else 0)
            blocks.append(Block(word, 64 - start - width, width))
            start += width
    return tuple(blocks)


def _table_cost(entries: int, pairs: float, blocks: tuple[Block, ...], per_table: int) -> float:
    """Estimated seconds of all tables: sorts plus expected candidates (uniform codes)."""
    widths = [b.width for b in blocks]
    small, count_small = min(widths), widths.count(min(widths))
    count_big = len(widths) - count_small
    expected = 0.0
    for big in range(0, min(per_table, count_big) + 1):
        tables = math.comb(count_big, big) * math.comb(count_small, per_table - big)
        key_bits = per_table * small + big
        expected += tables * pairs * 2.0**-key_bits
    tables_all = math.comb(len(blocks), per_table)
    sort = tables_all * entries * _SORT_NS * max(1.0, math.log2(max(entries, 2)) / 20)
    return (sort + expected * _CANDIDATE_NS) * 1e-9


def make_plan(
    bits: int, threshold: int, items: int, orientations: int = 1, method: Method = "auto"
) -> Plan:
    """Choose the cheapest exact search for ``items`` codes of ``bits`` bits.

    Args:
        bits: Significant bits per code.
        threshold: Largest distance to report.
        items: Number of distinct codes.
        orientations: Codes per item (1, or 8 with flips and rotations).
        method: ``auto`` picks by estimated cost; ``index`` or ``brute`` forces one.

    Raises:
        ValueError: For a threshold outside ``0 <= threshold < bits``.
    """
    if not 0 <= threshold < bits:
        raise ValueError(f"threshold must be from 0 to {bits - 1} for {bits}-bit codes")
    words = -(-bits // 64)
    pair_count = items * (items - 1) / 2 * (2 * orientations - 1)
    brute = Plan("brute", bits, threshold, cost_s=pair_count * words * _BRUTE_NS * 1e-9)
    if method == "brute":
        return brute
    entries = items * orientations
    # Candidates pair a plain code with a plain or turned one (never two turned ones).
    all_pairs = items * items * (orientations - 0.5)
    best: Plan | None = None
    # At most 64 blocks: a table is a bit set in one uint64.
    for count in range(max(threshold + 1, words), min(bits, 64) + 1):
        per_table = count - threshold
        if math.comb(count, per_table) > _MAX_TABLES:
            break
        blocks = _cut(bits, count)
        if len(blocks) != count:
            continue
        cost = _table_cost(entries, all_pairs, blocks, per_table)
        if best is None or cost < best.cost_s:
            best = Plan("index", bits, threshold, blocks, per_table, cost)
    if best is None:
        if method == "index":
            raise ValueError(
                f"no index of at most {_MAX_TABLES} tables for threshold {threshold} "
                f"on {bits}-bit codes; use method='brute'"
            )
        return brute
    if method == "index" or best.cost_s <= brute.cost_s:
        return best
    return brute


@dataclass(frozen=True)
class Entries:
    """What a table worker needs: every code of every item, flattened."""

    codes: U64  # (m, words)
    item: I64  # (m,) item of each entry; empty when not oriented (item = entry)
    plain: npt.NDArray[np.bool_]  # (m,) orientation 0 (the item's own code); same
    plan: Plan
    oriented: bool


def _key(entries: Entries, combo: tuple[int, ...], index_bits: int) -> U64:
    """Sortable keys: the table's blocks, then the entry index in the low bits."""
    room = 64 - index_bits
    blocks = [entries.plan.blocks[b] for b in combo]
    codes = entries.codes
    key = np.zeros(codes.shape[0], dtype=np.uint64)
    if sum(b.width for b in blocks) <= room:
        for block in blocks:
            piece = (codes[:, block.word] >> np.uint64(block.shift)) & block.mask
            key = (key << np.uint64(block.width)) | piece
    else:  # too wide to keep whole: hash; collisions only add candidates
        for block in blocks:
            piece = (codes[:, block.word] >> np.uint64(block.shift)) & block.mask
            key = (key ^ piece) * _MIX
            key ^= key >> np.uint64(29)
        key >>= np.uint64(index_bits)
    return (key << np.uint64(index_bits)) | np.arange(codes.shape[0], dtype=np.uint64)


def _first_table_mask(xor: U64, blocks: tuple[Block, ...], per_table: int) -> U64:
    """For each candidate, the bit set of the first ``per_table`` equal blocks."""
    equal = np.zeros(xor.shape[0], dtype=np.uint64)
    for index, block in enumerate(blocks):
        same = ((xor[:, block.word] >> np.uint64(block.shift)) & block.mask) == 0
        equal |= same.astype(np.uint64) << np.uint64(index)
    first = np.zeros_like(equal)
    for _ in range(per_table):
        lowest = equal & (~equal + np.uint64(1))
        first |= lowest
        equal ^= lowest
    return first


def adjacent_equal(
    values: np.ndarray, first: npt.NDArray[np.bool_] | None = None
) -> Iterator[tuple[I64, I64]]:
    """Every pair of positions ``p < q`` with ``values[p] == values[q]`` in a sorted array.

    Yields one offset ``q - p`` at a time, so memory stays bounded by the array size.

    Args:
        values: Sorted values.
        first: When given, only pairs whose first position ``p`` is marked.
    """
    size = values.size
    same = values[1:] == values[:-1]
    if first is not None:
        same &= first[:-1]
    pos = np.flatnonzero(same).astype(np.int64)
    offset = 1
    while pos.size:
        yield pos, pos + offset
        offset += 1
        pos = pos[pos + offset < size]
        pos = pos[values[pos + offset] == values[pos]]


def table_pairs(entries: Entries, combo: tuple[int, ...]) -> tuple[I64, I64, I64]:
    """Pairs of items within the threshold whose first agreeing table is ``combo``.

    Args:
        entries: Every code of every item, with the plan.
        combo: The table's block indices.

    Returns:
        First items, second items and distances, unsorted and not normalised to ``i < j``.
    """
    size, words = entries.codes.shape
    index_bits = max(1, int(size - 1).bit_length())
    keys = np.sort(_key(entries, combo, index_bits))
    order = (keys & np.uint64((1 << index_bits) - 1)).astype(np.int64)
    top = keys >> np.uint64(index_bits)
    del keys
    ordered = entries.codes[order]
    flat = ordered[:, 0] if words == 1 else None
    plain = entries.plain[order] if entries.oriented else None
    item = entries.item[order] if entries.oriented else order
    plan = entries.plan
    table_mask = np.uint64(sum(1 << b for b in combo))
    found_a: list[I64] = []
    found_b: list[I64] = []
    found_d: list[I64] = []
    # Oriented: plain entries have the lowest entry indices, so they sort first among equal
    # keys; pairs starting at a plain entry are all the useful ones (never turned x turned).
    for a, b in adjacent_equal(top, plain):
        if plain is not None:
            useful = item[a] != item[b]
            a, b = a[useful], b[useful]
        if flat is not None:
            dist = np.bitwise_count(flat[a] ^ flat[b])
        else:
            dist = np.bitwise_count(ordered[a] ^ ordered[b]).sum(axis=1, dtype=np.int64)
        near = dist <= plan.threshold
        if not near.any():
            continue
        a, b = a[near], b[near]
        xor = ordered[a] ^ ordered[b]
        mine = _first_table_mask(xor, plan.blocks, plan.per_table) == table_mask
        a, b = a[mine], b[mine]
        found_a.append(item[a])
        found_b.append(item[b])
        found_d.append(np.bitwise_count(xor[mine]).sum(axis=1, dtype=np.int64))
    if not found_a:
        nothing = np.zeros(0, dtype=np.int64)
        return nothing, nothing, nothing
    return np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_d)
