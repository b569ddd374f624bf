"""Ingest of several annotators' files of the same images: COCO, Label Studio, CSV side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from steps import ingest
from tiny import write_tiny_coco

from pixelpipe.dataset.schema import ANNOTATED_BY_COLUMN
from pixelpipe.errors import PixelpipeError

# One Label Studio task per tiny image (img0.png is 24 x 18): two annotators, percent boxes.
LABEL_STUDIO = [
    {
        "id": 1,
        "data": {"image": "/data/upload/7/9f8e7d6c-img0.png"},
        "annotations": [
            {
                "id": 11,
                "completed_by": {"id": 3, "email": "ann@lab.org"},
                "was_cancelled": False,
                "result": [
                    {
                        "id": "a1",
                        "type": "rectanglelabels",
                        "from_name": "label",
                        "to_name": "image",
                        "original_width": 24,
                        "original_height": 18,
                        "image_rotation": 0,
                        "value": {
                            "x": 12.5,
                            "y": 50.0,
                            "width": 25.0,
                            "height": 25.0,
                            "rotation": 0,
                            "rectanglelabels": ["dog"],
                        },
                    }
                ],
            },
            # an annotator who looked and drew nothing
            {"id": 12, "completed_by": 4, "was_cancelled": False, "result": []},
            # one who skipped the task: never saw it
            {"id": 13, "completed_by": 5, "was_cancelled": True, "result": []},
        ],
    }
]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "raw" / "tiny"
    write_tiny_coco(root)
    (root / "ls.json").write_text(json.dumps(LABEL_STUDIO))
    (root / "labels.csv").write_text("item,annotator,label\nimg1.png,cy,cat\nimg2.png,cy,\n")
    return root


def test_three_formats_side_by_side_with_who_saw_what(raw: Path, tmp_path: Path) -> None:
    dataset, _ = ingest(
        tmp_path,
        source=str(raw),
        images="images",
        annotations=[
            {"path": "annotations.json", "annotator": "gold"},
            {"path": "ls.json"},
            {"path": "labels.csv"},
        ],
    )
    rows = {r["id"]: r for r in dataset.table.to_pylist()}
    assert sorted(rows) == ["img0.png", "img1.png", "img2.png"]
    assert rows["img0.png"][ANNOTATED_BY_COLUMN] == ["gold", "ann@lab.org", "4"]
    assert rows["img1.png"][ANNOTATED_BY_COLUMN] == ["gold", "cy"]
    assert rows["img2.png"][ANNOTATED_BY_COLUMN] == ["gold", "cy"]  # a blank label: seen
    names = {c.id: c.name for c in dataset.categories}
    boxes = {
        (a["annotator"], names[a["category_id"]]): a["bbox"]
        for a in rows["img0.png"]["annotations"]
    }
    # percent of the 24 x 18 image to pixels, exactly
    assert boxes[("ann@lab.org", "dog")] == [3.0, 9.0, 6.0, 4.5]
    assert boxes[("gold", "cat")] == [1.0, 1.0, 8.0, 8.0]
    (label,) = [a for a in rows["img1.png"]["annotations"] if a["annotator"] == "cy"]
    assert names[label["category_id"]] == "cat"
    assert label["bbox"] == [0.0, 0.0, 30.0, 20.0]  # a whole-image class label, in pixels


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # Label Studio names every label's annotator: a second name would be a lie
        ({"path": "ls.json", "annotator": "x"}, "names the annotator of every label itself"),
        # a file that is not there
        ({"path": "nope.json", "annotator": "x"}, "nope.json"),
    ],
)
def test_entry_mistakes_are_user_errors(
    raw: Path, tmp_path: Path, entry: dict[str, str], message: str
) -> None:
    with pytest.raises(PixelpipeError, match=message):
        ingest(tmp_path, source=str(raw), images="images", annotations=[entry])


def test_an_annotator_name_with_spaces_around_is_refused(raw: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without spaces around"):
        ingest(tmp_path, source=str(raw), annotations=[{"path": "a.json", "annotator": " bob"}])
