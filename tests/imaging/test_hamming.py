"""Hamming search: the index finds exactly what brute force finds, once, on any workers."""

from __future__ import annotations

import numpy as np
import pytest

from pixelpipe.engine.executor import ProcessExecutor
from pixelpipe.imaging import hamming


def _planted(
    rng: np.random.Generator, count: int, words: int, threshold: int, orientations: int = 1
) -> np.ndarray:
    """Random codes where a fifth are copies of others with 0..threshold+3 bits flipped."""
    shape = (count, orientations, words)
    codes = rng.integers(0, np.iinfo(np.uint64).max, size=shape, dtype=np.uint64, endpoint=True)
    for _ in range(count // 5):
        source, target = rng.integers(0, count, size=2)
        k = rng.integers(0, orientations)
        copy = codes[source, k].copy()
        for bit in rng.choice(64 * words, size=rng.integers(0, threshold + 4), replace=False):
            copy[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
        codes[target, 0] = copy
    return codes if orientations > 1 else codes[:, 0]


@pytest.mark.parametrize(
    ("count", "words", "threshold"),
    [(3000, 1, 8), (3000, 1, 0), (2000, 1, 3), (2000, 1, 12), (1200, 4, 20), (300, 4, 40)],
)
def test_index_recall_and_distances_equal_brute_force(
    count: int, words: int, threshold: int
) -> None:
    codes = _planted(np.random.default_rng(count + threshold), count, words, threshold)
    expected = hamming.brute_force_pairs(codes, threshold)
    result = hamming.search(codes, threshold, method="index")
    found = result.pairs()
    assert result.plan.method == "index"
    assert len(expected) > count // 40  # the planted copies are there to be found
    assert found.as_set() == expected.as_set()  # recall 1.0 and nothing spurious
    assert np.array_equal(found.i, expected.i) and np.array_equal(found.j, expected.j)
    assert np.array_equal(found.distance, expected.distance)


def test_with_orientations_an_item_matches_through_any_turn() -> None:
    rng = np.random.default_rng(7)
    codes = _planted(rng, 1500, 1, 8, orientations=8)
    expected = hamming.brute_force_pairs(codes, 8)
    found = hamming.search(codes, 8, method="index").pairs()
    assert len(expected) > 100
    assert found.as_set() == expected.as_set()
    assert np.array_equal(found.distance, expected.distance)
    # The distance is the best over turns and directions.
    i, j = int(found.i[0]), int(found.j[0])
    best = (
        min(int(hamming.distance(codes[i, k], codes[j, 0])) for k in range(8)),
        min(int(hamming.distance(codes[j, k], codes[i, 0])) for k in range(8)),
    )
    assert found.distance[0] == min(best)


def test_each_pair_is_reported_by_exactly_one_table() -> None:
    codes = _planted(np.random.default_rng(3), 2000, 1, 8)
    plan = hamming.make_plan(64, 8, 2000, method="index")
    entries = hamming._Entries(
        codes=codes, item=np.arange(2000), plain=np.ones(2000, bool), plan=plan, oriented=False
    )
    per_table = hamming._tables_chunk(entries, plan.combinations())
    keys = np.concatenate([p.i * 2000 + p.j for p in per_table])
    assert keys.size == np.unique(keys).size == len(hamming.brute_force_pairs(codes, 8))


def test_identical_codes_collapse_and_expand() -> None:
    codes = np.array([[5], [5], [5], [7], [2**40], [5]], dtype=np.uint64)
    result = hamming.search(codes, 1, method="index")
    assert len(result.unique_pairs) == 1  # 5 ~ 7 (1 bit) among 3 distinct codes
    pairs = result.pairs()
    assert pairs.as_set() == {(a, b) for a in (0, 1, 2, 3, 5) for b in (0, 1, 2, 3, 5) if a < b}
    assert result.clusters().tolist() == [0, 0, 0, 0, 4, 0]
    assert pairs.as_set() == hamming.brute_force_pairs(codes, 1).as_set()


def test_two_workers_give_identical_results() -> None:
    codes = _planted(np.random.default_rng(11), 20_000, 1, 8)
    serial = hamming.search(codes, 8, method="index")
    pool = ProcessExecutor(2)
    try:
        pooled = hamming.search(
            codes, 8, map_chunks=pool.map_chunks, workers=pool.workers, method="index"
        )
    finally:
        pool.close()
    for name in ("i", "j", "distance"):
        assert np.array_equal(
            getattr(serial.unique_pairs, name), getattr(pooled.unique_pairs, name)
        )
    assert np.array_equal(serial.clusters(), pooled.clusters())


def test_union_find_joins_chains_and_labels_by_smallest_member() -> None:
    forest = hamming.UnionFind(7)
    forest.union_pairs(np.array([5, 3, 1]), np.array([3, 1, 6]))
    forest.union(4, 2)
    assert forest.labels().tolist() == [0, 1, 2, 1, 2, 1, 1]
    assert forest.find(5) == 1


def test_plan_uses_an_index_at_scale_and_brute_force_when_small() -> None:
    big = hamming.make_plan(64, 8, 1_000_000)
    assert big.method == "index"
    assert len(big.blocks) > 8 and big.per_table == len(big.blocks) - 8
    assert sum(b.width for b in big.blocks) == 64
    assert hamming.make_plan(64, 8, 50).method == "brute"
    wide = hamming.make_plan(256, 30, 100_000)
    assert sum(b.width for b in wide.blocks) == 256
    with pytest.raises(ValueError, match="threshold must be from 0 to 63"):
        hamming.make_plan(64, 64, 10)


def test_nearest_matches_a_full_distance_matrix() -> None:
    codes = _planted(np.random.default_rng(5), 400, 1, 8)
    dist, other = hamming.nearest(codes, np.arange(400))
    full = hamming.distances_from(codes, np.arange(400))
    np.fill_diagonal(full, 10**6)
    assert np.array_equal(dist, full.min(axis=1))
    assert np.array_equal(other, full.argmin(axis=1))
    assert hamming.nearest(codes[:1], [0])[0].tolist() == [-1]


def test_codes_must_be_uint64_words() -> None:
    with pytest.raises(TypeError, match="codes must be uint64 words, got int64"):
        hamming.search(np.zeros((3, 1), dtype=np.int64), 2)
    assert len(hamming.search(np.zeros((0, 1), dtype=np.uint64), 2).pairs()) == 0
