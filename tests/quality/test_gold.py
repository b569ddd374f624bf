"""Scoring against a gold set with CVAT's definitions, on hand-checked cases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pixelpipe.quality.gold import boxes_against_gold, labels_against_gold
from pixelpipe.quality.inputs import QualityInputError


def box(x: float, y: float = 0.0) -> list[float]:
    return [x, y, 10.0, 10.0]


IMAGES: list[tuple[Any, dict[str, Any]]] = [
    # a car found right; a person called a car (a label mismatch from the second pass)
    (
        "img1",
        {
            "gt": ([box(0), box(50, 50)], ["car", "person"]),
            "ann": ([box(1), box(50, 51)], ["car", "car"]),
            "other": ([box(0)], ["car"]),  # another annotator's boxes are ignored
        },
    ),
    # a car the annotator missed
    ("img2", {"gt": ([box(0)], ["car"]), "ann": ([], [])}),
    # a person the annotator drew that is not in the gold set
    ("img3", {"gt": ([], []), "ann": ([box(0)], ["person"])}),
    # the gold annotator did not see this image: left out
    ("img4", {"ann": ([box(0)], ["car"])}),
]


def test_boxes_against_gold_follow_cvats_confusion_matrix() -> None:
    report = boxes_against_gold(IMAGES, annotator="ann", gold="gt")
    assert report["images"] == 3
    assert report["confusion"] == {
        "labels": ["car", "person", "unmatched"],
        # rows: the annotator's label; columns: the gold label
        "rows": [[1, 1, 0], [0, 0, 1], [1, 0, 0]],
    }
    assert (report["valid"], report["ds_count"], report["gt_count"], report["total"]) == (
        1,
        3,
        3,
        4,
    )
    assert report["precision"] == pytest.approx(1 / 3)
    assert report["recall"] == pytest.approx(1 / 3)
    assert report["accuracy"] == pytest.approx(1 / 4)
    assert report["errors"] == {"missing": 1, "extra": 1, "mismatching_label": 1}
    assert report["per_class"]["car"] == {
        "valid": 1,
        "ds": 2,
        "gt": 2,
        "precision": 0.5,
        "recall": 0.5,
        "jaccard": pytest.approx(1 / 3),
    }
    assert report["per_class"]["person"]["jaccard"] == 0.0
    assert report["iou_mean"] == pytest.approx((9 / 11 + 9 / 11) / 2)
    assert report["notes"] == ["1 image not seen by both ann and gt is left out."]
    json.dumps(report, allow_nan=False)


def test_a_perfect_annotator_scores_one() -> None:
    images = [("a", {"gt": ([box(0)], ["car"]), "ann": ([box(0)], ["car"])})]
    report = boxes_against_gold(images, "ann", "gt")
    assert (report["precision"], report["recall"], report["accuracy"]) == (1.0, 1.0, 1.0)


def test_no_shared_image_gives_no_ratios() -> None:
    report = boxes_against_gold([("a", {"ann": ([box(0)], ["car"])})], "ann", "gt")
    assert report["images"] == 0
    assert (report["precision"], report["recall"], report["accuracy"]) == (None, None, None)
    assert report["confusion"] == {"labels": ["unmatched"], "rows": [[0]]}
    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize(
    ("images", "annotator", "gold", "message"),
    [
        # scoring the gold set against itself
        ([], "gt", "gt", "the annotator and the gold set are both 'gt'"),
        # the same image twice
        ([("a", {}), ("a", {})], "ann", "gt", "image 'a' is listed more than once"),
        # the annotator's boxes of the wrong shape
        (
            [("a", {"ann": ([[0, 0, 1]], ["x"])})],
            "ann",
            "gt",
            r"image 'a', annotator 'ann': boxes must be",
        ),
        # an entry that is not (id, annotators)
        (["a"], "ann", "gt", r"image #0: expected \(image_id, annotators\)"),
    ],
)
def test_bad_box_input_is_refused(
    images: list[Any], annotator: str, gold: str, message: str
) -> None:
    with pytest.raises(QualityInputError, match=message):
        boxes_against_gold(images, annotator, gold)


def test_labels_against_gold() -> None:
    ratings = ["cat", "dog", None, "cat", "dog"]
    gold = ["cat", "cat", "dog", None, "dog"]
    report = labels_against_gold(ratings, gold)
    # item 3 has no gold label; item 2 is a gold item the annotator did not rate (missing)
    assert (report["items"], report["rated"], report["not_in_gold"]) == (4, 3, 1)
    assert report["confusion"] == {
        "labels": ["cat", "dog", "unmatched"],
        "rows": [[1, 0, 0], [1, 1, 0], [0, 1, 0]],
    }
    assert report["accuracy"] == 0.5  # 2 of the 4 gold items
    assert report["recall"] == 0.5
    assert report["precision"] == pytest.approx(2 / 3)  # 2 of the 3 ratings on gold items
    assert report["errors"] == {"missing": 1, "extra": 0, "mismatching_label": 1}
    assert report["per_class"]["dog"]["jaccard"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("ratings", "gold", "message"),
    [
        # lengths differ
        (["a", "b"], ["a"], "2 ratings but 1 gold labels"),
        # a number among the ratings
        ([1], ["a"], "item 0: a rating must be a label or None, got 1"),
        # a number among the gold labels
        (["a"], [2.5], "item 0: a gold label must be a label or None"),
    ],
)
def test_bad_label_input_is_refused(ratings: list[Any], gold: list[Any], message: str) -> None:
    with pytest.raises(QualityInputError, match=message):
        labels_against_gold(ratings, gold)
