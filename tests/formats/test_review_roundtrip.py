"""Review round trips: samples -> Label Studio tasks or CVAT XML -> the tool's export -> labels.

The exports are built as the tools write them (Label Studio's JSON export: tasks with
``annotations`` and ``predictions``; CVAT for images 1.1 as CVAT's dumper writes it, with
corners rounded to 2 decimals and the score attribute filled in on the boxes a person drew).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import cvat, labelstudio
from pixelpipe.formats.base import LabelSet, ReadOptions, to_pixels
from pixelpipe.formats.imagefolder import IMAGE_LABEL
from pixelpipe.sources import open_tree

NAMES = {0: "car", 1: "person", 4: "traffic light"}
MODEL = "yolov8n-2024-06"
Label = tuple[str, tuple[float, float, float, float], float | None]


def _sample(index: int, width: int, height: int, annotations: list[Annotation]) -> Sample:
    name = f"img{index:04d}.jpg"
    return Sample(
        name, f"images/{name}", f"{index:064x}", width, height, name, annotations=annotations
    )


def _random_samples(rng: random.Random, sizes: list[tuple[int, int]], per: int = 4) -> list[Sample]:
    """Random boxes (scores in [0, 1], some exactly 0.0, some none), polygons, image labels."""
    samples = []
    for index, (width, height) in enumerate(sizes):
        annotations = []
        for _ in range(per):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            w, h = rng.uniform(0, width - x), rng.uniform(0, height - y)
            score = rng.choice([rng.random(), rng.random(), 0.0, None])
            annotations.append(Annotation(rng.choice(list(NAMES)), (x, y, w, h), score=score))
        if index % 3 == 0:
            xs = [rng.uniform(0, width) for _ in range(5)]
            ys = [rng.uniform(0, height) for _ in range(5)]
            box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
            points = [v for pair in zip(xs, ys, strict=True) for v in pair]
            annotations.append(Annotation(1, box, polygons=[points], score=rng.random()))
        if index % 4 == 0:
            whole = (0.0, 0.0, float(width), float(height))
            annotations.append(Annotation(4, whole, score=0.0, attributes={IMAGE_LABEL: True}))
        samples.append(_sample(index, width, height, annotations))
    return samples


def _expected(sample: Sample) -> list[Label]:
    return [(NAMES[a.category_id], a.bbox, a.score) for a in sample.annotations]


def _labels(labels: LabelSet) -> dict[str, list[Label]]:
    """What a reader gave, by sample id (the image's file name), in pixels."""
    names = labels.category_names()
    out = {}
    for item in labels.items:
        annotations = item.annotations
        if item.normalized and annotations:  # a task without results does not give a size
            assert item.width is not None and item.height is not None
            annotations = to_pixels(annotations, item.width, item.height)
        out[item.image.rsplit("/", 1)[-1]] = [
            (names[a.category_id], a.bbox, a.score) for a in annotations
        ]
    return out


def _assert_same(samples: list[Sample], labels: LabelSet, tolerance: float = 1e-6) -> int:
    """Same classes and scores, boxes within ``tolerance`` px; returns the boxes compared."""
    found = _labels(labels)
    assert sorted(found) == sorted(s.id for s in samples)
    compared = 0
    for sample in samples:
        got, want = found[sample.id], _expected(sample)
        assert [(n, s) for n, _, s in got] == [(n, s) for n, _, s in want], sample.id
        for (_, box, _), (_, truth, _) in zip(got, want, strict=True):
            assert max(abs(a - b) for a, b in zip(box, truth, strict=True)) <= tolerance, sample.id
            compared += 1
    return compared


def _tasks_file(tmp_path: Path, samples: list[Sample], **options: Any) -> Path:
    tasks = [
        labelstudio.task(s, NAMES, f"/data/local-files/?d=review/{s.id}", **options)
        for s in samples
    ]
    path = tmp_path / "tasks.json"
    labelstudio.write_tasks(path, tasks)
    return path


def _read_ls(path: Path, predictions: bool) -> LabelSet:
    return labelstudio.read(open_tree(str(path)), ReadOptions(predictions=predictions))


def test_label_studio_predictions_come_back_exactly(tmp_path: Path) -> None:
    rng = random.Random(14)
    sizes = [(rng.randint(1, 8000), rng.randint(1, 8000)) for _ in range(300)]
    samples = _random_samples(rng, sizes)
    labels = _read_ls(_tasks_file(tmp_path, samples, model_version=MODEL), predictions=True)
    assert _assert_same(samples, labels) > 1200
    assert {a.annotator for i in labels.items for a in i.annotations} == {MODEL}
    scores = [a.score for i in labels.items for a in i.annotations]
    assert 0.0 in scores and None in scores  # a 0.0 score is not dropped


def _photo_sizes(corpora: Path) -> list[tuple[int, int]]:
    sizes = set()
    for folder in ("photos/clothing", "detection/coco256/images"):
        for path in sorted((corpora / folder).rglob("*.jpg")):
            with Image.open(path) as image:
                sizes.add(image.size)
    return sorted(sizes)


def test_the_corpora_photo_sizes_and_real_boxes(corpora: Path, tmp_path: Path) -> None:
    sizes = _photo_sizes(corpora)
    assert len(sizes) > 100
    samples = _random_samples(random.Random(7), sizes)
    # the real COCO boxes of coco256, on their own images
    document = json.loads(
        (corpora / "detection/coco256/coco_json/instances_train2017.json").read_text()
    )
    boxes: dict[int, list[Annotation]] = {}
    for entry in document["annotations"]:
        x, y, w, h = (float(v) for v in entry["bbox"])
        boxes.setdefault(entry["image_id"], []).append(Annotation(0, (x, y, w, h), score=0.5))
    for image in document["images"]:
        found = boxes.get(image["id"], [])
        samples.append(_sample(10_000 + image["id"], image["width"], image["height"], found))
    labels = _read_ls(_tasks_file(tmp_path, samples, model_version=MODEL), predictions=True)
    assert _assert_same(samples, labels) > 2000
    cvat.write_xml(tmp_path / "annotations.xml", samples, _categories(), lambda s: s.id)
    assert _assert_same(samples, cvat.read(open_tree(str(tmp_path / "annotations.xml")))) > 2000


def _export(tasks: list[dict[str, Any]], review: Any = None) -> list[dict[str, Any]]:
    """Label Studio's JSON export after annotator 7 accepted each task's prediction.

    ``review`` may change a task's accepted result (a reviewer's edits).
    """
    exported = []
    for index, written in enumerate(tasks):
        task_id, stamp = 101 + index, "2024-06-03T10:0%d:00.000000Z"
        (prediction,) = written["predictions"]
        accepted = [
            {k: v for k, v in r.items() if k != "score"} | {"origin": "prediction"}
            for r in prediction["result"]
        ]
        if review is not None:
            accepted = review(index, accepted)
        annotation = {
            "id": 501 + index,
            "completed_by": 7,
            "result": accepted,
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": stamp % 1,
            "updated_at": stamp % 2,
            "draft_created_at": None,
            "lead_time": 12.5,
            "prediction": {},
            "result_count": len(accepted),
            "unique_id": f"5d1c2b8e-0000-4000-8000-{index:012d}",
            "import_id": None,
            "last_action": None,
            "task": task_id,
            "project": 3,
            "updated_by": 7,
            "parent_prediction": 901 + index,
            "parent_annotation": None,
            "last_created_by": None,
        }
        stored = {
            "id": 901 + index,
            "created_ago": "2 hours, 5 minutes",
            "cluster": None,
            "neighbors": None,
            "mislabeling": 0.0,
            "created_at": stamp % 0,
            "updated_at": stamp % 0,
            "model": None,
            "model_run": None,
            "task": task_id,
            "project": 3,
            **prediction,
        }
        exported.append(
            {
                "id": task_id,
                "annotations": [annotation],
                "drafts": [],
                "predictions": [stored],
                "data": written["data"],
                "meta": {},
                "created_at": stamp % 0,
                "updated_at": stamp % 2,
                "inner_id": index + 1,
                "total_annotations": 1,
                "cancelled_annotations": 0,
                "total_predictions": 1,
                "comment_count": 0,
                "unresolved_comment_count": 0,
                "last_comment_updated_at": None,
                "project": 3,
                "updated_by": 7,
                "comment_authors": [],
            }
        )
    return exported


def _sent(tmp_path: Path, samples: list[Sample]) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(
        _tasks_file(tmp_path, samples, model_version=MODEL).read_text(encoding="utf-8")
    )
    return loaded


def test_accepted_predictions_come_back_as_the_annotators(tmp_path: Path) -> None:
    rng = random.Random(3)
    samples = _random_samples(
        rng, [(rng.randint(50, 4000), rng.randint(50, 4000)) for _ in range(60)]
    )
    path = tmp_path / "export" / "project-3-at-2024-06-03.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_export(_sent(tmp_path, samples)), indent=2))
    labels = _read_ls(path, predictions=False)
    unscored = [
        _sample(i, s.width, s.height, [Annotation(a.category_id, a.bbox) for a in s.annotations])
        for i, s in enumerate(samples)
    ]
    _assert_same(unscored, labels)  # same boxes and classes; a person's labels have no score
    for item, sample in zip(labels.items, samples, strict=True):
        assert item.annotators == ["7"]
        assert {a.annotator for a in item.annotations} <= {"7"}
        # the region ids are the prediction's: each names the annotation that was sent
        indexes = [labelstudio.annotation_index(a.attributes["ls_id"]) for a in item.annotations]
        assert indexes == list(range(len(sample.annotations)))
    # the predictions beside them still read as the model's, scores and all
    _assert_same(samples, _read_ls(path, predictions=True))


def test_a_reviewers_edits_are_told_apart(tmp_path: Path) -> None:
    boxes = [
        Annotation(0, (10.0, 20.0, 30.0, 40.0), score=0.35),
        Annotation(1, (1.0, 2.0, 3.0, 4.0), score=0.0),
    ]
    sample = _sample(0, 640, 480, boxes)

    def review(_: int, accepted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        moved = json.loads(json.dumps(accepted[0]))
        moved["value"]["x"] = 25.0
        moved["origin"] = "prediction-changed"
        drawn = json.loads(json.dumps(accepted[1])) | {"id": "Xa1b2C3d4e", "origin": "manual"}
        return [moved, drawn]  # the second prediction deleted, a new box drawn

    path = tmp_path / "export.json"
    path.write_text(json.dumps(_export(_sent(tmp_path, [sample]), review)))
    (item,) = _read_ls(path, predictions=False).items
    got = [
        (a.attributes["ls_id"], labelstudio.annotation_index(a.attributes["ls_id"]))
        for a in item.annotations
    ]
    assert got == [("0", 0), ("Xa1b2C3d4e", None)]  # kept (moved) box 0; box 1 gone; one new
    assert to_pixels(item.annotations, 640, 480)[0].bbox[0] == 160.0


def test_an_export_of_prediction_ids_only(tmp_path: Path) -> None:
    """Label Studio's JSON export may list predictions by id only (label-studio#5654)."""
    exported = _export(
        _sent(tmp_path, [_sample(0, 64, 48, [Annotation(0, (1, 2, 3, 4), score=0.5)])])
    )
    exported[0]["predictions"] = [901]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(exported))
    with pytest.raises(PixelpipeError, match=r"export\.json: 1 predictions are listed by id only"):
        _read_ls(path, predictions=True)
    labels = _read_ls(path, predictions=False)  # the annotations still read
    assert labels.notes["ls_predictions_ignored"] == 1


def _categories() -> list[Category]:
    return [Category(i, n) for i, n in NAMES.items()]


def test_cvat_scores_and_boxes_come_back_exactly(tmp_path: Path) -> None:
    rng = random.Random(1)
    samples = _random_samples(
        rng, [(rng.randint(1, 8000), rng.randint(1, 8000)) for _ in range(300)]
    )
    path = tmp_path / "annotations.xml"
    cvat.write_xml(path, samples, _categories(), lambda s: s.id)
    labels = cvat.read(open_tree(str(path)))
    assert _assert_same(samples, labels) > 1200
    sources = {
        (a.score is None, a.attributes["source"]) for i in labels.items for a in i.annotations
    }
    assert sources == {(False, "auto"), (True, "manual")}


def _cvat_export(samples: list[Sample]) -> str:
    """What CVAT exports after the task was reviewed: its dumper's layout and rounding.

    Corners and points are written with 2 decimals; every shape carries every declared
    attribute (the score's default, 0, on the boxes a person drew); one box is added.
    """
    labels = "".join(
        f"<label><name>{n}</name><color>#33ddff</color><type>any</type><attributes><attribute>"
        "<name>score</name><mutable>False</mutable><input_type>number</input_type>"
        "<default_value>0</default_value><values>0\n1\n0.000001</values></attribute>"
        "</attributes></label>"
        for n in NAMES.values()
    )
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<annotations>",
        "  <version>1.1</version>",
        f"  <meta><task><id>12</id><name>review</name><size>{len(samples)}</size>"
        "<mode>annotation</mode><overlap>0</overlap><bugtracker></bugtracker>"
        "<created>2024-06-03 09:00:00.000000+00:00</created>"
        "<updated>2024-06-03 11:00:00.000000+00:00</updated><subset>default</subset>"
        "<start_frame>0</start_frame><stop_frame>0</stop_frame><frame_filter></frame_filter>"
        f"<segments></segments><owner><username>admin</username><email></email></owner>"
        f"<assignee></assignee><labels>{labels}</labels></task>"
        "<dumped>2024-06-03 11:05:00.000000+00:00</dumped></meta>",
    ]
    for index, sample in enumerate(sorted(samples, key=lambda s: s.id)):
        lines.append(
            f'  <image id="{index}" name="{sample.id}" width="{sample.width}" '
            f'height="{sample.height}">'
        )
        for annotation in [*sample.annotations, Annotation(0, (1.0, 1.0, 2.0, 2.0))]:
            label, (x, y, w, h) = NAMES[annotation.category_id], annotation.bbox
            source = "manual" if annotation.score is None else "auto"
            score = "0" if annotation.score is None else repr(annotation.score)
            inner = f'<attribute name="score">{score}</attribute>'
            if annotation.attributes.get(IMAGE_LABEL):
                lines.append(f'    <tag label="{label}" source="{source}">{inner}</tag>')
            elif annotation.polygons:
                pts = annotation.polygons[0]
                points = ";".join(
                    f"{a:.2f},{b:.2f}" for a, b in zip(pts[::2], pts[1::2], strict=True)
                )
                lines.append(
                    f'    <polygon label="{label}" source="{source}" occluded="0" '
                    f'points="{points}" z_order="0">{inner}</polygon>'
                )
            else:
                lines.append(
                    f'    <box label="{label}" source="{source}" occluded="0" xtl="{x:.2f}" '
                    f'ytl="{y:.2f}" xbr="{x + w:.2f}" ybr="{y + h:.2f}" z_order="0">{inner}</box>'
                )
        lines.append("  </image>")
    lines.append("</annotations>")
    return "\n".join(lines) + "\n"


def test_a_cvat_export_reads_back(tmp_path: Path) -> None:
    rng = random.Random(5)
    samples = _random_samples(
        rng, [(rng.randint(20, 4000), rng.randint(20, 4000)) for _ in range(40)]
    )
    folder = tmp_path / "job_12_dataset"
    folder.mkdir()
    (folder / "annotations.xml").write_text(_cvat_export(samples), encoding="utf-8")
    labels = cvat.read(open_tree(str(folder)))
    assert [c.name for c in labels.categories] == list(NAMES.values())
    drawn = Annotation(0, (1.0, 1.0, 2.0, 2.0))  # the box a reviewer added, no score
    reviewed = [
        _sample(i, s.width, s.height, [*s.annotations, drawn]) for i, s in enumerate(samples)
    ]
    # CVAT rounds corners to 2 decimals: 0.005 px, and 0.01 px for a width or height
    _assert_same(reviewed, labels, tolerance=0.01 + 1e-9)
    assert labels.notes["cvat_manual_scores_ignored"] > len(samples)
