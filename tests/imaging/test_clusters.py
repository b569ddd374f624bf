"""Star clusters: every member within the threshold of its centre, whatever the order."""

from __future__ import annotations

import numpy as np
import pytest

from pixelpipe.imaging import hamming
from pixelpipe.imaging.clusters import Stars, components, star_clusters, star_clusters_on_edges

BITS = 64


def _flip(rng: np.random.Generator, code: np.uint64, bits: int) -> np.uint64:
    for bit in rng.choice(BITS, size=bits, replace=False):
        code ^= np.uint64(1) << np.uint64(bit)
    return code


def _families(seed: int, count: int = 400, threshold: int = 6) -> np.ndarray:
    """Random codes with look-alike families: copies of copies (random walks) and stars."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, np.iinfo(np.uint64).max, size=count, dtype=np.uint64, endpoint=True)
    at = 0
    while at < count - 12:
        size = int(rng.integers(2, 12))
        walk = bool(rng.integers(0, 2))
        for k in range(1, size):
            source = codes[at + k - 1] if walk else codes[at]
            codes[at + k] = _flip(rng, source, int(rng.integers(0, threshold + 1)))
        at += size + int(rng.integers(0, 20))
    return codes[:, None]


def _reference(codes: np.ndarray, threshold: int, priority: np.ndarray) -> np.ndarray:
    """The definition, one item at a time: centres in priority order take what is near."""
    pairs = hamming.brute_force_pairs(codes, threshold)
    forest = hamming.UnionFind(codes.shape[0])
    forest.union_pairs(pairs.i, pairs.j)
    component = forest.labels()
    centre = np.full(codes.shape[0], -1)
    for item in sorted(range(codes.shape[0]), key=lambda x: (priority[x], x)):
        if centre[item] >= 0:
            continue
        centre[item] = item
        for other in np.flatnonzero((component == component[item]) & (centre < 0)).tolist():
            d = int(hamming.pair_distances(codes, np.array([other]), np.array([item]))[0])
            if d <= threshold:
                centre[other] = item
    return centre


def _stars(codes: np.ndarray, threshold: int, priority: np.ndarray) -> Stars:
    pairs = hamming.search(codes, threshold).pairs()
    return star_clusters(codes, pairs.i, pairs.j, threshold, priority)


@pytest.mark.parametrize("seed", range(6))
def test_every_member_is_within_the_threshold_of_its_centre(seed: int) -> None:
    codes = _families(seed)
    priority = np.random.default_rng(seed).permutation(codes.shape[0])
    stars = _stars(codes, 6, priority)
    items = np.arange(codes.shape[0])
    true = hamming.pair_distances(codes, items, stars.centre)
    assert np.array_equal(stars.distance, true)
    assert true.max() <= 6
    centres = np.flatnonzero(stars.centre == items)
    assert np.array_equal(stars.centre[centres], centres)  # a centre is its own
    # The centre comes first in priority among its members.
    assert np.all(priority[stars.centre] <= priority)
    # Two centres of one component are more than the threshold apart ...
    for component in stars.split_components().tolist():
        mine = centres[stars.component[centres] == component]
        apart = hamming.distances_from(codes, mine)[:, mine]
        assert np.all(apart[~np.eye(mine.size, dtype=bool)] > 6)
    # ... and each item joined the first centre, in priority order, within reach.
    reach = hamming.distances_from(codes, centres) <= 6  # (centres, items)
    first = centres[np.argmin(np.where(reach, priority[centres][:, None], np.inf), axis=0)]
    assert np.array_equal(first, stars.centre)
    assert np.array_equal(stars.centre, _reference(codes, 6, priority))
    assert stars.split_components().size > 0  # the random walks did make chains


@pytest.mark.parametrize("seed", range(4))
def test_the_result_does_not_depend_on_the_order_of_items_or_pairs(seed: int) -> None:
    codes = _families(seed + 10)
    rng = np.random.default_rng(seed)
    priority = rng.permutation(codes.shape[0]) * 3  # distinct, not 0..n-1
    stars = _stars(codes, 6, priority)
    perm = rng.permutation(codes.shape[0])  # new item k is old item perm[k]
    pairs = hamming.search(codes[perm], 6).pairs()
    order = rng.permutation(len(pairs))  # pairs in any order, each in either direction
    swapped = np.arange(len(pairs)) % 2 == 0
    i = np.where(swapped, pairs.j, pairs.i)[order]
    j = np.where(swapped, pairs.i, pairs.j)[order]
    moved = star_clusters(codes[perm], i, j, 6, priority[perm])
    assert np.array_equal(perm[moved.centre], stars.centre[perm])
    assert np.array_equal(moved.distance, stars.distance[perm])


@pytest.mark.parametrize("seed", range(4))
def test_components_that_are_cliques_stay_whole_as_union_find_makes_them(seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, np.iinfo(np.uint64).max, size=500, dtype=np.uint64, endpoint=True)
    for base in range(0, 480, 12):  # copies within 3 bits of a base: pairwise within 6
        for k in range(1, int(rng.integers(1, 10))):
            codes[base + k] = _flip(rng, codes[base], int(rng.integers(0, 4)))
    codes = codes[:, None]
    result = hamming.search(codes, 6)
    assert len(result.unique_pairs) > 40
    priority = rng.permutation(500)
    pairs = result.pairs()
    stars = star_clusters(codes, pairs.i, pairs.j, 6, priority)
    union = result.clusters()
    assert stars.split_components().size == 0
    assert np.array_equal(stars.component, union)
    for label in np.unique(union).tolist():
        members = np.flatnonzero(union == label)
        best = members[np.argmin(priority[members])]
        assert np.all(stars.centre[members] == best)


def test_a_chain_is_cut_where_its_ends_are_too_far_apart() -> None:
    a, b, c = 0, 0b111, 0b111111  # a ~ b (3 bits), b ~ c (3 bits), a and c 6 apart
    codes = np.array([[a], [b], [c]], dtype=np.uint64)
    pairs = hamming.search(codes, 3).pairs()
    assert pairs.as_set() == {(0, 1), (1, 2)}
    ends_first = star_clusters(codes, pairs.i, pairs.j, 3, np.array([0, 1, 2]))
    assert ends_first.centre.tolist() == [0, 0, 2]  # c is not removed as a copy of a
    assert ends_first.distance.tolist() == [0, 3, 0]
    assert ends_first.split_components().tolist() == [0]
    assert ends_first.sizes().tolist() == [2, 2, 1]
    middle_first = star_clusters(codes, pairs.i, pairs.j, 3, np.array([1, 0, 2]))
    assert middle_first.centre.tolist() == [1, 1, 1]  # b reaches both: one cluster
    assert middle_first.split_components().size == 0


def test_with_orientations_the_distance_is_the_invariant_one() -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, np.iinfo(np.uint64).max, size=(3, 8, 1), dtype=np.uint64)
    codes[1, 0, 0] = codes[0, 3, 0] ^ np.uint64(0b11)  # item 0 turned, 2 bits changed
    codes[2, 0, 0] = _flip(rng, codes[1, 0, 0], 30)  # far from both in every orientation
    assert hamming.distance(codes[0, 0], codes[1, 0]) > 4  # plain codes are far apart
    pairs = hamming.search(codes, 4).pairs()
    stars = star_clusters(codes, pairs.i, pairs.j, 4, np.array([0, 1, 2]))
    assert stars.centre.tolist() == [0, 0, 2]
    assert stars.distance.tolist() == [0, 2, 0]


def test_a_long_chain_is_cut_in_rounds_without_comparing_every_pair_in_python() -> None:
    rng = np.random.default_rng(11)
    codes = np.empty(3000, dtype=np.uint64)
    codes[0] = 0
    for k in range(1, codes.size):  # each a copy of the last, 2 bits changed
        codes[k] = _flip(rng, codes[k - 1], 2)
    codes = codes[:, None]
    pairs = hamming.search(codes, 4).pairs()
    stars = star_clusters(codes, pairs.i, pairs.j, 4, np.arange(codes.size))
    assert np.unique(stars.component).size == 1  # one component: a single chain
    assert hamming.pair_distances(codes, np.arange(codes.size), stars.centre).max() <= 4
    clusters = np.unique(stars.centre).size
    assert 300 < clusters < 3000  # many stars, each more than one image wide


def test_no_items_and_no_pairs() -> None:
    empty = np.zeros((0, 1), dtype=np.uint64)
    stars = star_clusters(empty, np.zeros(0), np.zeros(0), 6, np.zeros(0))
    assert stars.centre.size == 0 and stars.split_components().size == 0
    alone = star_clusters(np.zeros((3, 1), np.uint64), np.zeros(0), np.zeros(0), 6, np.zeros(3))
    assert alone.centre.tolist() == [0, 1, 2]  # identical codes but no pairs given: apart


@pytest.mark.parametrize("seed", range(5))
def test_components_are_union_finds_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = 2000
    i = rng.integers(0, count, size=1500)
    j = rng.integers(0, count, size=1500)
    chain = rng.permutation(count)[:400]  # a long path, in a random order of items
    i = np.concatenate([i, chain[:-1]])
    j = np.concatenate([j, chain[1:]])
    forest = hamming.UnionFind(count)
    forest.union_pairs(i, j)
    assert np.array_equal(components(count, i, j), forest.labels())
    assert components(0, np.zeros(0), np.zeros(0)).size == 0


def test_stars_on_edges_join_only_items_linked_to_their_centre() -> None:
    # 0-1, 1-2 and 0-3 are edges; 2 is not linked to 0, so it starts a cluster of its own
    # (with 1 already taken by 0) instead of joining 0 through 1.
    i, j = np.array([0, 1, 0]), np.array([1, 2, 3])
    weight = np.array([5, 7, 9])
    stars = star_clusters_on_edges(5, i, j, weight, np.arange(5))
    assert stars.centre.tolist() == [0, 0, 2, 0, 4]
    assert stars.distance.tolist() == [0, 5, 0, 9, 0]
    assert stars.component.tolist() == [0, 0, 0, 0, 4]
    # Priorities decide the centres: with 1 first, it takes 0 and 2; 3 is left alone.
    again = star_clusters_on_edges(5, j, i, weight, np.array([1, 0, 2, 3, 4]))
    assert again.centre.tolist() == [1, 1, 1, 3, 4]
