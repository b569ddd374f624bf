"""All pairs of binary codes within a Hamming distance, without comparing every pair.

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
``t = 8`` it picks ``B = 12`` (495 tables of 21-bit keys). Tables are independent, so they
are mapped over chunks by a plain map function the caller passes (a stage passes its
executor's ``map_chunks``; the default runs them in this process); the result is sorted,
hence the same for any number of workers.

Codes may come with *orientations*, ``(n, K, words)``: column 0 is each item's code, the
others are codes of transformed copies (flips and rotations, see
:mod:`pixelpipe.hashing`). Then the distance of two items is the smallest distance between
one's code in any orientation and the other's plain code, in either direction.

Identical codes are collapsed before searching (a folder of blank images is one code),
so clustering never expands them into their quadratic number of pairs.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Method = Literal["auto", "index", "brute"]
MapChunks = Callable[[Callable[[list[Any]], list[Any]], Sequence[Any], int], Iterable[Any]]
"""``map_chunks(fn, items, chunk_size)``: ``fn`` over consecutive chunks, results in order."""
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

# Cost model, in nanoseconds, measured with numpy on one core of the development machine.
_SORT_NS = 90.0  # per entry and table: keys, one sort, gathers
_CANDIDATE_NS = 25.0  # per candidate pair: gather, xor, popcount, compare
_BRUTE_NS = 2.5  # per pair and word for brute force
_MAX_TABLES = 20_000
_BRUTE_CELLS = 1 << 23  # distance matrix cells per brute-force step (bounded memory)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def distance(a: np.ndarray, b: np.ndarray) -> npt.NDArray[np.int64]:
    """Hamming distance of codes, word arrays on the last axis (broadcasting)."""
    counts = np.bitwise_count(np.bitwise_xor(a, b))
    return np.asarray(counts.sum(axis=-1, dtype=np.int64))


@dataclass(frozen=True)
class Pairs:
    """Pairs ``i < j`` of items with their distance, sorted by ``(i, j)``.

    Attributes:
        i: First item of each pair.
        j: Second item (always greater than ``i``).
        distance: Their Hamming distance.
    """

    i: I64
    j: I64
    distance: I64

    def __len__(self) -> int:
        return int(self.i.size)

    @classmethod
    def empty(cls) -> Pairs:
        """No pairs."""
        nothing = np.zeros(0, dtype=np.int64)
        return cls(nothing, nothing.copy(), nothing.copy())

    @classmethod
    def build(cls, a: np.ndarray, b: np.ndarray, d: np.ndarray) -> Pairs:
        """Normalise to ``i < j``, keep the smallest distance per pair, sort.

        Args:
            a: One item of each pair.
            b: The other item.
            d: Distances.
        """
        a, b, d = (np.asarray(x, dtype=np.int64) for x in (a, b, d))
        i, j = np.minimum(a, b), np.maximum(a, b)
        order = np.lexsort((d, j, i))
        i, j, d = i[order], j[order], d[order]
        if i.size:
            first = np.ones(i.size, dtype=bool)
            first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
            i, j, d = i[first], j[first], d[first]
        return cls(i, j, d)

    def as_set(self) -> set[tuple[int, int]]:
        """The pairs as a set of ``(i, j)`` (for tests and recall checks)."""
        return set(zip(self.i.tolist(), self.j.tolist(), strict=True))


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
class _Entries:
    """What a table worker needs: every code of every item, flattened."""

    codes: U64  # (m, words)
    item: I64  # (m,) item of each entry; empty when not oriented (item = entry)
    plain: npt.NDArray[np.bool_]  # (m,) orientation 0 (the item's own code); same
    plan: Plan
    oriented: bool


def _key(entries: _Entries, combo: tuple[int, ...], index_bits: int) -> U64:
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


def _adjacent_equal(
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


def _table_pairs(entries: _Entries, combo: tuple[int, ...]) -> tuple[I64, I64, I64]:
    """Pairs of items within the threshold whose first agreeing table is ``combo``."""
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
    for a, b in _adjacent_equal(top, plain):
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


def _tables_chunk(entries: _Entries, combos: list[tuple[int, ...]]) -> list[Pairs]:
    """Executor work item: the pairs of each table in ``combos``."""
    return [Pairs.build(*_table_pairs(entries, combo)) for combo in combos]


def _as_codes(codes: np.ndarray) -> U64:
    """``(n, words)`` or ``(n, orientations, words)`` as ``(n, orientations, words)``."""
    array = np.asarray(codes)
    if array.dtype != np.uint64:
        raise TypeError(f"codes must be uint64 words, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3:
        raise ValueError(f"codes must be (n, words) or (n, orientations, words), got {array.shape}")
    return np.ascontiguousarray(array)


def _directional(codes: U64, rows: I64, cols: I64 | slice) -> I64:
    """``min_k d(code_k(row), code_0(col))`` for every row and column."""
    left = codes[rows][:, :, None, :]  # (r, k, 1, w)
    right = codes[cols, 0][None, None, :, :]  # (1, 1, c, w)
    return np.asarray(distance(left, right).min(axis=1))


def distances_from(codes: np.ndarray, rows: Sequence[int] | np.ndarray) -> I64:
    """Brute-force distances from some items to all: ``(len(rows), n)``.

    With orientations, the distance of two items is the smaller of both directions.

    Args:
        codes: ``(n, words)`` or ``(n, orientations, words)`` uint64.
        rows: The items to measure from.
    """
    array = _as_codes(codes)
    index = np.asarray(rows, dtype=np.int64)
    forward = _directional(array, index, slice(None))
    if array.shape[1] == 1:
        return forward
    backward = np.asarray(distance(array[:, :, None, :], array[index, 0][None, None]).min(axis=1))
    return np.asarray(np.minimum(forward, backward.T), dtype=np.int64)


def pair_distances(codes: np.ndarray, i: np.ndarray, j: np.ndarray) -> I64:
    """Distances of given pairs of items (both directions when oriented)."""
    array = _as_codes(codes)
    a, b = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    forward = distance(array[a], array[b, 0][:, None, :]).min(axis=1)
    backward = distance(array[b], array[a, 0][:, None, :]).min(axis=1)
    return np.asarray(np.minimum(forward, backward), dtype=np.int64)


def _row_steps(count: int, width: int) -> Iterator[I64]:
    step = max(1, _BRUTE_CELLS // max(1, width))
    for start in range(0, count, step):
        yield np.arange(start, min(count, start + step), dtype=np.int64)


def brute_force_pairs(codes: np.ndarray, threshold: int) -> Pairs:
    """Every pair within ``threshold`` by comparing all pairs (reference and small inputs)."""
    array = _as_codes(codes)
    count, orientations, words = array.shape
    parts_i: list[I64] = []
    parts_j: list[I64] = []
    parts_d: list[I64] = []
    for rows in _row_steps(count, count * orientations * words):
        dist = distances_from(array, rows)
        r, c = np.nonzero((dist <= threshold) & (np.arange(count)[None, :] > rows[:, None]))
        parts_i.append(rows[r])
        parts_j.append(c.astype(np.int64))
        parts_d.append(dist[r, c])
    if not parts_i:
        return Pairs.empty()
    return Pairs.build(np.concatenate(parts_i), np.concatenate(parts_j), np.concatenate(parts_d))


def nearest(codes: np.ndarray, rows: Sequence[int] | np.ndarray) -> tuple[I64, I64]:
    """Brute-force nearest other item of each row: ``(distance, item)``; ``(-1, -1)`` alone.

    Ties go to the lowest item index.
    """
    array = _as_codes(codes)
    index = np.asarray(rows, dtype=np.int64)
    best_d = np.full(index.size, -1, dtype=np.int64)
    best_j = np.full(index.size, -1, dtype=np.int64)
    if array.shape[0] < 2:
        return best_d, best_j
    width = array.shape[0] * array.shape[1] * array.shape[2]
    for part in _row_steps(index.size, width):
        dist = distances_from(array, index[part])
        dist[np.arange(part.size), index[part]] = np.iinfo(np.int64).max
        best_j[part] = dist.argmin(axis=1)
        best_d[part] = dist[np.arange(part.size), best_j[part]]
    return best_d, best_j


class UnionFind:
    """Disjoint sets over ``0..n-1``; each set's root is its smallest member.

    Args:
        size: Number of elements.
    """

    def __init__(self, size: int) -> None:
        self.parent = np.arange(size, dtype=np.int64)

    def find(self, item: int) -> int:
        """The root (smallest member) of ``item``'s set."""
        parent = self.parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = int(parent[item])
        return item

    def union(self, a: int, b: int) -> None:
        """Merge the sets of ``a`` and ``b``."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def union_pairs(self, a: np.ndarray, b: np.ndarray) -> None:
        """Merge along many pairs."""
        for x, y in zip(np.asarray(a).tolist(), np.asarray(b).tolist(), strict=True):
            self.union(x, y)

    def labels(self) -> I64:
        """Each element's root (the smallest member of its set)."""
        parent = self.parent
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent.copy()
            parent[:] = grand


@dataclass(frozen=True)
class SearchResult:
    """Pairs within a threshold, over distinct codes.

    Attributes:
        inverse: For each item, the index of its distinct code.
        unique_pairs: Pairs of distinct codes within the threshold.
        plan: How the search ran.
    """

    inverse: I64
    unique_pairs: Pairs
    plan: Plan

    def clusters(self) -> I64:
        """Connected components by union-find, one label per item.

        An item's label is the smallest item index in its cluster; items with identical
        codes share a cluster.
        """
        items = self.inverse.size
        if not items:
            return np.zeros(0, dtype=np.int64)
        distinct = int(self.inverse.max()) + 1
        forest = UnionFind(distinct)
        forest.union_pairs(self.unique_pairs.i, self.unique_pairs.j)
        root = forest.labels()[self.inverse]
        smallest = np.full(distinct, items, dtype=np.int64)
        np.minimum.at(smallest, root, np.arange(items, dtype=np.int64))
        return smallest[root]

    def pairs(self) -> Pairs:
        """Every pair of items within the threshold (identical codes expanded)."""
        order = np.argsort(self.inverse, kind="stable")
        counts = np.bincount(self.inverse, minlength=int(self.inverse.max(initial=-1)) + 1)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        parts_a: list[I64] = []
        parts_b: list[I64] = []
        parts_d: list[I64] = []
        # Items sharing a code: distance 0.
        for left, right in _adjacent_equal(self.inverse[order]):
            parts_a.append(order[left])
            parts_b.append(order[right])
            parts_d.append(np.zeros(left.size, dtype=np.int64))
        # Pairs of distinct codes: every member of one with every member of the other.
        pairs = self.unique_pairs
        if len(pairs):
            ci, cj = counts[pairs.i], counts[pairs.j]
            per = ci * cj
            pair_of = np.repeat(np.arange(len(pairs)), per)
            rank = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
            left = rank // cj[pair_of]
            right = rank % cj[pair_of]
            parts_a.append(order[starts[pairs.i[pair_of]] + left])
            parts_b.append(order[starts[pairs.j[pair_of]] + right])
            parts_d.append(pairs.distance[pair_of])
        if not parts_a:
            return Pairs.empty()
        return Pairs.build(
            np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(parts_d)
        )


def _serial(
    fn: Callable[[list[Any]], list[Any]], items: Sequence[Any], chunk_size: int
) -> Iterator[Any]:
    for start in range(0, len(items), chunk_size):
        yield from fn(list(items[start : start + chunk_size]))


def search(
    codes: np.ndarray,
    threshold: int,
    *,
    bits: int | None = None,
    map_chunks: MapChunks | None = None,
    workers: int = 1,
    method: Method = "auto",
) -> SearchResult:
    """Find every pair of items within ``threshold``.

    Args:
        codes: ``(n, words)`` uint64, or ``(n, orientations, words)`` with each item's
            code in column 0 and its transformed copies' codes after.
        threshold: Largest Hamming distance reported (inclusive).
        bits: Significant bits per code, from the most significant end (default: all).
        map_chunks: Runs the tables over chunks (a stage passes
            ``ctx.executor.map_chunks``); in this process when ``None``.
        workers: How many workers ``map_chunks`` uses (sizes the chunks).
        method: ``auto`` (cheapest estimate), ``index`` or ``brute``.

    Returns:
        The pairs over distinct codes, the item-to-code map and the plan used.
    """
    array = _as_codes(codes)
    count, orientations, words = array.shape
    bits = bits if bits is not None else 64 * words
    if count == 0:
        empty = np.zeros(0, dtype=np.int64)
        return SearchResult(empty, Pairs.empty(), make_plan(bits, threshold, 0, 1, "brute"))
    flat = array.reshape(count, orientations * words)
    if flat.shape[1] == 1:
        unique_flat, inverse = np.unique(flat[:, 0], return_inverse=True)
        unique = unique_flat.reshape(-1, 1, 1)
    else:
        unique_rows, inverse = np.unique(flat, axis=0, return_inverse=True)
        unique = unique_rows.reshape(-1, orientations, words)
    inverse = np.asarray(inverse, dtype=np.int64).reshape(-1)
    plan = make_plan(bits, threshold, unique.shape[0], orientations, method)
    if plan.method == "brute":
        return SearchResult(inverse, brute_force_pairs(unique, threshold), plan)
    distinct = unique.shape[0]
    oriented = orientations > 1
    entries = _Entries(  # item and plain only matter (and are only sent) when oriented
        codes=np.ascontiguousarray(unique.transpose(1, 0, 2).reshape(-1, words)),
        item=np.tile(np.arange(distinct if oriented else 0, dtype=np.int64), orientations),
        plain=np.repeat(np.arange(orientations) == 0, distinct if oriented else 0),
        plan=plan,
        oriented=oriented,
    )
    combos = plan.combinations()
    per_chunk = max(1, -(-len(combos) // (4 * max(1, workers))))
    mapper = map_chunks or _serial
    found = list(mapper(functools.partial(_tables_chunk, entries), combos, per_chunk))
    found = [p for p in found if len(p)]
    if not found:
        return SearchResult(inverse, Pairs.empty(), plan)
    merged = Pairs.build(
        np.concatenate([p.i for p in found]),
        np.concatenate([p.j for p in found]),
        np.concatenate([p.distance for p in found]),
    )
    return SearchResult(inverse, merged, plan)
