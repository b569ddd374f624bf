"""Label Studio tasks and labelling configs: the fields written, scores, ids, bad input."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pixelpipe.dataset import Annotation, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import labelstudio
from pixelpipe.formats.imagefolder import IMAGE_LABEL

NAMES = {1: "car", 2: "person", 7: "cat"}


def _sample(*annotations: Annotation, width: int = 640, height: int = 480) -> Sample:
    return Sample(
        id="street/a.jpg",
        image="images/ab/abcd.jpg",
        sha256="ab" * 32,
        width=width,
        height=height,
        source="s3://bucket/street/a.jpg",
        annotations=list(annotations),
    )


def _label(category: int, score: float | None = None) -> Annotation:
    return Annotation(
        category, (0.0, 0.0, 640.0, 480.0), score=score, attributes={IMAGE_LABEL: True}
    )


def test_a_box_prediction_is_written_as_documented() -> None:
    sample = _sample(Annotation(1, (80.0, 120.0, 320.0, 180.0), score=0.83))
    written = labelstudio.task(sample, NAMES, "/data/local-files/?d=a.jpg", model_version="m1")
    assert written == {
        "data": {
            "image": "/data/local-files/?d=a.jpg",
            "pixelpipe_id": "street/a.jpg",
            "pixelpipe_sha256": "ab" * 32,
        },
        "predictions": [
            {
                "model_version": "m1",
                "score": 0.83,
                "result": [
                    {
                        "id": "0",
                        "from_name": "label",
                        "to_name": "image",
                        "original_width": 640,
                        "original_height": 480,
                        "image_rotation": 0,
                        "type": "rectanglelabels",
                        "value": {
                            "x": 12.5,
                            "y": 25.0,
                            "width": 50.0,
                            "height": 37.5,
                            "rotation": 0,
                            "rectanglelabels": ["car"],
                        },
                        "score": 0.83,
                    }
                ],
            }
        ],
    }


def test_scores_ids_and_kinds() -> None:
    sample = _sample(
        Annotation(1, (10.0, 10.0, 20.0, 20.0), score=0.9),
        Annotation(2, (0.0, 0.0, 5.0, 5.0), score=0.0),  # a 0.0 score is a score
        Annotation(1, (1.0, 1.0, 2.0, 2.0)),  # no score: none written
        Annotation(
            7,
            (64.0, 48.0, 64.0, 48.0),
            polygons=[[64.0, 48.0, 128.0, 48.0, 96.0, 96.0], [0.0, 0.0, 6.4, 0.0, 0.0, 4.8]],
            score=0.5,
        ),
        _label(7, 0.7),
        _label(1, 0.6),
    )
    (prediction,) = labelstudio.task(sample, NAMES, "a.jpg", model_version="m")["predictions"]
    results = prediction["result"]
    assert prediction["score"] == 0.0  # the lowest region score: the riskiest task first
    assert [(r["id"], r["type"], r["from_name"], r.get("score")) for r in results] == [
        ("0", "rectanglelabels", "label", 0.9),
        ("1", "rectanglelabels", "label", 0.0),
        ("2", "rectanglelabels", "label", None),
        ("3", "polygonlabels", "polygon", 0.5),
        ("3.1", "polygonlabels", "polygon", 0.5),
        ("4", "choices", "class", 0.6),  # both image labels, the lower score
    ]
    assert results[2]["score"] is None  # written as null, or it would take the prediction's
    assert results[3]["value"] == {
        "points": [[10.0, 10.0], [20.0, 10.0], [15.0, 20.0]],
        "closed": True,
        "polygonlabels": ["cat"],
    }
    assert results[5]["value"] == {"choices": ["cat", "car"]}
    assert "original_width" not in results[5]


def test_no_score_no_model_version_and_annotations() -> None:
    sample = _sample(Annotation(1, (1.0, 2.0, 3.0, 4.0)))
    written = labelstudio.task(sample, NAMES, "a.jpg", model_version=None)
    assert written["predictions"][0].keys() == {"result"}  # no model_version, no score
    as_annotation = labelstudio.task(
        sample, NAMES, "a.jpg", model_version="m", as_predictions=False, data={"batch": 3}
    )
    assert as_annotation.keys() == {"data", "annotations"}
    assert as_annotation["annotations"] == [{"result": written["predictions"][0]["result"]}]
    assert as_annotation["data"]["batch"] == 3


def test_a_sample_without_labels_is_an_empty_prediction() -> None:
    written = labelstudio.task(_sample(), NAMES, "a.jpg", model_version="m")
    assert written["predictions"] == [{"model_version": "m", "result": []}]


BAD = [
    # a category the class map does not name
    (
        _sample(Annotation(3, (1.0, 1.0, 2.0, 2.0))),
        {},
        r"street/a\.jpg annotations\[0\]: category id 3",
    ),
    # a NaN score
    (
        _sample(Annotation(1, (1.0, 1.0, 2.0, 2.0), score=math.nan)),
        {},
        r"annotations\[0\]: its box, polygon or score holds a value that is not a finite",
    ),
    # an infinite box
    (_sample(Annotation(1, (1.0, 1.0, math.inf, 2.0))), {}, r"not a finite number"),
    # a polygon part of two points
    (
        _sample(Annotation(1, (0.0, 0.0, 1.0, 1.0), polygons=[[0.0, 0.0, 1.0, 1.0]])),
        {},
        r"polygon part 0 needs at least 3 x, y pairs, got 4 numbers",
    ),
    # an image of no size
    (_sample(width=0), {}, r"street/a\.jpg: the size 0x480 is not positive"),
    # extra data that would replace what pixelpipe writes
    (_sample(), {"image": "b.jpg"}, r"street/a\.jpg data: data keys image are written"),
]


@pytest.mark.parametrize(("sample", "data", "message"), BAD)
def test_bad_samples(sample: Sample, data: dict[str, Any], message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        labelstudio.task(sample, NAMES, "a.jpg", model_version="m", data=data)


def test_every_problem_of_a_sample_at_once() -> None:
    sample = _sample(Annotation(3, (1.0, 1.0, 2.0, 2.0)), Annotation(1, (1.0, 1.0, 2.0, math.nan)))
    with pytest.raises(PixelpipeError) as caught:
        labelstudio.task(sample, NAMES, "a.jpg", model_version="m")
    assert len(caught.value.problems) == 2


def test_write_tasks_is_deterministic_and_atomic(tmp_path: Path) -> None:
    sample = _sample(Annotation(1, (1.0 / 3, 2.0, 3.0, 4.0), score=0.1 + 0.2))
    tasks = [
        labelstudio.task(sample, {1: "vélo"}, "a.jpg", model_version="m", data={"z": 1, "a": 2})
    ]
    first, second = tmp_path / "one" / "tasks.json", tmp_path / "two.json"
    labelstudio.write_tasks(first, tasks)
    labelstudio.write_tasks(second, json.loads(json.dumps(tasks)))
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text(encoding="utf-8")
    assert "vélo" in text  # UTF-8, not escaped
    assert text.startswith("[\n{") and text.endswith("}\n]\n")
    assert json.loads(text) == tasks  # floats written exactly
    assert sorted(p.name for p in first.parent.iterdir()) == ["tasks.json"]  # no temporary left


def test_write_tasks_refuses_what_json_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"bad\.json: a task cannot be written as JSON"):
        labelstudio.write_tasks(tmp_path / "bad.json", [{"data": {"x": math.nan}}])
    assert not (tmp_path / "bad.json").exists()
    labelstudio.write_tasks(tmp_path / "none.json", [])
    assert (tmp_path / "none.json").read_text() == "[]\n"


def test_label_config() -> None:
    assert labelstudio.label_config(["car", "person"]) == (
        "<View>\n"
        '  <Image name="image" value="$image"/>\n'
        '  <RectangleLabels name="label" toName="image">\n'
        '    <Label value="car"/>\n'
        '    <Label value="person"/>\n'
        "  </RectangleLabels>\n"
        "</View>\n"
    )


def test_label_config_with_choices_polygons_and_odd_names() -> None:
    names = ['say "hi"', "a & b", "<tag>"]
    config = ET.fromstring(labelstudio.label_config(names, True, polygons=True, multiple=True))
    controls = [(c.tag, c.get("name"), c.get("toName"), c.get("choice")) for c in config]
    assert controls == [
        ("Image", "image", None, None),
        ("RectangleLabels", "label", "image", None),
        ("PolygonLabels", "polygon", "image", None),
        ("Choices", "class", "image", "multiple"),
    ]
    assert [e.get("value") for e in config[3]] == names  # escaped, read back as written
    single = ET.fromstring(labelstudio.label_config(["a"], choices=True))
    assert single[2].get("choice") == "single"


BAD_CLASSES = [
    # no class at all
    ([], r"at least one class"),
    # the same class twice
    (["car", "car"], r"classes\[1\]: class 'car' is listed twice"),
    # a blank name
    (["car", " "], r"classes\[1\]: a class name is empty"),
]


@pytest.mark.parametrize(("classes", "message"), BAD_CLASSES)
def test_label_config_refuses(classes: list[str], message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        labelstudio.label_config(classes)


IDS = [
    # an annotation's own id
    ("3", 3),
    # the second part of a polygon
    ("12.1", 12),
    # an id Label Studio gave a region a reviewer drew
    ("Xa1b2C3d4e", None),
    # not text
    (3, None),
]


@pytest.mark.parametrize(("ls_id", "index"), IDS)
def test_annotation_index(ls_id: Any, index: int | None) -> None:
    assert labelstudio.annotation_index(ls_id) == index
    if index is not None:
        assert labelstudio.annotation_index(labelstudio.region_id(index, 2)) == index


def test_write_tasks_streams_and_leaves_the_file_as_it_was_on_error(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    labelstudio.write_tasks(path, [{"data": {"image": "a.jpg"}}])
    before = path.read_bytes()
    made = ({"data": {"image": f"{i}.jpg", "x": math.nan if i == 2 else i}} for i in range(3))
    with pytest.raises(PixelpipeError, match=r"tasks\.json: a task cannot be written as JSON"):
        labelstudio.write_tasks(path, made)  # a generator: the third task is bad
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.json"]  # no temporary left
    labelstudio.write_tasks(path, ({"data": {"image": f"{i}.jpg"}} for i in range(2)))
    assert path.read_text() == '[\n{"data":{"image":"0.jpg"}},\n{"data":{"image":"1.jpg"}}\n]\n'
