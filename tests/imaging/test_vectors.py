"""Cosine search: both methods find what numpy brute force finds, with exact distances."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from pixelpipe.imaging import vectors
from pixelpipe.imaging.vectors import Method, VectorPairs, cosine_pairs, normalise, pair_distances


def _planted(
    count: int, dim: int, max_distance: float, seed: int, share: float = 0.2
) -> np.ndarray:
    """Gaussian vectors of random lengths where ``share`` of them are near copies of others
    (noise added, cosine distances spread over ``[0, 2 * max_distance]``) and 2% exact
    copies."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    copies = int(count * share)
    source, target = rng.integers(0, count, size=(2, copies))
    noise = rng.standard_normal((copies, dim))
    noise *= np.sqrt(2 * rng.uniform(0, 2 * max_distance, size=copies))[:, None] / np.linalg.norm(
        noise, axis=1, keepdims=True
    )
    x[target] = x[source] + noise
    same = rng.integers(0, count, size=(2, max(1, count // 50)))
    x[same[1]] = x[same[0]]
    return x * rng.uniform(0.1, 10, size=(count, 1))


def _brute(x: np.ndarray, max_distance: float) -> VectorPairs:
    """Every pair by numpy brute force: float64 Gram matrices of the unit rows in steps,
    then each pair within (plus a margin far above float64 rounding) measured by
    :func:`pair_distances` (the definition) and kept if within."""
    unit = normalise(x)
    wide = unit.astype(np.float64)
    wide /= np.linalg.norm(wide, axis=1, keepdims=True)
    parts_i, parts_j = [], []
    for start in range(0, unit.shape[0], 500):
        distance = 1.0 - wide[start : start + 500] @ wide.T
        rows, cols = np.nonzero(distance <= max_distance + 1e-9)
        rows += start
        parts_i.append(rows[cols > rows])
        parts_j.append(cols[cols > rows])
    i = np.concatenate(parts_i) if parts_i else np.zeros(0, dtype=np.int64)
    j = np.concatenate(parts_j) if parts_j else np.zeros(0, dtype=np.int64)
    d = pair_distances(unit, i, j)
    near = d <= max_distance
    return VectorPairs.build(i[near], j[near], d[near], "exact")


def _axes() -> np.ndarray:
    """e0, e1, -e0, e0 + e1 in 3-D: distances of exactly 1 and 2 between axes."""
    return np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [1, 1, 0]], dtype=np.float32)


def _groups() -> np.ndarray:
    """Three groups of 40 identical rows (more than ``neighbours``) and 20 loners."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((23, 16))
    return np.repeat(base, [40, 40, 40] + [1] * 20, axis=0)


def _dense() -> np.ndarray:
    """60 near copies of one vector, none identical: every row has 59 neighbours within."""
    rng = np.random.default_rng(4)
    return rng.standard_normal(16) + 0.01 * rng.standard_normal((60, 16))


CASES: list[tuple[Callable[[], np.ndarray], float, int]] = [
    # no vectors (any dimension): nothing to pair
    (lambda: np.zeros((0, 8)), 0.1, 0),
    # one vector: nothing to pair
    (lambda: np.ones((1, 8)), 0.1, 0),
    # two identical vectors at max_distance 0: one pair, distance exactly 0
    (lambda: np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]), 0.0, 1),
    # two orthogonal vectors exactly at the threshold (distance 1.0): inclusive
    (lambda: np.eye(2), 1.0, 1),
    # axes: e0-e1, e1-(-e0) at exactly 1.0, e0+e1 with both at 0.29; e0/-e0 (2.0) left out
    (_axes, 1.0, 4),
    # d = 1: every row is +1 or -1 after normalising; max 0 pairs each sign's rows
    (lambda: np.array([[3.0], [-1.0], [0.5], [-7.0], [2.0]]), 0.0, 4),
    # d = 1 at max 2: every pair (opposite signs are at exactly 2.0)
    (lambda: np.array([[3.0], [-1.0], [0.5]]), 2.0, 3),
    # planted near copies, low dimension, a tight threshold
    (lambda: _planted(2000, 8, 0.01, seed=1), 0.01, 180),
    # planted near copies in CLIP's dimension
    (lambda: _planted(1500, 512, 0.05, seed=2), 0.05, 150),
    # planted near copies with a loose threshold: many random pairs within too
    (lambda: _planted(800, 4, 0.3, seed=5), 0.3, 20_000),
    # max 0 among planted copies: only the identical rows (scaled copies may round apart)
    (lambda: _planted(1000, 32, 0.05, seed=6), 0.0, 15),
    # groups of identical rows larger than the neighbours hnsw searches
    (_groups, 0.0, 3 * 40 * 39 // 2),
    # one dense group of near copies: hnsw's saturated rows are searched again exhaustively
    (_dense, 0.05, 60 * 59 // 2),
    # every pair within 2
    (lambda: _planted(60, 16, 0.1, seed=7), 2.0, 60 * 59 // 2),
]


@pytest.mark.parametrize("method", ["exact", "hnsw"])
@pytest.mark.parametrize(("make", "max_distance", "at_least"), CASES)
def test_pairs_equal_brute_force(
    make: Callable[[], np.ndarray], max_distance: float, at_least: int, method: Method
) -> None:
    x = make()
    expected = _brute(x, max_distance)
    found = cosine_pairs(x, max_distance, method=method)
    assert len(expected) >= at_least  # the case holds what it is meant to test
    assert found.method == method
    assert np.array_equal(found.i, expected.i) and np.array_equal(found.j, expected.j)
    assert np.array_equal(found.distance, expected.distance)  # the same float64 numbers
    assert bool((found.i < found.j).all()) and bool((found.distance <= max_distance).all())


def test_boundary_is_inclusive_to_the_last_bit() -> None:
    x = _planted(1500, 64, 0.05, seed=8)
    everything = _brute(x, 0.1)
    # the pair whose distance is closest to 0.05, used as the threshold itself
    pick = int(np.argmin(np.abs(everything.distance - 0.05)))
    limit = float(everything.distance[pick])
    pair = (int(everything.i[pick]), int(everything.j[pick]))
    below = float(np.nextafter(limit, -np.inf))
    methods: tuple[Method, ...] = ("exact", "hnsw")
    for method in methods:
        assert pair in cosine_pairs(x, limit, method=method).as_set()
        assert pair not in cosine_pairs(x, below, method=method).as_set()


@pytest.mark.parametrize(
    ("method", "block", "threads"),
    [
        ("exact", 1, None),  # one query row per call: every row its own upper triangle
        ("exact", 7, 1),  # blocks that do not divide the rows, one thread
        ("exact", 100_000, 2),  # one block holding every row
        ("hnsw", 7, 1),  # hnsw searched in small blocks on one thread
        ("hnsw", 4096, 2),  # hnsw searched on two threads
    ],
)
def test_blocks_and_threads_do_not_change_the_result(
    method: Method, block: int, threads: int | None
) -> None:
    x = _planted(1200, 24, 0.05, seed=9)
    expected = _brute(x, 0.05)
    found = cosine_pairs(x, 0.05, method=method, block=block, threads=threads)
    assert found.as_set() == expected.as_set()
    assert np.array_equal(found.distance, expected.distance)


def test_hnsw_recall_on_planted_copies_and_determinism() -> None:
    x = _planted(5000, 128, 0.05, seed=10, share=0.1)
    first = cosine_pairs(x, 0.05, method="hnsw")
    again = cosine_pairs(x, 0.05, method="hnsw")
    expected = _brute(x, 0.05)
    assert len(expected) > 300
    found = first.as_set()
    assert len(found & expected.as_set()) / len(expected) >= 0.99
    assert found <= expected.as_set()  # nothing spurious
    assert vectors.recall(x, first, 0.05, sample=5000) >= 0.99
    for a, b in ((first.i, again.i), (first.j, again.j), (first.distance, again.distance)):
        assert np.array_equal(a, b)  # two builds of the graph give the same pairs


def test_auto_searches_small_inputs_exactly() -> None:
    x = _planted(500, 16, 0.05, seed=11)
    found = cosine_pairs(x, 0.05)
    assert found.method == "exact"
    assert found.as_set() == _brute(x, 0.05).as_set()
    # identical rows are searched once: five rows of two directions
    many = np.repeat(np.array([[1.0, 0.0], [0.0, 1.0]]), [3, 2], axis=0)
    assert cosine_pairs(many, 0.5).as_set() == {(0, 1), (0, 2), (1, 2), (3, 4)}


def test_identical_rows_are_grouped_by_hash_as_by_sorting() -> None:
    rng = np.random.default_rng(14)
    x = rng.standard_normal((300, 6))
    x[rng.integers(0, 300, 100)] = x[rng.integers(0, 300, 100)]  # some rows repeated
    x[:3] = [1.0, 0, 0, 0, 0, 0]  # 0.0 and -0.0 are different bits, the same direction
    x[3] = [1.0, -0.0, 0, 0, 0, 0]
    unit = normalise(x)
    first, inverse = vectors._distinct(unit)
    by_sorting = vectors._distinct_by_sorting(unit)
    assert np.array_equal(first, by_sorting[0]) and np.array_equal(inverse, by_sorting[1])
    assert np.array_equal(unit[first[inverse]], unit)  # each row is its group's first row
    assert np.array_equal(first, np.sort(first)) and first[0] == 0  # in order of appearance
    assert 200 <= first.size < 300 and inverse[1] == inverse[2] == 0


def test_recall_is_one_for_exact_and_drops_when_pairs_are_removed() -> None:
    x = _planted(1000, 32, 0.05, seed=12)
    exact = cosine_pairs(x, 0.05, method="exact")
    assert vectors.recall(x, exact, 0.05, sample=1000) == 1.0
    assert vectors.recall(x, exact, 0.05) == 1.0  # the default sample covers every row here
    keep = np.arange(len(exact)) % 4 != 0  # a quarter of the pairs removed
    fewer = VectorPairs(exact.i[keep], exact.j[keep], exact.distance[keep], "exact")
    assert vectors.recall(x, fewer, 0.05, sample=1000) == pytest.approx(keep.mean(), abs=0.02)
    assert vectors.recall(x, VectorPairs.empty(), 0.05) == 0.0
    # only the sampled rows' pairs count: a sample of 10 rows sees few of them, evenly spread
    assert 0.0 <= vectors.recall(x, fewer, 0.05, sample=10) <= 1.0


def test_recall_is_one_without_true_pairs() -> None:
    x = np.eye(6)  # all pairs at distance 1
    assert vectors.recall(x, VectorPairs.empty(), 0.5) == 1.0
    assert vectors.recall(np.ones((1, 3)), VectorPairs.empty(), 0.5) == 1.0


def test_pair_distances_match_scipy_and_are_zero_for_identical_rows() -> None:
    rng = np.random.default_rng(13)
    x = rng.standard_normal((50, 300)) * rng.uniform(1e-3, 1e3, size=(50, 1))
    unit = normalise(x)
    i, j = np.triu_indices(50, 1)
    assert np.allclose(pair_distances(unit, i, j), cdist(x, x, "cosine")[i, j], atol=1e-6)
    same = np.arange(50)
    assert np.array_equal(pair_distances(unit, same, same), np.zeros(50))


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        # huge and tiny values: scaled first, so nothing overflows or underflows
        (
            np.array([[1e300, 1e300], [1e-300, -1e-300]]),
            [[0.5**0.5, 0.5**0.5], [0.5**0.5, -(0.5**0.5)]],
        ),
        # integers
        (np.array([[3, 4], [0, -2]], dtype=np.int64), [[0.6, 0.8], [0.0, -1.0]]),
        # half precision
        (np.array([[0.0, 2.0, 0.0]], dtype=np.float16), [[0.0, 1.0, 0.0]]),
        # no rows, any width
        (np.zeros((0, 5)), np.zeros((0, 5))),
    ],
)
def test_normalise_gives_unit_float32_rows(x: np.ndarray, expected: list[list[float]]) -> None:
    unit = normalise(x)
    assert unit.dtype == np.float32 and unit.shape == x.shape
    assert np.array_equal(unit, np.asarray(expected, dtype=np.float32))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        # a NaN in row 3
        (np.array([[1.0, 0], [0, 1], [1, 1], [np.nan, 1]]), r"^vectors: row 3 holds NaN or"),
        # infinities in rows 0 and 2
        (np.array([[np.inf, 0], [0, 1], [1, -np.inf]]), r"rows 0, 2 hold NaN or infinity"),
        # an all-zero row
        (np.array([[1.0, 2.0], [0.0, 0.0]]), r"row 1 is all zeros \(a zero vector has no"),
        # both problems reported at once
        (np.array([[0.0, 0.0], [np.nan, 1.0]]), r"row 1 holds NaN.*; row 0 is all zeros"),
        # many zero rows: the first ten named, the rest counted
        (np.zeros((25, 3)), r"rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 15 more are all zeros"),
        # a 1-D array is one vector, not a matrix
        (np.array([1.0, 2.0, 3.0]), r"must be a 2-D \(n, d\) array, got shape \(3,\)"),
        # a 3-D array
        (np.zeros((2, 2, 2)), r"got shape \(2, 2, 2\)"),
        # rows of dimension 0
        (np.zeros((3, 0)), r"dimension 0"),
        # strings
        (np.array([["a", "b"]]), r"must hold real numbers, got dtype <U1"),
        # complex numbers
        (np.array([[1 + 1j, 2]]), r"must hold real numbers, got dtype complex128"),
    ],
)
def test_bad_vectors_are_refused_with_the_rows_named(x: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalise(x)
    with pytest.raises(ValueError, match=message):
        cosine_pairs(x, 0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_distance": -0.1}, r"max_distance must be a number >= 0, got -0.1"),  # negative
        ({"max_distance": float("nan")}, r"max_distance must be a number >= 0, got nan"),  # NaN
        ({"max_distance": 0.1, "method": "flat"}, r"method must be 'auto', 'exact' or 'hnsw'"),
        ({"max_distance": 0.1, "neighbours": 0}, r"neighbours and block must be >= 1"),  # none
        ({"max_distance": 0.1, "block": 0}, r"neighbours and block must be >= 1"),  # empty block
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cosine_pairs(np.eye(3), **kwargs)
