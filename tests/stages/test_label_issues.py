"""The label_issues stage, run by the real runner: on the demo photos with planted label errors
and a model's predictions ingested beside them, and on small manifests written directly."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from pixelpipe.dataset import Annotation, Category, Dataset, DatasetBuilder, Sample, write_dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.errors import PixelpipeError
from pixelpipe.project.demo import build

COLUMNS = ["label_quality", "label_issue"]
PLANTED = {"motorcycle.jpg": "overlooked", "launchpad.jpg": "swapped", "cat.jpg": "badly_located"}


def _pipeline(root: Path, name: str, stages: dict[str, Any], params: dict[str, Any]) -> str:
    (root / "pipelines").mkdir(exist_ok=True)
    (root / "pipelines" / f"{name}.params.yaml").write_text(yaml.safe_dump(params))
    (root / "pipelines" / f"{name}.yaml").write_text(
        yaml.safe_dump({"params": f"pipelines/{name}.params.yaml", "stages": stages})
    )
    return f"pipelines/{name}.yaml"


def _plant(raw: Path) -> None:
    """A detector that finds every demo object (0.98, boxes a pixel or two off), and alice's
    labels with one error of each kind."""
    coco = json.loads((raw / "annotations.json").read_text())
    ids = {image["file_name"]: image["id"] for image in coco["images"]}
    predictions = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": [a["bbox"][0] + 1.5, a["bbox"][1] - 1.0, a["bbox"][2] - 2.0, a["bbox"][3] + 1],
            "score": 0.98,
        }
        for a in coco["annotations"]
    ]
    kept = []
    for ann in coco["annotations"]:
        if ann["image_id"] == ids["motorcycle.jpg"]:
            continue  # overlooked: alice saw the motorcycle photo and drew nothing
        if ann["image_id"] == ids["launchpad.jpg"]:
            ann["category_id"] = 1  # swapped: the rocket labelled a person
        if ann["image_id"] == ids["cat.jpg"]:
            ann["bbox"][0] += 380  # badly located: the cat's box 380 px to the right
        kept.append(ann)
    coco["annotations"] = kept
    (raw / "annotations.json").write_text(json.dumps(coco))
    (raw / "predictions.json").write_text(json.dumps(predictions))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo photos and alice's labels with planted errors, the detector's predictions
    ingested beside them, and label_issues run on them."""
    root = tmp_path_factory.mktemp("issues")
    raw = root / "data" / "raw" / "demo"
    build(raw)
    _plant(raw)
    labels = {
        "source": "data/raw/demo",
        "annotations": [{"path": "annotations.json", "annotator": "alice"}],
        "predictions": [{"path": "predictions.json", "model": "detector"}],
    }
    stages = {
        "labels": {"kind": "ingest"},
        "issues": {"kind": "label_issues", "inputs": "labels"},
        "loose": {"kind": "label_issues", "inputs": "labels"},
    }
    params = {
        "labels": labels,
        "issues": {"model": "detector"},
        "loose": {"threshold": 0.5, "worst": 1},
    }
    pipeline = _pipeline(root, "issues", stages, params)
    for stage in ("labels", "issues", "loose"):
        run_stage(root, stage, pipeline, workers=1)
    return root


def test_each_planted_error_is_flagged_with_its_reason_and_nothing_else(project: Path) -> None:
    rows = Dataset(project / "data" / "issues").table.to_pylist()
    flagged = {r["id"]: r["label_issue"] for r in rows if r["label_issue"] is not None}
    assert flagged == PLANTED
    for row in rows:
        has_predictions = any(a["annotator"] == "detector" for a in row["annotations"])
        if row["id"] in PLANTED:
            assert row["label_quality"] < 0.5
        elif has_predictions:  # labelled by alice and predicted: scored, clean
            assert row["label_quality"] > 0.8
        else:  # nothing predicted (unlabelled demo photos, crops that lost their objects)
            assert row["label_quality"] is None


def test_the_dataset_passes_through_with_two_new_columns(project: Path) -> None:
    before = Dataset(project / "data" / "labels")
    after = Dataset(project / "data" / "issues")
    assert after.table.drop_columns(COLUMNS).equals(before.table)
    assert after.table.schema.field("label_quality").type == pa.float64()
    assert after.table.schema.field("label_issue").type == pa.string()
    assert after.categories == before.categories
    assert after.removed().num_rows == 0


def test_report_json_lists_the_flagged_images_worst_first_with_their_boxes(
    project: Path,
) -> None:
    report = json.loads((project / "data" / "issues" / "report.json").read_text())
    flagged = report["flagged"]
    assert [e["score"] for e in flagged] == sorted(e["score"] for e in flagged)
    entries = {e["id"]: e for e in flagged}
    assert {i: e["reasons"] for i, e in entries.items()} == {i: [r] for i, r in PLANTED.items()}
    moto = entries["motorcycle.jpg"]
    assert moto["labels"] == [] and moto["annotator"] == "alice"
    assert [(p["category"], p["reasons"]) for p in moto["predictions"]] == [
        ("motorcycle", ["overlooked"])
    ]
    rocket = entries["launchpad.jpg"]
    assert [(b["category"], b["reasons"]) for b in rocket["labels"]] == [("person", ["swapped"])]
    assert [p["category"] for p in rocket["predictions"]] == ["rocket"]
    cat = entries["cat.jpg"]["labels"]
    assert [(b["bbox"][0], b["reasons"]) for b in cat] == [(380.0, ["badly_located"])]
    assert {c["name"] for c in report["class_cuts"]} >= {"cat", "person", "motorcycle"}
    assert all(0 < c["cut"] <= 0.2 for c in report["class_cuts"])


def test_metrics_count_images_scored_flagged_and_by_reason(project: Path) -> None:
    metrics = json.loads((project / "reports" / "issues.json").read_text())
    assert metrics["flagged"] == 3
    assert metrics["by_reason"] == {"overlooked": 1, "badly_located": 1, "swapped": 1}
    assert metrics["boxes_flagged"] == 3
    assert metrics["scored"] + metrics["no_predictions"] + metrics["unlabelled"] == 38
    rows = Dataset(project / "data" / "issues").table.column("label_quality").to_pylist()
    assert metrics["scored"] == sum(q is not None for q in rows)
    plot = json.loads((project / "reports" / "plots" / "issues" / "reasons.json").read_text())
    assert sorted((r["reason"], r["images"]) for r in plot) == [
        ("badly_located", 1),
        ("overlooked", 1),
        ("swapped", 1),
    ]


def test_report_html_draws_each_flagged_photo_worst_first(project: Path) -> None:
    html = (project / "data" / "issues" / "report.html").read_text()
    assert len(re.findall(r'src="data:image/jpeg;base64,', html)) == 3
    order = [html.index(f'alt="{name}') for name in ("motorcycle.jpg", "launchpad.jpg")]
    assert order == sorted(order) and 'alt="cat.jpg' in html
    assert "Flagged, worst first (3 of 3)" in html
    assert "<!doctype html>" in html and "detector" in html


def test_a_number_threshold_flags_by_label_quality_and_worst_limits_the_page(
    project: Path,
) -> None:
    first = Dataset(project / "data" / "issues").table.to_pylist()
    loose = Dataset(project / "data" / "loose").table.to_pylist()
    low = {r["id"] for r in first if r["label_quality"] is not None and r["label_quality"] <= 0.5}
    assert {r["id"] for r in loose if r["label_issue"] is not None} == low
    assert low >= set(PLANTED)
    html = (project / "data" / "loose" / "report.html").read_text()
    assert len(re.findall(r'src="data:image/jpeg;base64,', html)) == 1
    assert f"Flagged, worst first (1 of {len(low)})" in html


# Small manifests written directly: boxes only, images that are not on disk.

CATEGORIES = [Category(1, "cat"), Category(2, "dog")]


def box(x: float, category: int, annotator: str | None, score: float | None = None) -> Annotation:
    return Annotation(category, (x, 10.0, 40.0, 40.0), score=score, annotator=annotator)


def sample(number: int, annotations: list[Annotation], **extra: Any) -> Sample:
    return Sample(
        id=f"img{number:02d}.jpg",
        image=f"data/raw/img{number:02d}.jpg",
        sha256=f"{number:064x}",
        width=300,
        height=100,
        source=f"img{number:02d}.jpg",
        annotations=annotations,
        extra=extra,
    )


def scene(number: int, annotators: tuple[str, ...] = ("alice",)) -> list[Annotation]:
    """A cat and a dog, each annotator's labels and a model's predictions of them."""
    out = [box(10, 1, "net", 0.99), box(150, 2, "net", 0.99)]
    for name in annotators:
        out += [box(10, 1, name), box(150, 2, name)]
    return out


def _run(root: Path, samples: list[Sample], params: dict[str, Any], source: str = "labels") -> str:
    builder = DatasetBuilder(CATEGORIES)
    for one in samples:
        builder.add(one)
    write_dataset(
        root / "data" / source, builder, stage=source, kind="ingest", params={}, inputs={}
    )
    stages = {source: {"kind": "ingest"}, "issues": {"kind": "label_issues", "inputs": source}}
    pipeline = _pipeline(root, "small", stages, {source: {}, "issues": params})
    run_stage(root, "issues", pipeline, workers=1)
    return pipeline


def test_each_annotators_labels_are_checked_separately(tmp_path: Path) -> None:
    samples = [sample(n, scene(n, ("alice", "bob"))) for n in range(8)]
    samples[2].annotations[-1].category_id = 1  # bob calls the dog a cat
    _run(tmp_path, samples, {"model": "net"})
    rows = Dataset(tmp_path / "data" / "issues").table.to_pylist()
    assert {r["id"]: r["label_issue"] for r in rows if r["label_issue"]} == {"img02.jpg": "swapped"}
    report = json.loads((tmp_path / "data" / "issues" / "report.json").read_text())
    assert [(e["id"], e["annotator"]) for e in report["flagged"]] == [("img02.jpg", "bob")]
    assert report["counts"]["label_sets"] == 16


def test_image_labels_and_other_annotators_are_left_out(tmp_path: Path) -> None:
    samples = [sample(n, scene(n)) for n in range(8)]
    whole = Annotation(
        2, (0.0, 0.0, 300.0, 100.0), annotator="alice", attributes={"image_label": True}
    )
    samples[1].annotations.append(whole)  # a class label of the whole image: not a box
    samples[4].annotations.append(box(250, 1, "carol"))  # carol is not checked
    samples[6].annotations = [a for a in samples[6].annotations if a.annotator != "alice"]
    _run(tmp_path, samples, {"model": "net", "labels": ["alice"]})
    rows = Dataset(tmp_path / "data" / "issues").table.to_pylist()
    assert all(r["label_issue"] is None for r in rows)
    assert rows[6]["label_quality"] is None  # nobody checked labelled it: not scored
    metrics = json.loads((tmp_path / "reports" / "issues.json").read_text())
    assert (metrics["scored"], metrics["unlabelled"], metrics["no_predictions"]) == (7, 1, 0)


def test_an_earlier_runs_columns_are_replaced(tmp_path: Path) -> None:
    samples = [sample(n, scene(n), label_quality=0.0, label_issue="swapped") for n in range(4)]
    _run(tmp_path, samples, {})
    table = Dataset(tmp_path / "data" / "issues").table
    assert table.column_names.count("label_quality") == 1
    assert table.column("label_issue").to_pylist() == [None] * 4
    assert all(q > 0.9 for q in table.column("label_quality").to_pylist())


def test_without_predictions_nothing_is_scored_and_a_warning_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        _run(tmp_path, [sample(n, [box(10, 1, "alice")]) for n in range(3)], {})
    table = Dataset(tmp_path / "data" / "issues").table
    assert table.column("label_quality").to_pylist() == [None] * 3
    assert "no box has a score, so no label is checked" in caplog.text
    metrics = json.loads((tmp_path / "reports" / "issues.json").read_text())
    assert (metrics["scored"], metrics["no_predictions"]) == (0, 3)


def test_an_empty_manifest_passes_through(tmp_path: Path) -> None:
    _run(tmp_path, [], {"model": None})
    assert Dataset(tmp_path / "data" / "issues").table.num_rows == 0
    assert json.loads((tmp_path / "reports" / "issues.json").read_text())["images"] == 0


def _two_models(n: int) -> Sample:
    return sample(n, [*scene(n), box(10, 1, "other", 0.5)])


@pytest.mark.parametrize(
    ("samples", "params", "message"),
    [
        # a typo in the model's name
        (
            [sample(0, scene(0))],
            {"model": "nte"},
            r"pipelines/small.params.yaml issues.model: no annotator 'nte' in the input "
            r"\(did you mean 'net'\?\)",
        ),
        # a label annotator the input does not have
        ([sample(0, scene(0))], {"labels": ["alicia"]}, r"issues.labels: no annotator 'alicia'"),
        # the model checked as labels
        ([sample(0, scene(0))], {"model": "net", "labels": ["net"]}, r"both the model and a"),
        # the model's annotations have no score
        ([sample(0, scene(0))], {"model": "alice"}, r"'alice' has no box with a score"),
        # two sources of scored boxes and no model named
        ([_two_models(0)], {}, r"several annotators \(net, other\): name the model"),
    ],
)
def test_params_naming_the_wrong_annotators_are_refused(
    tmp_path: Path, samples: list[Sample], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(PixelpipeError, match=message):
        _run(tmp_path, samples, params)


def test_a_box_with_a_negative_width_is_an_error_naming_the_manifest(tmp_path: Path) -> None:
    samples = [sample(n, scene(n)) for n in range(3)]
    samples[1].annotations[2].bbox = (10.0, 10.0, -40.0, 40.0)
    with pytest.raises(
        PixelpipeError,
        match=r"data/labels/samples.parquet: image 'img01.jpg', annotator 'alice': 1 label "
        r"boxes have a value that is not a finite number or a negative width",
    ):
        _run(tmp_path, samples, {})
