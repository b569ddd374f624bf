"""Predictions: the cocoapi results file read against the COCO file of its ids, and the checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import ReadOptions
from pixelpipe.formats.predictions import as_predictions, looks_like, read_coco_results
from pixelpipe.sources import open_tree

CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def _write(root: Path, results: list[Any], images: list[dict[str, Any]] | None = None) -> None:
    images = images or [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50}]
    (root / "images.json").write_text(
        json.dumps({"images": images, "annotations": [], "categories": CATEGORIES})
    )
    (root / "results.json").write_text(json.dumps(results))


def test_the_cocoapi_results_file_reads_against_the_coco_file_of_its_ids(
    corpora: Path, tmp_path: Path
) -> None:
    source = corpora / "formats" / "cocoapi_results" / "instances_val2014_fakebbox100_results.json"
    results = json.loads(source.read_text())
    shutil.copy(source, tmp_path / "results.json")
    # the val2014 images it names, as the COCO file of those ids would list them
    ids = sorted({r["image_id"] for r in results})
    images = [
        {"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "width": 640, "height": 480}
        for i in ids
    ]
    categories = [
        {"id": c, "name": f"class{c}"} for c in sorted({r["category_id"] for r in results})
    ]
    (tmp_path / "val.json").write_text(
        json.dumps({"images": images, "annotations": [], "categories": categories})
    )
    tree = open_tree(str(tmp_path))
    assert looks_like(tree, "results.json")
    assert not looks_like(tree, "val.json")
    labels = read_coco_results(tree, "results.json", "val.json", ReadOptions())
    boxes = [a for item in labels.items for a in item.annotations]
    assert len(boxes) == len(results)
    assert {round(a.score or 0, 3) for a in boxes} == {round(r["score"], 3) for r in results}
    first = results[0]
    item = next(i for i in labels.items if i.image.endswith(f"{first['image_id']:012d}.jpg"))
    assert any(
        list(a.bbox) == first["bbox"] and a.score == first["score"] for a in item.annotations
    )
    named = as_predictions(
        labels, "fake-detector", "results.json", {i.image for i in labels.items}, None
    )
    assert {a.annotator for i in named.items for a in i.annotations} == {"fake-detector"}


@pytest.mark.parametrize(
    ("results", "message"),
    [
        # an image id the COCO file does not list
        (
            [{"image_id": 8, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}],
            r"\[0\]: image_id 8 is not an image of",
        ),
        # a category id it does not list
        (
            [{"image_id": 7, "category_id": 9, "bbox": [0, 0, 5, 5], "score": 0.5}],
            r"\[0\]: category_id 9 is not a category",
        ),
        # a box with a negative width
        (
            [{"image_id": 7, "category_id": 1, "bbox": [0, 0, -5, 5], "score": 0.5}],
            r"\[0\]: bbox must be",
        ),
        # not a list of detections
        ({"image_id": 7}, "a COCO results file is a JSON list"),
    ],
)
def test_malformed_results_are_one_line_each(tmp_path: Path, results: Any, message: str) -> None:
    _write(tmp_path, results)
    with pytest.raises(PixelpipeError, match=message):
        read_coco_results(open_tree(str(tmp_path)), "results.json", "images.json", ReadOptions())


@pytest.mark.parametrize(
    ("score", "message"),
    [
        # above 1: a logit or a percentage, not a probability
        (1.5, r"score 1.5; a prediction's score is a number in \[0, 1\]"),
        # below 0
        (-0.1, r"score -0.1"),
        # missing
        (None, r"score None"),
    ],
)
def test_scores_outside_0_1_or_missing_are_refused(
    tmp_path: Path, score: float | None, message: str
) -> None:
    _write(tmp_path, [{"image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5], "score": score}])
    labels = read_coco_results(
        open_tree(str(tmp_path)), "results.json", "images.json", ReadOptions()
    )
    with pytest.raises(PixelpipeError, match=message):
        as_predictions(labels, "m", "results.json", {"a.jpg"}, {"cat", "dog"})


def test_images_and_classes_the_dataset_lacks_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, [{"image_id": 7, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.4}])
    labels = read_coco_results(
        open_tree(str(tmp_path)), "results.json", "images.json", ReadOptions()
    )
    with pytest.raises(
        PixelpipeError, match=r"predictions for 'a\.jpg', which the dataset does not have"
    ):
        as_predictions(labels, "m", "results.json", {"b.jpg"}, {"dog"})
    with pytest.raises(PixelpipeError, match="class 'dog' is not a class of the dataset"):
        as_predictions(labels, "m", "results.json", {"a.jpg"}, {"cat"})
