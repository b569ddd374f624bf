"""Label Studio JSON exports: annotators, percent coordinates, image URLs, malformed files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import labelstudio
from pixelpipe.formats.base import LabelSet, ReadOptions, to_pixels
from pixelpipe.sources import open_tree


def _box(
    rid: str, x: float, y: float, w: float, h: float, label: str, **extra: Any
) -> dict[str, Any]:
    """A rectangle result as Label Studio exports it (percent of the image, top-left)."""
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}
    value.update(extra.pop("value", {}))
    return {
        "original_width": 640,
        "original_height": 480,
        "image_rotation": 0,
        "value": value,
        "id": rid,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "origin": "manual",
        **extra,
    }


def _annotation(aid: int, who: Any, result: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """One annotator's annotation of a task, with the fields of a JSON export."""
    return {
        "id": aid,
        "completed_by": who,
        "result": result,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2024-03-01T10:00:00.000000Z",
        "updated_at": "2024-03-01T10:02:00.000000Z",
        "draft_created_at": None,
        "lead_time": 41.2,
        "prediction": {},
        "result_count": len(result),
        "unique_id": f"a-{aid}",
        "import_id": None,
        "last_action": None,
        "task": 1,
        "project": 3,
        "updated_by": who if isinstance(who, int) else None,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
        **extra,
    }


def _task(tid: int, image: str, annotations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "annotations": annotations,
        "file_upload": image.rsplit("/", 1)[-1],
        "drafts": [],
        "predictions": [],
        "data": {"image": image},
        "meta": {},
        "created_at": "2024-03-01T09:00:00.000000Z",
        "updated_at": "2024-03-01T10:02:00.000000Z",
        "inner_id": tid,
        "total_annotations": len(annotations),
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 3,
        "updated_by": 7,
        "comment_authors": [],
        **extra,
    }


PREDICTION = {
    "id": 31,
    "model_version": "yolov8n",
    "score": 0.91,
    "result": [_box("p1", 10, 10, 20, 20, "Car", score=0.91)],
}

EXPORT = [
    # two annotators on one task; the second is a user object and marks ground truth
    _task(
        1,
        "/data/upload/3/1a2b3c4d-photo.jpg",
        [
            _annotation(
                11, 7, [_box("r1", 12.5, 25, 50, 37.5, "Car"), _box("r2", 0, 0, 10, 10, "Person")]
            ),
            _annotation(
                12,
                {"id": 3, "email": "ann@example.org", "first_name": "", "last_name": ""},
                [_box("r3", 12.5, 25, 50, 37.5, "Car")],
                ground_truth=True,
            ),
        ],
        predictions=[PREDICTION],
    ),
    # annotator 7 skipped the task (cancelled), annotator 8 saw it and drew nothing
    _task(
        2,
        "/data/local-files/?d=images/street.jpg",
        [
            _annotation(21, 7, [_box("r4", 1, 1, 2, 2, "Car")], was_cancelled=True),
            _annotation(22, 8, []),
        ],
    ),
    # a whole-image choice and a polygon
    _task(
        3,
        "s3://bucket/images/cat.jpg",
        [
            _annotation(
                31,
                8,
                [
                    {
                        "id": "c1",
                        "type": "choices",
                        "from_name": "class",
                        "to_name": "image",
                        "value": {"choices": ["Cat"]},
                    },
                    {
                        "id": "g1",
                        "type": "polygonlabels",
                        "from_name": "poly",
                        "to_name": "image",
                        "original_width": 800,
                        "original_height": 600,
                        "image_rotation": 0,
                        "value": {
                            "points": [[25, 50], [75, 50], [50, 100]],
                            "polygonlabels": ["Cat"],
                        },
                    },
                ],
            )
        ],
    ),
]


def _read(
    tmp_path: Path,
    export: Any,
    files: tuple[str, ...] = (),
    raw: bytes | None = None,
    **options: Any,
) -> LabelSet:
    (tmp_path / "export.json").write_bytes(
        raw if raw is not None else json.dumps(export, indent=2).encode()
    )
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return labelstudio.read(open_tree(str(tmp_path / "export.json")), ReadOptions(**options))


def test_two_annotators_in_one_task(tmp_path: Path) -> None:
    labels = _read(tmp_path, EXPORT)
    assert [c.name for c in labels.categories] == ["Car", "Cat", "Person"]
    photo = next(i for i in labels.items if i.image == "photo.jpg")
    assert photo.annotators == ["7", "ann@example.org"]
    assert photo.normalized and (photo.width, photo.height) == (640, 480)
    assert [(a.annotator, a.category_id, a.attributes) for a in photo.annotations] == [
        ("7", 0, {"ls_id": "r1"}),
        ("7", 2, {"ls_id": "r2"}),
        ("ann@example.org", 0, {"ls_id": "r3", "ground_truth": True}),
    ]


def test_percent_becomes_exact_pixels(tmp_path: Path) -> None:
    photo = next(i for i in _read(tmp_path, EXPORT).items if i.image == "photo.jpg")
    assert photo.annotations[0].bbox == (0.125, 0.25, 0.5, 0.375)
    # 12.5% of 640 is 80.0 exactly, 37.5% of 480 is 180.0 exactly
    assert to_pixels(photo.annotations, 640, 480)[0].bbox == (80.0, 120.0, 320.0, 180.0)


def test_cancelled_and_empty_annotations(tmp_path: Path) -> None:
    labels = _read(tmp_path, EXPORT)
    street = next(i for i in labels.items if i.image == "images/street.jpg")
    assert street.annotators == ["8"]  # 7 cancelled: they did not label it
    assert street.annotations == []
    assert labels.notes["ls_cancelled_annotations"] == 1


def test_predictions_are_counted_not_read(tmp_path: Path) -> None:
    labels = _read(tmp_path, EXPORT)
    assert labels.notes["ls_predictions_ignored"] == 1
    scores = [a.score for i in labels.items for a in i.annotations]
    assert scores == [None] * len(scores)


def test_predictions_are_read_when_asked(tmp_path: Path) -> None:
    labels = _read(tmp_path, EXPORT, predictions=True)
    photo = next(i for i in labels.items if i.image == "photo.jpg")
    assert photo.annotators == ["yolov8n"]
    (box,) = photo.annotations
    assert (box.annotator, box.score, box.attributes) == ("yolov8n", 0.91, {"ls_id": "p1"})
    assert box.bbox == (0.1, 0.1, 0.2, 0.2)
    assert [c.name for c in labels.categories] == ["Car"]
    assert labels.notes == {"ls_annotations_ignored": 5, "ls_tasks_not_predicted": 2}


SCORES = [
    # the region's own score wins over the prediction's
    ({"score": 0.5}, {"score": 0.25}, 0.25),
    # a region without one takes the prediction's
    ({"score": 0.5}, {}, 0.5),
    # a 0.0 region score is kept (Label Studio's converter drops it)
    ({"score": 0.5}, {"score": 0.0}, 0.0),
    # a 0 prediction score is kept too, as a float
    ({"score": 0}, {}, 0.0),
    # an explicit null is no score (pixelpipe writes it beside scored regions)
    ({"score": 0.5}, {"score": None}, None),
    # no score anywhere
    ({}, {}, None),
]


@pytest.mark.parametrize(("prediction", "region", "score"), SCORES)
def test_prediction_scores(
    tmp_path: Path, prediction: dict[str, Any], region: dict[str, Any], score: float | None
) -> None:
    entry = {"id": 1, "result": [_box("p", 1, 2, 3, 4, "Car", **region)], **prediction}
    labels = _read(tmp_path, [_task(1, "a.jpg", [], predictions=[entry])], predictions=True)
    (box,) = labels.items[0].annotations
    assert box.score == score
    assert type(box.score) is type(score)
    assert box.annotator == "prediction"  # no model_version


BAD_PREDICTIONS = [
    # a region score that is not a number
    (
        [{"result": [_box("p", 1, 2, 3, 4, "Car", score="high")]}],
        r"result\[0\]\.score: 'score' must",
    ),
    # a prediction score that is a boolean
    ([{"score": True, "result": []}], r"predictions\[0\]\.score: 'score' must be a number"),
    # the export lists prediction ids only (label-studio#5654)
    ([31, 32], r"2 predictions are listed by id only"),
    # a prediction that is not an object
    (["p"], r"predictions\[0\]: a prediction is an object"),
]


@pytest.mark.parametrize(("predictions", "message"), BAD_PREDICTIONS)
def test_malformed_predictions(tmp_path: Path, predictions: list[Any], message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        _read(tmp_path, [_task(1, "a.jpg", [], predictions=predictions)], predictions=True)


def test_choices_and_polygons(tmp_path: Path) -> None:
    cat = next(i for i in _read(tmp_path, EXPORT).items if i.image == "images/cat.jpg")
    choice, polygon = cat.annotations
    assert choice.bbox == (0.0, 0.0, 1.0, 1.0)
    assert choice.attributes == {"image_label": True, "ls_id": "c1"}
    assert (choice.category_id, polygon.category_id) == (1, 1)
    assert polygon.polygons == [[0.25, 0.5, 0.75, 0.5, 0.5, 1.0]]
    assert polygon.bbox == (0.25, 0.5, 0.5, 0.5)
    assert (cat.width, cat.height) == (800, 600)
    assert to_pixels([polygon], 800, 600)[0].polygons == [
        [200.0, 300.0, 600.0, 300.0, 400.0, 600.0]
    ]


def test_a_single_task_object_is_read(tmp_path: Path) -> None:
    labels = _read(tmp_path, EXPORT[0])
    assert [i.image for i in labels.items] == ["photo.jpg"]


def test_classes_option_sets_the_ids(tmp_path: Path) -> None:
    labels = _read(tmp_path, EXPORT, classes=["Person", "Car", "Cat"])
    photo = next(i for i in labels.items if i.image == "photo.jpg")
    assert [a.category_id for a in photo.annotations] == [1, 0, 1]


URLS = [
    # an upload: Label Studio's folder and its 8-hex-digit prefix go
    ("/data/upload/3/1a2b3c4d-photo.jpg", "photo.jpg"),
    # an upload on a full URL, with a percent-escaped name
    ("http://localhost:8080/data/upload/12/0f0e0d0c-my%20photo.jpg", "my photo.jpg"),
    # a name that merely starts like a prefix but has no dash is kept
    ("/data/upload/3/1a2b3c4dphoto.jpg", "1a2b3c4dphoto.jpg"),
    # local storage: the d parameter is the path
    ("/data/local-files/?d=images/photo.jpg", "images/photo.jpg"),
    # local storage with an escaped, absolute-looking path
    ("http://host/data/local-files/?d=%2Fdatasets%2Fa%2Fb.jpg", "datasets/a/b.jpg"),
    # a bucket: scheme and bucket go
    ("s3://bucket/images/photo.jpg", "images/photo.jpg"),
    # a web URL: scheme, host and query (a signature) go
    ("https://cdn.example.org/path/photo.jpg?X-Amz-Signature=abc", "path/photo.jpg"),
    # a plain relative path is kept, even with characters a URL would split on
    ("images/a#1.jpg", "images/a#1.jpg"),
]


@pytest.mark.parametrize(("url", "expected"), URLS)
def test_url_to_path(url: str, expected: str) -> None:
    assert labelstudio.url_to_path(url) == expected


def test_upload_prefix_can_be_kept() -> None:
    assert labelstudio.url_to_path("/data/upload/3/1a2b3c4d-a.jpg", keep_prefix=True) == (
        "1a2b3c4d-a.jpg"
    )


def test_images_are_found_in_the_folder(tmp_path: Path) -> None:
    tasks = [
        # by name: the upload's photo.jpg is the only photo.jpg of the tree
        _task(1, "/data/upload/3/1a2b3c4d-photo.jpg", []),
        # by path suffix: images/street.jpg is the end of one tree path
        _task(2, "/data/local-files/?d=images/street.jpg", []),
        # by the prefixed name, when the upload folder was copied as is
        _task(3, "/data/upload/3/0a0b0c0d-kept.jpg", []),
        # two files fit: kept as written, with a warning
        _task(4, "s3://bucket/dup.jpg", []),
    ]
    files = (
        "media/sub/photo.jpg",
        "set/images/street.jpg",
        "other/street.jpg",
        "media/upload/3/0a0b0c0d-kept.jpg",
        "a/dup.jpg",
        "b/dup.jpg",
        "set/images/extra.jpg",
    )
    labels = _read(tmp_path, tasks, files)
    assert [i.image for i in labels.items] == [
        "dup.jpg",
        "media/sub/photo.jpg",
        "media/upload/3/0a0b0c0d-kept.jpg",
        "set/images/street.jpg",
    ]
    assert "dup.jpg (a/dup.jpg, b/dup.jpg)" in labels.warnings[0]
    assert [(r.id, r.reason) for r in labels.removed] == [("set/images/extra.jpg", "unlisted")]


def test_a_rotated_box_removes_the_image(tmp_path: Path) -> None:
    tasks = [
        _task(
            1, "a.jpg", [_annotation(1, 7, [_box("r1", 1, 1, 5, 5, "Car", value={"rotation": 30})])]
        ),
        # a full turn is no rotation
        _task(
            2,
            "b.jpg",
            [_annotation(2, 7, [_box("r2", 1, 1, 5, 5, "Car", value={"rotation": 360})])],
        ),
    ]
    labels = _read(tmp_path, tasks)
    assert [i.image for i in labels.items] == ["b.jpg"]
    assert [(r.id, r.reason) for r in labels.removed] == [("a.jpg", "rotated")]
    assert "tasks[0].annotations[0].result[0] has rotation 30" in labels.removed[0].detail


def test_a_path_that_escapes_is_removed(tmp_path: Path) -> None:
    labels = _read(tmp_path, [_task(1, "/data/local-files/?d=../secret.jpg", [])])
    assert labels.items == []
    assert [(r.id, r.reason) for r in labels.removed] == [
        ("/data/local-files/?d=../secret.jpg", "unsafe_path")
    ]


def test_other_result_types_are_counted(tmp_path: Path) -> None:
    keypoint = {"id": "k", "type": "keypointlabels", "to_name": "image", "value": {}}
    labels = _read(tmp_path, [_task(1, "a.jpg", [_annotation(1, 7, [keypoint, keypoint])])])
    assert labels.notes["ls_results_ignored"] == 2
    assert labels.warnings == ["Label Studio results not read: keypointlabels (2)"]


def test_the_image_key_follows_to_name(tmp_path: Path) -> None:
    task = _task(1, "a.jpg", [_annotation(1, 7, [_box("r", 1, 1, 2, 2, "Car", to_name="img")])])
    task["data"] = {"img": "b.jpg", "caption": "a street"}
    assert [i.image for i in _read(tmp_path, [task]).items] == ["b.jpg"]


def test_malformed_json_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"export\.json:3: invalid JSON at column 1"):
        _read(tmp_path, None, raw=b'[\n  {"data": {"image": "a.jpg"}}\n}\n')


def _with(change: Any) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = json.loads(json.dumps(EXPORT))
    change(tasks)
    return tasks


MALFORMED = [
    # the top level is neither a list nor a task
    (lambda t: t.clear() or t.append(5), r"export\.json tasks\[0\]: a task is an object"),
    # two results of one task disagree on the image size
    (
        lambda t: t[0]["annotations"][1]["result"][0].update(original_width=641),
        r"tasks\[0\]\.annotations\[1\]\.result\[0\]: the image is 641x480 here but 640x480",
    ),
    # a box corner that is not a number
    (
        lambda t: t[0]["annotations"][0]["result"][0]["value"].update(x="12"),
        r"tasks\[0\]\.annotations\[0\]\.result\[0\]\.value: x, y, width and height must be numbers",
    ),
    # a polygon of two points
    (
        lambda t: t[2]["annotations"][0]["result"][1]["value"].update(points=[[1, 2], [3, 4]]),
        r"tasks\[2\]\.annotations\[0\]\.result\[1\]\.value: 'points' must be a list of at least 3",
    ),
    # a task whose data holds no image
    (lambda t: t[1].update(data={"n": 3}), r"tasks\[1\]\.data: cannot tell which key is the image"),
    # a label that is not a list of names
    (
        lambda t: t[0]["annotations"][0]["result"][0]["value"].update(rectanglelabels="Car"),
        r"rectanglelabels' must be a list of class names",
    ),
]


@pytest.mark.parametrize(("change", "message"), MALFORMED)
def test_malformed_exports(tmp_path: Path, change: Any, message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        _read(tmp_path, _with(change))


def test_a_class_outside_classes(tmp_path: Path) -> None:
    with pytest.raises(
        PixelpipeError,
        match=r"tasks\[0\]\.annotations\[0\]\.result\[1\]\.value\.rectanglelabels: class 'Person'",
    ):
        _read(tmp_path, EXPORT, classes=["Car", "Cat"])


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    def change(tasks: list[dict[str, Any]]) -> None:
        tasks[0]["annotations"][0]["result"][0]["value"]["x"] = None
        tasks[1]["data"] = {}

    with pytest.raises(PixelpipeError) as caught:
        _read(tmp_path, _with(change))
    assert len(caught.value.problems) == 2


def test_looks_like(tmp_path: Path) -> None:
    (tmp_path / "tasks.json").write_text('  [{"data": {"image": "a.jpg"}}]')
    (tmp_path / "results.json").write_text('[{"image_id": 1, "category_id": 2}]')
    (tmp_path / "coco.json").write_text('{"images": [], "annotations": []}')
    tree = open_tree(str(tmp_path))
    assert labelstudio.looks_like(tree, "tasks.json")
    assert labelstudio.looks_like(tree, "results.json")  # a named file: any list
    assert not labelstudio.looks_like(tree, "results.json", strict=True)  # folder scan
    assert not labelstudio.looks_like(tree, "coco.json")
    assert labelstudio.discover(tree) == ["tasks.json"]
