"""All pairs of embedding vectors within a cosine distance, found with a FAISS index.

The vector analogue of :mod:`pixelpipe.imaging.hamming`: near duplicates by an embedding
column (CLIP features and the like) instead of a perceptual hash. :func:`normalise` turns
the vectors into float32 unit rows (and refuses NaN, infinity, all-zero rows and
non-matrices), :func:`cosine_pairs` finds every pair ``i < j`` with
``1 - cos(v_i, v_j) <= max_distance``, :func:`pair_distances` is the distance itself and
:func:`recall` checks a result against brute force on a sample of rows.

Methods and what they cost (``n`` distinct rows of dimension ``d``):

- ``exact``: every query block of ``block`` rows is range-searched with FAISS's exhaustive
  inner-product range search (the function behind ``IndexFlatIP.range_search``) against the
  rows from the block's start on, so each pair is scored once: ``n**2 * d / 2`` multiply-adds
  on FAISS's threads, memory ``O(n * d)`` for the rows plus one block's results. Exact by
  construction: nothing within the distance is missed (see *Float tolerance*).
- ``hnsw``: an ``IndexHNSWFlat`` graph (``M = 32``, inner product, ``efConstruction``
  :data:`EF_CONSTRUCTION`), searched for the ``neighbours`` nearest of every row
  (``efSearch`` :data:`EF_SEARCH` or more). The graph is built on one thread: a threaded
  build inserts in an order that depends on timing, so two builds may differ (FAISS's own
  advice for reproducible HNSW, facebookresearch/faiss#2548); searching is threaded
  (each query is independent, so the result does not depend on the threads). Cost: about
  ``n * log(n) * d`` for the build and the search, memory a second copy of the rows plus
  ``2 * M`` links a row. Approximate: a pair the
  graph search does not reach is missed (measure with :func:`recall`). A row whose
  ``neighbours`` nearest are all within the distance may have more, so such rows are
  searched again exhaustively: a dense group of near copies is found whole.
- ``auto``: ``exact`` up to :data:`EXACT_MAX_ITEMS` distinct rows, ``hnsw`` above. Measured
  with ``benchmarks/bench_vectors.py`` (d = 512, 2 cores): ``exact`` 32 s at 100k and 129 s
  at 200k, ``hnsw`` 43 s and 87 s, so they cost the same near 135k; ``exact`` is kept a
  little beyond, because it misses nothing. Both costs grow with ``d`` alike.

Identical unit rows are collapsed before searching (a folder of blank images is one
vector); their pairs come back with distance 0. The result lists every pair of items, so
a group of ``k`` identical vectors costs ``k * (k - 1) / 2`` pairs in it.

Float tolerance: the distance of a pair is computed in float64 from the float32 unit rows,
as ``1 - (a . b) / sqrt((a . a) (b . b))`` clipped to ``[0, 2]``: within about ``1e-15`` of
the exact cosine distance of those rows (which are the input's directions rounded to
float32, about ``1e-7`` away), and exactly 0 for identical rows. The index scores in
float32; candidates are taken with a margin that bounds float32's rounding
(``(d + 16) * 2**-23``) and then kept by the float64 distance, so the boundary is inclusive
(``distance <= max_distance``) and the same pairs come out whatever the method's rounding.

FAISS's threads are process-wide (``omp_set_num_threads``): this module sets them for the
duration of a call and restores them after, so do not run two searches at once in threads
of one process. Results are sorted, so the same for any number of threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import faiss  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import numpy.typing as npt

from pixelpipe.imaging.mih import I64, adjacent_equal

__all__ = [
    "EF_CONSTRUCTION",
    "EF_SEARCH",
    "EXACT_MAX_ITEMS",
    "F32",
    "F64",
    "HNSW_LINKS",
    "Method",
    "VectorPairs",
    "cosine_pairs",
    "normalise",
    "pair_distances",
    "recall",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Method = Literal["auto", "exact", "hnsw"]

EXACT_MAX_ITEMS = 150_000
"""``auto`` searches exhaustively up to this many distinct rows (see the module docstring)."""
HNSW_LINKS = 32  # M: links per row in the graph
EF_CONSTRUCTION = 40  # candidates kept while inserting a row (FAISS's default)
EF_SEARCH = 128  # candidates kept while searching (at least ``neighbours + 1``)
_CELLS = 1 << 22  # float64 cells per step of normalise / pair_distances / recall
_SHOWN = 10  # rows named in an error before "and N more"
_HASH_SEED = 20240611  # fixed: the grouping of identical rows never depends on a run


@dataclass(frozen=True)
class VectorPairs:
    """Pairs ``i < j`` of items within a cosine distance, sorted by ``(i, j)``.

    Attributes:
        i: First item of each pair.
        j: Second item (always greater than ``i``).
        distance: ``1 - cosine similarity`` (see :func:`pair_distances`), in float64 so
            that ``distance <= max_distance`` holds for the very numbers reported.
        method: How they were found: ``exact`` or ``hnsw``.
    """

    i: I64
    j: I64
    distance: F64
    method: Literal["exact", "hnsw"]

    def __len__(self) -> int:
        return int(self.i.size)

    @classmethod
    def empty(cls, method: Literal["exact", "hnsw"] = "exact") -> VectorPairs:
        """No pairs."""
        nothing = np.zeros(0, dtype=np.int64)
        return cls(nothing, nothing.copy(), np.zeros(0, dtype=np.float64), method)

    @classmethod
    def build(
        cls, a: np.ndarray, b: np.ndarray, d: np.ndarray, method: Literal["exact", "hnsw"]
    ) -> VectorPairs:
        """Normalise to ``i < j``, keep one row per pair, sort by ``(i, j)``.

        Args:
            a: One item of each pair.
            b: The other item.
            d: Their distances.
            method: How they were found.
        """
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        dist = np.asarray(d, dtype=np.float64)
        i, j = np.minimum(a, b), np.maximum(a, b)
        order = np.lexsort((dist, j, i))
        i, j, dist = i[order], j[order], dist[order]
        if i.size:
            first = np.ones(i.size, dtype=bool)
            first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
            i, j, dist = i[first], j[first], dist[first]
        return cls(i, j, dist, method)

    def as_set(self) -> set[tuple[int, int]]:
        """The pairs as a set of ``(i, j)`` (for tests and recall checks)."""
        return set(zip(self.i.tolist(), self.j.tolist(), strict=True))


def _rows_named(rows: list[int], one: str, many: str) -> str:
    """``row 3 is ...`` or ``rows 3, 5 and 12 more are ...``."""
    shown = ", ".join(str(r) for r in rows[:_SHOWN])
    more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    return f"row {shown} {one}" if len(rows) == 1 else f"rows {shown}{more} {many}"


def normalise(vectors: npt.ArrayLike) -> F32:
    """The rows of ``vectors`` scaled to unit length, as float32.

    Each row is scaled by its largest absolute value first, in float64, so huge or tiny
    values neither overflow nor underflow; the work goes in bounded steps of rows.

    Args:
        vectors: ``(n, d)`` real numbers, one vector a row.

    Returns:
        ``(n, d)`` float32, every row of length 1 (to float32 rounding).

    Raises:
        ValueError: ``vectors`` is not a 2-D array of real numbers, has dimension 0 while
            holding rows, or has rows with NaN or infinity or all zeros (all such rows
            named, with their 0-based index, in one message).
    """
    array = np.asarray(vectors)
    if array.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (n, d) array, got shape {array.shape}")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"vectors must hold real numbers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"vectors must hold real numbers, got dtype {array.dtype}")
    count, dim = array.shape
    if dim == 0 and count:
        raise ValueError(f"vectors have dimension 0 (shape {array.shape}): nothing to compare")
    unit = np.empty((count, dim), dtype=np.float32)
    bad: list[int] = []
    zero: list[int] = []
    step = max(1, _CELLS // max(1, dim))
    for start in range(0, count, step):
        part = np.asarray(array[start : start + step], dtype=np.float64)
        finite = np.asarray(np.isfinite(part).all(axis=1), dtype=bool)
        scale = np.abs(np.where(finite[:, None], part, 0.0)).max(axis=1, initial=0.0)
        bad.extend((start + np.flatnonzero(~finite)).tolist())
        zero.extend((start + np.flatnonzero(finite & (scale == 0))).tolist())
        scale[scale == 0] = 1.0
        part = np.where(finite[:, None], part, 0.0) / scale[:, None]
        length = np.sqrt((part * part).sum(axis=1))
        length[length == 0] = 1.0
        unit[start : start + part.shape[0]] = part / length[:, None]
    if bad or zero:
        problems = []
        if bad:
            problems.append(_rows_named(bad, "holds NaN or infinity", "hold NaN or infinity"))
        if zero:
            problems.append(
                _rows_named(zero, "is all zeros", "are all zeros")
                + " (a zero vector has no direction)"
            )
        raise ValueError(f"vectors: {'; '.join(problems)}")
    return unit


def pair_distances(unit: F32, i: npt.ArrayLike, j: npt.ArrayLike) -> F64:
    """Cosine distances of given pairs of rows, in float64.

    ``1 - (a . b) / sqrt((a . a) (b . b))`` from the float32 rows, clipped to ``[0, 2]``:
    products of float32 numbers are exact in float64, so this is the rows' cosine distance
    to about ``1e-15``, and exactly 0 for two identical rows.

    Args:
        unit: ``(n, d)`` rows from :func:`normalise`.
        i: One row of each pair.
        j: The other row.

    Returns:
        One distance a pair.
    """
    a, b = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    out = np.empty(a.size, dtype=np.float64)
    step = max(1, _CELLS // max(1, unit.shape[1]))
    for start in range(0, a.size, step):
        x = unit[a[start : start + step]].astype(np.float64)
        y = unit[b[start : start + step]].astype(np.float64)
        cosine = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
        out[start : start + x.shape[0]] = np.clip(1.0 - cosine, 0.0, 2.0)
    return out


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """FAISS's OpenMP threads set to ``count`` inside the block (unchanged when ``None``)."""
    before = int(faiss.omp_get_max_threads())
    if count is not None:
        faiss.omp_set_num_threads(max(1, count))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _radius(max_distance: float, dim: int) -> float:
    """Smallest float32 score that may be within ``max_distance``, with rounding margin."""
    slack = (dim + 16) * 2.0**-23
    return max(-2.0, 1.0 - max_distance - slack)


def _range(queries: F32, base: F32, radius: float) -> tuple[I64, I64]:
    """``(query row, base row)`` of every inner product above ``radius`` (exhaustive)."""
    count = queries.shape[0]
    result = faiss.RangeSearchResult(count)
    faiss.range_search_inner_product(
        faiss.swig_ptr(queries),
        faiss.swig_ptr(base),
        queries.shape[1],
        count,
        base.shape[0],
        float(radius),
        result,
    )
    lims = faiss.rev_swig_ptr(result.lims, count + 1).astype(np.int64)
    total = int(lims[-1])
    if total == 0:
        nothing = np.zeros(0, dtype=np.int64)
        return nothing, nothing.copy()
    labels = faiss.rev_swig_ptr(result.labels, total).astype(np.int64)
    return np.repeat(np.arange(count, dtype=np.int64), np.diff(lims)), labels


def _exact_candidates(rows: F32, radius: float, block: int) -> tuple[I64, I64]:
    """Pairs ``a < b`` of rows scoring above ``radius``, each scored once."""
    parts_a: list[I64] = []
    parts_b: list[I64] = []
    for start in range(0, rows.shape[0], block):
        query, other = _range(rows[start : start + block], rows[start:], radius)
        keep = other > query  # both offsets are from ``start``: the upper triangle
        parts_a.append(query[keep] + start)
        parts_b.append(other[keep] + start)
    return _concat(parts_a), _concat(parts_b)


def _hnsw_candidates(rows: F32, radius: float, neighbours: int, block: int) -> tuple[I64, I64]:
    """Pairs ``a < b`` within reach of the graph (both directions), scoring above ``radius``."""
    count, dim = rows.shape
    index = faiss.IndexHNSWFlat(dim, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    with _threads(1):  # a threaded build depends on timing: not reproducible
        index.add(rows)
    wanted = min(count, neighbours + 1)  # the row itself comes back too
    index.hnsw.efSearch = max(EF_SEARCH, wanted)
    parts_a: list[I64] = []
    parts_b: list[I64] = []
    saturated: list[I64] = []
    for start in range(0, count, block):
        scores, labels = index.search(rows[start : start + block], wanted)
        query = np.arange(start, start + labels.shape[0], dtype=np.int64)[:, None]
        keep = (labels >= 0) & (labels != query) & (scores > radius)
        parts_a.append(np.broadcast_to(query, labels.shape)[keep])
        parts_b.append(labels[keep].astype(np.int64))
        full = (labels[:, -1] >= 0) & (scores[:, -1] > radius)
        saturated.append(query[:, 0][full])
    del index
    # Rows whose every neighbour found is within the distance may have more: search them
    # exhaustively against all rows.
    dense = _concat(saturated)
    for start in range(0, dense.size, block):
        chosen = dense[start : start + block]
        query, other = _range(np.ascontiguousarray(rows[chosen]), rows, radius)
        keep = other != chosen[query]
        parts_a.append(chosen[query[keep]])
        parts_b.append(other[keep])
    a, b = _concat(parts_a), _concat(parts_b)
    key = np.unique(np.minimum(a, b) * count + np.maximum(a, b))
    return key // count, key % count


def _concat(parts: list[I64]) -> I64:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _distinct(unit: F32) -> tuple[I64, I64]:
    """First item of each distinct row (ascending) and each item's distinct row.

    Rows are grouped by a 64-bit hash of their bits (bounded memory, unlike sorting the
    rows), then every row is compared with its group's first row; on a hash collision
    (never seen, but possible) :func:`_distinct_by_sorting` groups them instead.
    """
    count, dim = unit.shape
    if count == 0 or dim == 0:
        return np.arange(count, dtype=np.int64), np.arange(count, dtype=np.int64)
    words = np.ascontiguousarray(unit).view(np.uint32)
    weights = np.random.default_rng(_HASH_SEED).integers(1, 2**63, size=dim, dtype=np.uint64)
    weights |= np.uint64(1)
    keys = np.empty(count, dtype=np.uint64)
    step = max(1, _CELLS // dim)
    for start in range(0, count, step):
        keys[start : start + step] = (words[start : start + step] * weights).sum(axis=1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    for start in range(0, count, step):
        group_first = first[inverse[start : start + step]]
        if not np.array_equal(unit[start : start + step], unit[group_first]):
            return _distinct_by_sorting(unit)
    return _by_first_occurrence(first, inverse)


def _distinct_by_sorting(unit: F32) -> tuple[I64, I64]:
    """:func:`_distinct` by sorting the rows' bytes (a copy of the rows in memory)."""
    rows = np.ascontiguousarray(unit).view(np.dtype((np.void, unit.shape[1] * 4))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return _by_first_occurrence(first, inverse)


def _by_first_occurrence(first: np.ndarray, inverse: np.ndarray) -> tuple[I64, I64]:
    """Groups renumbered so that group ``k`` is the ``k``-th to appear."""
    order = np.argsort(first, kind="stable")
    rank = np.empty(first.size, dtype=np.int64)
    rank[order] = np.arange(first.size, dtype=np.int64)
    return first[order].astype(np.int64), rank[np.asarray(inverse).reshape(-1)]


def _expand(inverse: I64, a: I64, b: I64, dist: F64) -> tuple[I64, I64, F64]:
    """Pairs of distinct rows as pairs of items, with the pairs inside each group (0)."""
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=int(inverse.max(initial=-1)) + 1)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    parts_a: list[I64] = []
    parts_b: list[I64] = []
    parts_d: list[F64] = []
    for left, right in adjacent_equal(inverse[order]):
        parts_a.append(order[left])
        parts_b.append(order[right])
        parts_d.append(np.zeros(left.size, dtype=np.float64))
    if a.size:
        ca, cb = counts[a], counts[b]
        per = ca * cb
        pair_of = np.repeat(np.arange(a.size), per)
        rank = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
        parts_a.append(order[starts[a[pair_of]] + rank // cb[pair_of]])
        parts_b.append(order[starts[b[pair_of]] + rank % cb[pair_of]])
        parts_d.append(dist[pair_of])
    if not parts_a:
        nothing = np.zeros(0, dtype=np.int64)
        return nothing, nothing.copy(), np.zeros(0, dtype=np.float64)
    return _concat(parts_a), _concat(parts_b), np.concatenate(parts_d)


def cosine_pairs(
    vectors: npt.ArrayLike,
    max_distance: float,
    *,
    method: Method = "auto",
    neighbours: int = 32,
    block: int = 4096,
    threads: int | None = None,
) -> VectorPairs:
    """Every pair of rows within ``max_distance`` of each other, by cosine distance.

    Args:
        vectors: ``(n, d)`` real numbers, one vector an item (any length but 0).
        max_distance: Largest ``1 - cosine similarity`` reported (inclusive); 0 finds
            vectors pointing the same way, 2 every pair.
        method: ``auto``, ``exact`` or ``hnsw`` (see the module docstring for the costs).
        neighbours: ``hnsw``: nearest neighbours searched per row (rows whose neighbours
            are all within the distance are searched again exhaustively).
        block: Query rows per FAISS call: bounds the memory of the results held at once.
        threads: FAISS (OpenMP) threads for the search; ``None`` leaves FAISS's setting
            (all cores). The ``hnsw`` graph is always built on one thread.

    Returns:
        The pairs ``i < j`` sorted by ``(i, j)``, with their distances, and the method used.

    Raises:
        ValueError: Bad vectors (see :func:`normalise`), a negative or NaN
            ``max_distance``, an unknown method, or ``neighbours`` / ``block`` below 1.
    """
    if not max_distance >= 0:
        raise ValueError(f"max_distance must be a number >= 0, got {max_distance}")
    if method not in ("auto", "exact", "hnsw"):
        raise ValueError(f"method must be 'auto', 'exact' or 'hnsw', got {method!r}")
    if neighbours < 1 or block < 1:
        raise ValueError(f"neighbours and block must be >= 1, got {neighbours} and {block}")
    unit = normalise(vectors)
    first, inverse = _distinct(unit)
    small = first.size <= EXACT_MAX_ITEMS
    chosen: Literal["exact", "hnsw"] = method if method != "auto" else "exact" if small else "hnsw"
    if unit.shape[0] < 2:
        return VectorPairs.empty(chosen)
    rows = unit if first.size == unit.shape[0] else np.ascontiguousarray(unit[first])
    del unit
    radius = _radius(float(max_distance), rows.shape[1])
    with _threads(threads):
        if chosen == "exact":
            a, b = _exact_candidates(rows, radius, block)
        else:
            a, b = _hnsw_candidates(rows, radius, neighbours, block)
    dist = pair_distances(rows, a, b)
    near = dist <= max_distance
    i, j, d = _expand(inverse, a[near], b[near], dist[near])
    return VectorPairs.build(i, j, d, chosen)


def recall(
    vectors: npt.ArrayLike, found: VectorPairs, max_distance: float, sample: int = 1000
) -> float:
    """Share of the true pairs of ``sample`` query rows that ``found`` holds.

    The query rows are spread evenly over the items (the same rows every time); their
    true pairs are found by brute force (numpy, every query against every row, the float32
    scores confirmed by :func:`pair_distances`), and compared with the pairs of ``found``
    that involve a query row.

    Args:
        vectors: The vectors ``found`` was computed from.
        found: A result of :func:`cosine_pairs` (or any pairs of those items).
        max_distance: The distance ``found`` was computed with.
        sample: How many query rows (all rows when there are fewer).

    Returns:
        Found true pairs over true pairs; 1.0 when the queries have no true pair.

    Raises:
        ValueError: Bad vectors (see :func:`normalise`).
    """
    unit = normalise(vectors)
    count = unit.shape[0]
    if count < 2 or sample < 1:
        return 1.0
    queries = np.unique(np.linspace(0, count - 1, num=min(sample, count)).round()).astype(np.int64)
    radius = _radius(float(max_distance), unit.shape[1])
    expected: set[tuple[int, int]] = set()
    step = max(1, 4 * _CELLS // count)  # float32 scores: 64 MB a step
    for start in range(0, queries.size, step):
        chunk = queries[start : start + step]
        rows, other = np.nonzero(unit[chunk] @ unit.T > radius)
        query = chunk[rows]
        keep = other != query
        query, other = query[keep], other[keep].astype(np.int64)
        near = pair_distances(unit, query, other) <= max_distance
        a, b = query[near], other[near]
        expected.update(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True))
    if not expected:
        return 1.0
    mine = np.isin(found.i, queries) | np.isin(found.j, queries)
    got = set(zip(found.i[mine].tolist(), found.j[mine].tolist(), strict=True))
    return len(expected & got) / len(expected)
