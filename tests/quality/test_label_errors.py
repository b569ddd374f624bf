"""Likely label errors with cleanlab: planted errors found exactly, and agreement with cleanlab's
own ``find_label_issues`` and ``get_label_quality_scores`` on random data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cleanlab.internal import constants
from cleanlab.object_detection import filter as cleanlab_filter
from cleanlab.object_detection import rank

from pixelpipe.quality import label_errors
from pixelpipe.quality.inputs import QualityInputError
from pixelpipe.quality.label_errors import Item, class_thresholds, find_issues, to_cleanlab

CLASSES = (1, 3, 7)  # category ids with gaps, as a class map has them


def clean_image(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Three objects side by side, classes rotating with the image."""
    boxes = np.array([[20 + j * 120, 30 + (index % 3) * 10, 80 + j * 5, 60] for j in range(3)])
    classes = np.array([CLASSES[(index + j) % 3] for j in range(3)])
    return boxes.astype(float), classes


def planted(count: int = 12) -> list[Item]:
    """A good model (boxes 2 px off, confidence 0.98) and labels with one error of each kind."""
    items = []
    for i in range(count):
        boxes, classes = clean_image(i)
        predictions = np.vstack([boxes + np.array([2, 1, -1, 2]), [[300, 200, 40, 40]]])
        predicted = np.append(classes, 3)
        scores = np.append(np.full(3, 0.98), 0.3)  # and one unsure box nobody labelled
        labels, label_classes = boxes.copy(), classes.copy()
        if i == 3:  # overlooked: the first object has no label
            labels, label_classes = labels[1:], label_classes[1:]
        if i == 5:  # badly located: the first label is 70 px to the right (IoU ~0.07)
            labels[0, 0] += 70
        if i == 7:  # swapped: the third label has the next class
            label_classes[2] = CLASSES[(CLASSES.index(label_classes[2]) + 1) % 3]
        items.append(Item(labels, label_classes, predictions, predicted, scores, f"img{i}"))
    return items


def random_items(seed: int, count: int = 40) -> list[Item]:
    """Noisy labels and predictions: misses, jitter, wrong classes, strays, tied confidences."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(count):
        n = int(rng.integers(0, 5))
        labels = np.column_stack([rng.uniform(0, 200, (n, 2)), rng.uniform(5, 80, (n, 2))]).round()
        classes = rng.integers(0, 4, n) * 2
        seen = rng.random(n) < 0.8
        predicted = labels[seen] + rng.normal(0, 4, (int(seen.sum()), 4)).round()
        predicted[:, 2:] = np.abs(predicted[:, 2:])
        predicted_classes = classes[seen].copy()
        wrong = rng.random(len(predicted_classes)) < 0.15
        predicted_classes[wrong] = rng.integers(0, 4, int(wrong.sum())) * 2
        stray = int(rng.integers(0, 3))
        extra = np.column_stack([rng.uniform(0, 200, (stray, 2)), rng.uniform(5, 80, (stray, 2))])
        predicted = np.vstack([predicted, extra.round()])
        predicted_classes = np.append(predicted_classes, rng.integers(0, 4, stray) * 2)
        scores = rng.choice([0.3, 0.6, 0.96, 0.99, 1.0], len(predicted_classes))
        if not len(scores):  # every item has a prediction, as the stage scores them
            predicted = np.array([[1, 1, 5, 5.0]])
            predicted_classes, scores = np.array([2]), np.array([0.97])
        items.append(Item(labels, classes, predicted, predicted_classes, scores))
    return items


def test_the_defaults_are_cleanlabs() -> None:
    ours = label_errors
    assert ours.ALPHA == constants.ALPHA
    assert ours.EUC_FACTOR == constants.EUC_FACTOR
    assert ours.EPSILON == constants.EPSILON
    assert ours.LOW_PROBABILITY_THRESHOLD == constants.LOW_PROBABILITY_THRESHOLD
    assert ours.HIGH_PROBABILITY_THRESHOLD == constants.HIGH_PROBABILITY_THRESHOLD
    assert ours.TEMPERATURE == constants.TEMPERATURE
    assert ours.TINY_VALUE == constants.TINY_VALUE
    assert ours.AP_SCALE_FACTOR == constants.AP_SCALE_FACTOR
    assert ours.WEIGHTS == {
        "overlooked": constants.CUSTOM_SCORE_WEIGHT_OVERLOOKED,
        "badly_located": constants.CUSTOM_SCORE_WEIGHT_BADLOC,
        "swapped": constants.CUSTOM_SCORE_WEIGHT_SWAP,
    }
    assert ours.THRESHOLD_FACTOR == {
        "overlooked": constants.OVERLOOKED_THRESHOLD_FACTOR,
        "badly_located": constants.BADLOC_THRESHOLD_FACTOR,
        "swapped": constants.SWAP_THRESHOLD_FACTOR,
    }


def test_conversion_to_cleanlabs_formats() -> None:
    item = Item(
        [[10, 20, 30, 40], [0, 0, 5, 5]],
        [7, 1],
        [[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 1, 1]],
        [7, 1, 7],
        [0.9, 0.8, 0.7],
    )
    data = to_cleanlab([item, Item([], [], [[0, 0, 1, 1]], [4], [1.0])])
    assert data.classes == [1, 4, 7]  # sorted ids -> indices 0..K-1
    first = data.labels[0]
    np.testing.assert_array_equal(first["bboxes"], [[10, 20, 40, 60], [0, 0, 5, 5]])  # xyxy
    np.testing.assert_array_equal(first["labels"], [2, 0])
    predictions = data.predictions[0]
    assert [p.shape for p in predictions] == [(1, 5), (0, 5), (2, 5)]  # K arrays, empty ones too
    np.testing.assert_array_equal(predictions[2], [[1, 2, 4, 6, 0.9], [9, 9, 10, 10, 0.7]])
    np.testing.assert_array_equal(data.order[0], [1, 0, 2])  # cleanlab position -> input position
    assert data.labels[1]["bboxes"].shape == (0, 4)
    # cleanlab takes them as they are
    assert rank.get_label_quality_scores(data.labels, data.predictions, verbose=False).shape == (2,)


@pytest.mark.parametrize(
    ("index", "reason", "label_reasons", "overlooked"),
    [
        # the object whose label is missing: the confident prediction there is overlooked
        (3, "overlooked", ((), ()), [True, False, False, False]),
        # the label 70 px off its object
        (5, "badly_located", (("badly_located",), (), ()), [False] * 4),
        # the label with the wrong class
        (7, "swapped", ((), (), ("swapped",)), [False] * 4),
    ],
)
def test_each_planted_error_is_flagged_with_its_kind(
    index: int, reason: str, label_reasons: tuple[Any, ...], overlooked: list[bool]
) -> None:
    found = find_issues(planted()).items[index]
    assert found.flagged and found.reasons == (reason,) and found.reason == reason
    assert found.label_reasons == label_reasons
    assert found.prediction_flagged.tolist() == overlooked
    assert found.score < 0.5 and getattr(found, reason) < 0.5


def test_only_the_planted_errors_are_flagged() -> None:
    findings = find_issues(planted())
    assert [i for i, f in enumerate(findings.items) if f.flagged] == [3, 5, 7]
    clean = [f for i, f in enumerate(findings.items) if i not in (3, 5, 7)]
    assert all(f.score > 0.9 and f.reason is None for f in clean)
    assert all(not any(f.label_reasons) and not f.prediction_flagged.any() for f in clean)
    # the unsure stray box (0.3) is never considered for an overlooked object
    assert all(np.isnan(f.prediction_overlooked[3]) for f in findings.items)
    assert findings.classes == list(CLASSES)
    assert findings.cuts is not None and findings.cuts.dtype == np.float32


def test_an_empty_label_set_with_a_confident_prediction_is_overlooked() -> None:
    items = planted()
    items[0] = Item(
        [], [], items[0].predictions, items[0].prediction_classes, [0.99, 0.5, 0.2, 0.3]
    )
    found = find_issues(items).items[0]
    assert found.reasons == ("overlooked",)
    assert found.prediction_flagged.tolist() == [True, False, False, False]
    assert found.label_reasons == ()


def test_per_prediction_results_follow_the_input_order() -> None:
    items = planted()
    item = items[3]
    order = [3, 2, 1, 0]  # the overlooked prediction last, classes out of order
    items[3] = Item(
        item.labels,
        item.label_classes,
        np.asarray(item.predictions)[order],
        np.asarray(item.prediction_classes)[order],
        np.asarray(item.prediction_scores)[order],
    )
    found = find_issues(items).items[3]
    assert found.prediction_flagged.tolist() == [False, False, False, True]
    assert np.isnan(found.prediction_overlooked[0]) and found.prediction_overlooked[3] < 0.1


@pytest.mark.parametrize("seed", range(6))
def test_flags_and_scores_equal_cleanlabs_own(seed: int) -> None:
    items = random_items(seed)
    findings = find_issues(items)
    data = to_cleanlab(items)
    expected = cleanlab_filter.find_label_issues(data.labels, data.predictions)
    assert [f.flagged for f in findings.items] == expected.tolist()
    assert 0 < expected.sum() < len(items)  # the comparison has both kinds of item
    scores = rank.get_label_quality_scores(data.labels, data.predictions, verbose=False)
    np.testing.assert_allclose([f.score for f in findings.items], scores, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_per_class_cuts_equal_cleanlabs_private_ap(seed: int) -> None:
    ap = getattr(cleanlab_filter, "_get_per_class_ap", None)
    if ap is None:
        pytest.skip("cleanlab no longer has _get_per_class_ap; the flags test still checks it")
    data = to_cleanlab(random_items(seed))
    expected = ap(data.labels, data.predictions)
    ours = class_thresholds(data.labels, data.predictions)
    assert [float(ours[k]) for k in range(len(ours))] == [float(expected[k]) for k in expected]


@pytest.mark.parametrize("seed", range(3))
def test_box_flags_follow_cleanlabs_box_scores(seed: int) -> None:
    items = random_items(seed)
    findings = find_issues(items)
    data = to_cleanlab(items)
    cuts = class_thresholds(data.labels, data.predictions)
    # cleanlab's box scores from its own similarity matrices (no auxiliary inputs of ours)
    badloc = rank.compute_badloc_box_scores(labels=data.labels, predictions=data.predictions)
    swap = rank.compute_swap_box_scores(labels=data.labels, predictions=data.predictions)
    over = rank.compute_overlooked_box_scores(labels=data.labels, predictions=data.predictions)
    for index, found in enumerate(findings.items):
        lab = data.labels[index]["labels"]
        np.testing.assert_allclose(found.label_badly_located, badloc[index], atol=1e-12)
        np.testing.assert_allclose(found.label_swapped, swap[index], atol=1e-12)
        assert [("badly_located" in r) for r in found.label_reasons] == (
            badloc[index] <= cuts[lab] * 0.8
        ).tolist()
        assert [("swapped" in r) for r in found.label_reasons] == (
            swap[index] <= cuts[lab] * 0.8
        ).tolist()
        classes = np.concatenate(
            [np.full(len(p), k) for k, p in enumerate(data.predictions[index])]
        )
        hits = np.nan_to_num(over[index], nan=1.0) <= cuts[classes.astype(int)] * 0.8
        assert found.prediction_flagged[data.order[index]].tolist() == hits.tolist()


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.95])
def test_a_number_threshold_flags_by_image_score(threshold: float) -> None:
    items = random_items(1)
    findings = find_issues(items, threshold)
    scores = np.array([f.score for f in findings.items])
    expected = set(rank.issues_from_scores(scores, threshold=threshold).tolist())
    assert {i for i, f in enumerate(findings.items) if f.flagged} == expected
    assert all(bool(f.reasons) == f.flagged for f in findings.items)
    assert findings.cuts is None


def test_the_same_input_gives_the_same_output() -> None:
    first, second = find_issues(random_items(4)), find_issues(random_items(4))
    assert [(f.score, f.reasons, f.label_reasons) for f in first.items] == [
        (f.score, f.reasons, f.label_reasons) for f in second.items
    ]


def test_no_items() -> None:
    findings = find_issues([])
    assert (findings.items, findings.classes, findings.cuts) == ([], [], None)


GOOD: dict[str, Any] = {
    "labels": [[0, 0, 5, 5]],
    "label_classes": [1],
    "predictions": [[0, 0, 5, 5]],
    "prediction_classes": [1],
    "prediction_scores": [0.9],
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # a box coordinate that is not a number
        ({"labels": [[0, float("nan"), 5, 5]]}, r"img: 1 label boxes have a value that is not"),
        # a negative width
        ({"predictions": [[0, 0, -5, 5]]}, r"img: 1 predicted boxes .* negative width"),
        # three numbers per box
        ({"labels": [[0, 0, 5]]}, r"label boxes must be \(n, 4\)"),
        # one box, two classes
        ({"label_classes": [1, 2]}, r"img: 1 boxes but 2 label classes"),
        # class names instead of ids
        ({"prediction_classes": ["cat"]}, r"prediction classes must be integer category ids"),
        # a confidence above 1
        ({"prediction_scores": [1.5]}, r"img: a prediction's score is not a number in \[0, 1\]"),
        # a missing confidence
        ({"prediction_scores": []}, r"img: 1 predictions but 0 scores"),
        # text where boxes go
        ({"labels": "box"}, r"img: label boxes are not numbers"),
    ],
)
def test_bad_input_is_refused_with_its_item(changes: dict[str, Any], message: str) -> None:
    item = Item(**{**GOOD, **changes, "name": "img"})
    with pytest.raises(QualityInputError, match=message):
        find_issues([item])


def test_every_bad_item_is_reported_at_once() -> None:
    bad = Item(**{**GOOD, "prediction_scores": [2.0]})
    with pytest.raises(QualityInputError, match=r"(?s)item #0: .*\nitem #2: ") as error:
        find_issues([bad, Item(**GOOD), bad])
    assert len(error.value.problems) == 2


@pytest.mark.parametrize(
    "threshold",
    [
        -0.1,  # below 0
        1.5,  # above 1
        float("nan"),  # not a number
        True,  # a flag, not a number
    ],
)
def test_a_threshold_outside_0_1_is_refused(threshold: float) -> None:
    with pytest.raises(QualityInputError, match=r"threshold must be a number in \[0, 1\]"):
        find_issues(planted(), threshold)
