"""Box IoU, checked by hand on small cases and against pycocotools on random boxes."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pixelpipe.quality.boxes import iou_matrix


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # the same box
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        # half overlap along x: 50 / 150
        ([0, 0, 10, 10], [5, 0, 10, 10], 1 / 3),
        # touching edges share no area
        ([0, 0, 10, 10], [10, 0, 10, 10], 0.0),
        # one inside the other: 25 / 100
        ([0, 0, 10, 10], [2, 2, 5, 5], 0.25),
        # disjoint
        ([0, 0, 1, 1], [5, 5, 1, 1], 0.0),
        # two empty boxes: empty union, 0 by definition
        ([3, 3, 0, 0], [3, 3, 0, 0], 0.0),
        # fractional pixels: 0.25 / (1 + 1 - 0.25)
        ([0.5, 0.5, 1, 1], [1.0, 1.0, 1, 1], 0.25 / 1.75),
    ],
)
def test_iou_of_two_boxes(a: list[float], b: list[float], expected: float) -> None:
    assert iou_matrix([a], [b])[0, 0] == pytest.approx(expected)


def test_matches_pycocotools_on_random_boxes() -> None:
    rng = np.random.default_rng(7)
    a = np.column_stack([rng.uniform(0, 100, (40, 2)), rng.uniform(0.5, 60, (40, 2))])
    b = np.column_stack([rng.uniform(0, 100, (30, 2)), rng.uniform(0.5, 60, (30, 2))])
    reference = mask_utils.iou(a.tolist(), b.tolist(), [0] * len(b))
    np.testing.assert_allclose(iou_matrix(a, b), reference, rtol=1e-12, atol=1e-12)


def test_one_set_gives_its_symmetric_pairwise_matrix() -> None:
    boxes = np.array([[0, 0, 4, 4], [2, 2, 4, 4], [10, 10, 1, 1]], dtype=float)
    matrix = iou_matrix(boxes)
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert matrix[0, 1] == pytest.approx(4 / 28)
