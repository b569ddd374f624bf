"""Ingest of a model's predictions beside people's labels: YOLO with a confidence column, Label Studio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from steps import ingest
from tiny import write_tiny_coco

from pixelpipe.dataset import Dataset
from pixelpipe.errors import PixelpipeError


def _ingest(root: Path, raw: Path, path: str, model: str) -> tuple[Dataset, dict[str, Any]]:
    """Ingest the tiny COCO source with one model's predictions file."""
    return ingest(
        root,
        source=str(raw),
        format="coco",
        annotations=["annotations.json"],
        images="images",
        predictions=[{"path": path, "model": model}],
    )


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "raw" / "tiny"
    write_tiny_coco(root)
    # YOLO labels beside the images, a sixth column holding the confidence
    (root / "data.yaml").write_text("path: .\ntrain: images\nnames: [cat, dog]\n")
    (root / "labels").mkdir()
    (root / "labels" / "img0.txt").write_text("1 0.5 0.5 0.25 0.5 0.0\n0 0.25 0.25 0.5 0.5 0.875\n")
    return root


def test_yolo_predictions_keep_their_scores_zero_included(raw: Path, tmp_path: Path) -> None:
    dataset, _ = _ingest(tmp_path, raw, "data.yaml", "yolo11n")
    names = {c.id: c.name for c in dataset.categories}
    rows = {r["id"]: r for r in dataset.table.to_pylist()}
    predicted = [a for a in rows["img0.png"]["annotations"] if a["annotator"] == "yolo11n"]
    assert sorted((names[a["category_id"]], a["score"]) for a in predicted) == [
        ("cat", 0.875),
        ("dog", 0.0),
    ]
    # 24 x 18 image: centre 0.25, size 0.5 -> [0, 0, 12, 9]
    cat = next(a for a in predicted if names[a["category_id"]] == "cat")
    assert cat["bbox"] == [0.0, 0.0, 12.0, 9.0]
    # the people's label stays beside it, with no score
    assert [a["score"] for a in rows["img0.png"]["annotations"] if a["annotator"] is None] == [None]


def test_a_score_above_one_is_refused_naming_the_file(raw: Path, tmp_path: Path) -> None:
    (raw / "labels" / "img0.txt").write_text("0 0.5 0.5 0.2 0.2 87\n")
    with pytest.raises(
        PixelpipeError, match=r"score 87.0; a prediction's score is a number in \[0, 1\]"
    ):
        _ingest(tmp_path, raw, "data.yaml", "yolo11n")


def test_label_studio_predictions_are_a_models_labels(raw: Path, tmp_path: Path) -> None:
    task = {
        "id": 1,
        "data": {"image": "/data/local-files/?d=images/img1.png"},
        "annotations": [],
        "predictions": [
            {
                "model_version": "detr-v2",
                "score": 0.4,
                "result": [
                    {
                        "id": "p1",
                        "type": "rectanglelabels",
                        "from_name": "label",
                        "to_name": "image",
                        "original_width": 30,
                        "original_height": 20,
                        "value": {
                            "x": 10,
                            "y": 50,
                            "width": 20,
                            "height": 25,
                            "rotation": 0,
                            "rectanglelabels": ["dog"],
                        },
                        "score": 0.4,
                    }
                ],
            }
        ],
    }
    (raw / "tasks.json").write_text(json.dumps([task]))
    dataset, _ = _ingest(tmp_path, raw, "tasks.json", "detector")
    rows = {r["id"]: r for r in dataset.table.to_pylist()}
    (box,) = [a for a in rows["img1.png"]["annotations"] if a["annotator"] == "detector"]
    assert box["score"] == 0.4
    assert box["bbox"] == pytest.approx([3.0, 10.0, 6.0, 5.0], abs=1e-9)
