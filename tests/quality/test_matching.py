"""One-to-one box matching: hand-checked cases, brute force on small random sets, and the
batched matching of many images against matching each image on its own."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from pixelpipe.quality.batch import match_many, take_ranges
from pixelpipe.quality.boxes import iou_matrix
from pixelpipe.quality.inputs import QualityInputError
from pixelpipe.quality.matching import match_boxes, match_similarity

# Four unit-height boxes on a line. Greedy max-IoU gives a1 its best box b1 (IoU 9/11) and
# leaves a2 with nothing (its only candidate is b1); the optimum pairs a1-b2 (8/12) and
# a2-b1 (7/13).
A = [[0, 0, 10, 10], [4, 0, 10, 10]]
B = [[1, 0, 10, 10], [-2, 0, 10, 10]]


def greedy(a: npt.ArrayLike, b: npt.ArrayLike, threshold: float) -> list[tuple[int, int]]:
    iou = iou_matrix(a, b)
    used: set[int] = set()
    pairs = []
    for i in range(iou.shape[0]):
        candidates = [j for j in range(iou.shape[1]) if j not in used and iou[i, j] >= threshold]
        if candidates:
            j = max(candidates, key=lambda j: iou[i, j])
            used.add(j)
            pairs.append((i, j))
    return pairs


def test_hungarian_beats_greedy() -> None:
    assert greedy(A, B, 0.5) == [(0, 0)]
    found = match_boxes(A, ["car", "car"], B, ["car", "car"])
    assert found.pairs.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(found.ious, [8 / 12, 7 / 13])
    assert found.same_label.tolist() == [True, True]
    assert found.unmatched_a.size == 0 and found.unmatched_b.size == 0
    assert found.matched == 2 and found.label_mismatch == 0


def test_label_mismatches_come_from_the_second_pass() -> None:
    # a0 (car) overlaps b0 (truck) best and b1 (car) a little less: the same-label pass takes
    # a0-b1 first; a1 (truck) then pairs with b0 (truck). Without the label pass, IoU alone
    # would pair a0-b0 and leave a car/truck mismatch.
    a = [[0, 0, 10, 10], [3, 0, 10, 10]]
    b = [[0.5, 0, 10, 10], [1.5, 0, 10, 10]]
    found = match_boxes(a, ["car", "truck"], b, ["truck", "car"])
    assert found.pairs.tolist() == [[0, 1], [1, 0]]
    assert found.same_label.tolist() == [True, True]
    # a lone pair with different labels is matched in the second pass, as a mismatch
    found = match_boxes([[0, 0, 10, 10]], ["car"], [[1, 0, 10, 10]], ["truck"])
    assert found.pairs.tolist() == [[0, 0]]
    assert found.same_label.tolist() == [False]
    assert found.matched == 0 and found.label_mismatch == 1


def test_same_label_pass_wins_over_a_higher_iou_across_labels() -> None:
    # b0 is nearly a0 but of another class; b1 is of a0's class at IoU 0.6: same label first
    a = [[0, 0, 10, 10]]
    b = [[0, 0, 10, 10.2], [2.5, 0, 10, 10]]
    found = match_boxes(a, ["cat"], b, ["dog", "cat"])
    assert found.pairs.tolist() == [[0, 1]]
    assert found.unmatched_b.tolist() == [0]


@pytest.mark.parametrize(
    ("a", "b", "threshold", "pairs"),
    [
        # IoU exactly at the threshold matches: 50 / 100 overlap of two 10x10, union 150 -> 1/3
        ([[0, 0, 10, 10]], [[5, 0, 10, 10]], 1 / 3, [[0, 0]]),
        # just above it does not
        ([[0, 0, 10, 10]], [[5, 0, 10, 10]], 1 / 3 + 1e-9, []),
        # threshold 0 still needs some overlap: touching boxes never match
        ([[0, 0, 10, 10]], [[10, 0, 10, 10]], 0.0, []),
        # a zero-width box inside another never matches, even at threshold 0
        ([[2, 2, 0, 5]], [[0, 0, 10, 10]], 0.0, []),
        # two identical zero-area boxes do not match either
        ([[3, 3, 0, 0]], [[3, 3, 0, 0]], 0.0, []),
        # a negative width counts as no area
        ([[5, 5, -2, 3]], [[3, 5, 2, 3]], 0.0, []),
    ],
)
def test_threshold_and_zero_area(
    a: list[list[float]], b: list[list[float]], threshold: float, pairs: list[list[int]]
) -> None:
    found = match_boxes(a, ["x"] * len(a), b, ["x"] * len(b), iou_threshold=threshold)
    assert found.pairs.tolist() == pairs


def test_a_forbidden_pair_is_never_returned() -> None:
    # The assignment has to pair every row of a 2x2 cost matrix; the second pair is under
    # the threshold and must be dropped, not reported.
    a = [[0, 0, 10, 10], [100, 100, 10, 10]]
    b = [[1, 0, 10, 10], [104, 100, 10, 10]]
    found = match_boxes(a, ["x", "x"], b, ["x", "x"], iou_threshold=0.5)
    assert found.pairs.tolist() == [[0, 0]]
    assert found.unmatched_a.tolist() == [1]
    assert found.unmatched_b.tolist() == [1]
    assert (found.ious >= 0.5).all()
    # Both rows compete for b0 (IoU 9/11 each) and b1 overlaps a1 under the threshold
    # (5/15): the assignment fills the other row with a forbidden pair, which is dropped.
    a = [[0, 0, 10, 10], [2, 0, 10, 10]]
    b = [[1, 0, 10, 10], [7, 0, 10, 10]]
    found = match_boxes(a, ["x", "x"], b, ["x", "x"], iou_threshold=0.5)
    assert found.pairs.shape == (1, 2)
    assert found.pairs[0, 1] == 0
    assert found.ious.tolist() == pytest.approx([9 / 11])
    assert found.unmatched_b.tolist() == [1]


@pytest.mark.parametrize(
    ("a", "b", "unmatched_a", "unmatched_b"),
    [
        # both empty
        ([], [], [], []),
        # nothing on the right: every left box is unmatched
        ([[0, 0, 1, 1], [5, 5, 1, 1]], [], [0, 1], []),
        # nothing on the left
        ([], [[0, 0, 1, 1]], [], [0]),
    ],
)
def test_empty_inputs(
    a: list[list[float]], b: list[list[float]], unmatched_a: list[int], unmatched_b: list[int]
) -> None:
    found = match_boxes(a, ["x"] * len(a), b, ["x"] * len(b))
    assert found.pairs.shape == (0, 2)
    assert found.unmatched_a.tolist() == unmatched_a
    assert found.unmatched_b.tolist() == unmatched_b


def best_total(iou: np.ndarray, allowed: np.ndarray) -> float:
    """The largest summed IoU of any one-to-one matching of allowed pairs (brute force)."""
    n, m = iou.shape
    best = 0.0
    for k in range(min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                if all(allowed[r, c] for r, c in zip(rows, cols, strict=True)):
                    best = max(best, sum(iou[r, c] for r, c in zip(rows, cols, strict=True)))
    return best


def test_random_matchings_are_optimal_one_to_one_and_deterministic() -> None:
    rng = np.random.default_rng(3)
    for _ in range(150):
        n, m = rng.integers(0, 5, size=2)
        a = np.column_stack([rng.uniform(0, 30, (n, 2)), rng.uniform(5, 20, (n, 2))])
        b = np.column_stack([rng.uniform(0, 30, (m, 2)), rng.uniform(5, 20, (m, 2))])
        labels_a = rng.choice(["p", "q"], n).tolist()
        labels_b = rng.choice(["p", "q"], m).tolist()
        found = match_boxes(a, labels_a, b, labels_b, iou_threshold=0.3)
        again = match_boxes(a, labels_a, b, labels_b, iou_threshold=0.3)
        assert found.pairs.tolist() == again.pairs.tolist()
        iou = iou_matrix(a, b)
        rows, cols = found.pairs[:, 0], found.pairs[:, 1]
        assert len(set(rows.tolist())) == rows.size and len(set(cols.tolist())) == cols.size
        assert (iou[rows, cols] >= 0.3).all()
        assert sorted([*rows.tolist(), *found.unmatched_a.tolist()]) == list(range(n))
        assert sorted([*cols.tolist(), *found.unmatched_b.tolist()]) == list(range(m))
        same = np.array(labels_a)[:, None] == np.array(labels_b)[None, :]
        first = found.same_label
        # the same-label pairs are an optimal matching among same-label pairs
        assert iou[rows[first], cols[first]].sum() == pytest.approx(
            best_total(iou, (iou >= 0.3) & same.reshape(n, m))
        )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        # boxes of the wrong shape
        (lambda: match_boxes([[0, 0, 1]], ["x"], [], []), r"boxes_a: boxes must be an \(n, 4\)"),
        # more labels than boxes
        (lambda: match_boxes([[0, 0, 1, 1]], ["x", "y"], [], []), "boxes_a: 1 box but 2 labels"),
        # a NaN coordinate
        (lambda: match_boxes([], [], [[0, np.nan, 1, 1]], ["x"]), "not a finite number"),
        # a label that is not a string
        (lambda: match_boxes([[0, 0, 1, 1]], [3], [], []), "labels must be strings"),  # type: ignore[list-item]
        # a threshold out of range
        (
            lambda: match_boxes([], [], [], [], iou_threshold=1.5),
            r"iou_threshold must be .* \[0, 1\]",
        ),
    ],
)
def test_bad_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(QualityInputError, match=message):
        call()  # type: ignore[operator]


def test_match_similarity_takes_any_matrix() -> None:
    similarity = np.array([[0.9, 0.8], [0.85, 0.0]])
    same = np.ones((2, 2), dtype=bool)
    found = match_similarity(similarity, same, 0.5)
    assert found.pairs.tolist() == [[0, 1], [1, 0]]
    found = match_similarity(similarity, same, 0.5, usable_a=[True, False])
    assert found.pairs.tolist() == [[0, 0]]


def random_images(
    rng: np.random.Generator, images: int, crowd: int
) -> list[tuple[np.ndarray, list[str], np.ndarray, list[str]]]:
    out = []
    for _ in range(images):
        n, m = rng.integers(0, crowd, size=2)
        a = np.column_stack([rng.uniform(0, 60, (n, 2)), rng.uniform(0, 25, (n, 2))])
        b = np.column_stack([rng.uniform(0, 60, (m, 2)), rng.uniform(0, 25, (m, 2))])
        a[rng.random(n) < 0.05, 2] = 0.0  # some zero-area boxes
        if n and m and rng.random() < 0.5:  # near copies, so there are many matches
            k = min(n, m)
            b[:k] = a[:k] + rng.uniform(-2, 2, (k, 4))
        out.append(
            (a, rng.choice(["p", "q", "r"], n).tolist(), b, rng.choice(["p", "q", "r"], m).tolist())
        )
    return out


@pytest.mark.parametrize(
    ("crowd", "threshold"),
    [
        # small images, all matched in one array operation but for the crowded ones
        (6, 0.5),
        # a low threshold: many boxes with two candidates, so many Hungarian fall-backs
        (6, 0.1),
        # large images (more than 256 candidate pairs), matched one by one
        (40, 0.5),
    ],
)
def test_match_many_equals_matching_each_image(crowd: int, threshold: float) -> None:
    rng = np.random.default_rng(crowd)
    data = random_images(rng, 300, crowd)
    boxes_a = np.concatenate([d[0] for d in data])
    boxes_b = np.concatenate([d[2] for d in data])
    labels_a = np.array([label for d in data for label in d[1]])
    labels_b = np.array([label for d in data for label in d[3]])
    off_a = np.concatenate([[0], np.cumsum([len(d[1]) for d in data])]).astype(np.int64)
    off_b = np.concatenate([[0], np.cumsum([len(d[3]) for d in data])]).astype(np.int64)
    many = match_many(boxes_a, labels_a, off_a, boxes_b, labels_b, off_b, threshold)
    expected_pairs, expected_same, expected_image, expected_iou = [], [], [], []
    for index, (a, la, b, lb) in enumerate(data):
        found = match_boxes(a, la, b, lb, iou_threshold=threshold)
        expected_pairs += np.add(found.pairs, [off_a[index], off_b[index]]).tolist()
        expected_same += found.same_label.tolist()
        expected_image += [index] * found.pairs.shape[0]
        expected_iou += found.ious.tolist()
    assert len(expected_pairs) > 100
    assert many.pairs.tolist() == expected_pairs
    assert many.same_label.tolist() == expected_same
    assert many.image.tolist() == expected_image
    assert many.ious.tolist() == expected_iou  # the same arithmetic, so equal to the bit


def test_take_ranges_picks_the_boxes_of_some_images() -> None:
    offsets = np.array([0, 2, 2, 5, 6], dtype=np.int64)  # images of 2, 0, 3 and 1 boxes
    indices, new_offsets = take_ranges(offsets, np.array([0, 2], dtype=np.int64))
    assert indices.tolist() == [0, 1, 2, 3, 4]
    assert new_offsets.tolist() == [0, 2, 5]
    indices, new_offsets = take_ranges(offsets, np.array([1, 3], dtype=np.int64))
    assert indices.tolist() == [5]
    assert new_offsets.tolist() == [0, 0, 1]
