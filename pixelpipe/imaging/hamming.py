"""All pairs of binary codes within a Hamming distance, without comparing every pair.

:func:`search` finds them with the multi-index hashing tables of
:mod:`pixelpipe.imaging.mih` (the method, its exact recall and its cost model are described
there), or by brute force when the plan says that is cheaper, for small inputs. Tables are
independent, so they are mapped over chunks by a plain map function the caller passes (a
stage passes its executor's ``map_chunks``; the default runs them in this process); the
result is sorted, hence the same for any number of workers.

Codes may come with *orientations*, ``(n, K, words)``: column 0 is each item's code, the
others are codes of transformed copies (flips and rotations, see
:mod:`pixelpipe.imaging.hashing`). Then the distance of two items is the smallest distance
between one's code in any orientation and the other's plain code, in either direction.

Identical codes are collapsed before searching (a folder of blank images is one code),
so clustering never expands them into their quadratic number of pairs.

This module is the public face of the search: :func:`distance`, :class:`Pairs`, the brute
force reference (:func:`distances_from`, :func:`pair_distances`, :func:`brute_force_pairs`,
:func:`nearest`), :class:`UnionFind`, :class:`SearchResult` and :func:`search`. The plan
(:class:`Block`, :class:`Plan`, :func:`make_plan`, ``Method``) is re-exported from
:mod:`pixelpipe.imaging.mih`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pixelpipe.imaging.mih import (
    I64,
    U64,
    Block,
    Method,
    Plan,
    adjacent_equal,
    make_plan,
    table_pairs,
)
from pixelpipe.imaging.mih import Entries as _Entries  # the name callers and tests know

__all__ = [
    "Block",
    "MapChunks",
    "Method",
    "Pairs",
    "Plan",
    "SearchResult",
    "UnionFind",
    "brute_force_pairs",
    "distance",
    "distances_from",
    "make_plan",
    "nearest",
    "pair_distances",
    "search",
]

MapChunks = Callable[[Callable[[list[Any]], list[Any]], Sequence[Any], int], Iterable[Any]]
"""``map_chunks(fn, items, chunk_size)``: ``fn`` over consecutive chunks, results in order."""
_BRUTE_CELLS = 1 << 23  # distance matrix cells per brute-force step (bounded memory)


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
        for left, right in adjacent_equal(self.inverse[order]):
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


def _tables_chunk(entries: _Entries, combos: list[tuple[int, ...]]) -> list[Pairs]:
    """Executor work item: the pairs of each table in ``combos``."""
    return [Pairs.build(*table_pairs(entries, combo)) for combo in combos]


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
