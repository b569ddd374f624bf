"""Uncertainty measures: hand-checked values, Lightly's expansion, the max over boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from pixelpipe.quality.inputs import QualityInputError
from pixelpipe.quality.uncertainty import (
    MEASURES,
    box_uncertainty,
    classes_of,
    entropy,
    expand,
    least_confidence,
    margin,
    per_image_max,
    uncertainty,
)


@pytest.mark.parametrize(
    ("score", "classes", "expected"),
    [
        # K = 3: the other two classes share 1 - 0.7 equally
        (0.7, 3, [0.7, 0.15, 0.15]),
        # K = 5: 0.4 over four other classes
        (0.6, 5, [0.6, 0.1, 0.1, 0.1, 0.1]),
        # a sure prediction: the others get nothing
        (1.0, 4, [1.0, 0.0, 0.0, 0.0]),
        # one class in the map: read as binary (this class or not), as Lightly does
        (0.8, 1, [0.8, 0.2]),
        # below 1/K a top probability is impossible: it counts as 1/K, the uniform vector
        (0.1, 4, [0.25, 0.25, 0.25, 0.25]),
    ],
)
def test_lightly_expansion_of_a_top_probability(
    score: float, classes: int, expected: list[float]
) -> None:
    probs = expand([score], classes)
    np.testing.assert_allclose(probs[0], expected, atol=1e-12)
    assert probs.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("probs", "least", "gap", "bits"),
    [
        # 0.7 expanded over K = 3: 1 - 0.7; 0.7 - 0.15; 0.7 log2(1/0.7) + 0.3 log2(1/0.15)
        ([0.7, 0.15, 0.15], 0.3, 0.55, 1.1812908992306925),
        # binary 0.9 / 0.1: H(0.9) = 0.469 bits
        ([0.9, 0.1], 0.1, 0.8, 0.4689955935892812),
        # 0.6 expanded over K = 5: 0.6 log2(1/0.6) + 0.4 log2(10)
        ([0.6, 0.1, 0.1, 0.1, 0.1], 0.4, 0.5, 1.7709505944546688),
        # a full distribution, not an expansion: the two largest are 0.5 and 0.3
        ([0.2, 0.5, 0.3], 0.5, 0.2, 1.4854752972273344),
        # uniform over 4: the most uncertain, log2 4 = 2 bits
        ([0.25, 0.25, 0.25, 0.25], 0.75, 0.0, 2.0),
        # one-hot: no uncertainty, 0 log 0 taken as 0
        ([0.0, 1.0, 0.0], 0.0, 1.0, 0.0),
    ],
)
def test_raw_measures_by_hand(probs: list[float], least: float, gap: float, bits: float) -> None:
    assert least_confidence([probs])[0] == pytest.approx(least)
    assert margin([probs])[0] == pytest.approx(gap)
    assert entropy([probs])[0] == pytest.approx(bits)
    assert entropy([probs])[0] == pytest.approx(scipy_entropy(probs, base=2))


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        # 0.3 / (2/3); 1 - 0.55; 1.18129 / log2 3
        ([0.7, 0.15, 0.15], {"least_confidence": 0.45, "margin": 0.45, "entropy": 0.74531158}),
        # binary 0.9: 0.1 / 0.5; 1 - 0.8; H(0.9) / 1
        ([0.9, 0.1], {"least_confidence": 0.2, "margin": 0.2, "entropy": 0.46899559}),
        # a full distribution: the three measures disagree (0.5 / (2/3); 1 - 0.2; 1.48548 / log2 3)
        ([0.2, 0.5, 0.3], {"least_confidence": 0.75, "margin": 0.8, "entropy": 0.93723056}),
        # uniform: 1 on every scale
        ([1 / 3, 1 / 3, 1 / 3], {"least_confidence": 1.0, "margin": 1.0, "entropy": 1.0}),
        # one-hot: 0 on every scale
        ([0.0, 0.0, 1.0], {"least_confidence": 0.0, "margin": 0.0, "entropy": 0.0}),
    ],
)
def test_normalized_to_lightlys_zero_to_one_scale(
    probs: list[float], expected: dict[str, float]
) -> None:
    for measure in MEASURES:
        assert uncertainty([probs], measure)[0] == pytest.approx(expected[measure], abs=1e-8)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("classes", [1, 2, 3, 7, 80])
def test_closed_form_equals_the_measure_of_the_expansion(measure: str, classes: int) -> None:
    scores = np.concatenate([np.linspace(0.0, 1.0, 101), [1e-9, 1 - 1e-9]])
    direct = box_uncertainty(scores, classes, measure)
    np.testing.assert_allclose(direct, uncertainty(expand(scores, classes), measure), atol=1e-12)
    assert direct.min() >= 0.0 and direct.max() <= 1.0


@pytest.mark.parametrize(
    ("score", "classes", "expected"),
    [
        # K (1 - p) / (K - 1) = 3 * 0.3 / 2
        (0.7, 3, {"least_confidence": 0.45, "margin": 0.45, "entropy": 0.74531158}),
        # 5 * 0.4 / 4; entropy 1.77095 / log2 5
        (0.6, 5, {"least_confidence": 0.5, "margin": 0.5, "entropy": 0.76270691}),
        # a sure box
        (1.0, 10, {"least_confidence": 0.0, "margin": 0.0, "entropy": 0.0}),
        # exactly 1/K: uniform
        (0.25, 4, {"least_confidence": 1.0, "margin": 1.0, "entropy": 1.0}),
        # a score of 0 (below 1/K) is the most uncertain, not off the scale
        (0.0, 4, {"least_confidence": 1.0, "margin": 1.0, "entropy": 1.0}),
    ],
)
def test_box_uncertainty_by_hand(score: float, classes: int, expected: dict[str, float]) -> None:
    for measure in MEASURES:
        got = box_uncertainty([score], classes, measure)[0]
        assert got == pytest.approx(expected[measure], abs=1e-8), measure


@pytest.mark.parametrize("measure", MEASURES)
def test_every_measure_orders_expanded_boxes_by_score(measure: str) -> None:
    scores = np.array([0.95, 0.4, 0.75, 0.55, 0.99])
    values = box_uncertainty(scores, 6, measure)
    assert np.argsort(-values).tolist() == np.argsort(scores).tolist()


def test_per_image_max_takes_the_most_uncertain_box() -> None:
    values = [0.1, 0.6, 0.3, 0.9, 0.2]
    image = [0, 0, 0, 2, 3]
    got = per_image_max(values, image, 5, empty=-1.0)
    # image 1 and image 4 have no box: the empty value
    np.testing.assert_array_equal(got, [0.6, -1.0, 0.9, 0.2, -1.0])
    assert np.isnan(per_image_max([], [], 2)).all()


def test_the_image_score_is_the_max_of_its_boxes_uncertainties() -> None:
    # two boxes on one image, K = 3: 0.9 gives 0.15, 0.6 gives 0.6; the image takes 0.6
    boxes = box_uncertainty([0.9, 0.6], 3, "least_confidence")
    np.testing.assert_allclose(boxes, [0.15, 0.6])
    assert per_image_max(boxes, [0, 0], 1)[0] == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        # a score above 1
        (lambda: box_uncertainty([0.5, 1.5], 3, "entropy"), r"score 1\.5 at position 1"),
        # NaN is not a score
        (lambda: expand([math.nan], 3), r"score nan at position 0"),
        # a measure that does not exist
        (lambda: box_uncertainty([0.5], 3, "variance"), r"unknown measure 'variance'"),
        # a row that is not a distribution
        (lambda: uncertainty([[0.5, 0.2]], "margin"), r"row 0 sums to 0\.7"),
        # a single column
        (lambda: least_confidence([[1.0]]), r"K >= 2"),
        # fewer indices than values
        (lambda: per_image_max([0.1, 0.2], [0], 1), r"2 values but 1 image indices"),
        # an index past the last image
        (lambda: per_image_max([0.1], [3], 2), r"image indices must be in \[0, 2\)"),
        # a negative class count
        (lambda: classes_of(-1), r"must not be negative"),
    ],
)
def test_bad_input_raises_a_quality_input_error(call: object, message: str) -> None:
    with pytest.raises(QualityInputError, match=message):
        call()  # type: ignore[operator]
