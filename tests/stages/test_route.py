"""The route stage on the model-loop demo, and the review round trip through both tools' files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from review_tools import label_studio_export

from pixelpipe.dataset import Dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import cvat
from pixelpipe.formats.base import ReadOptions
from pixelpipe.project.model_demo import build_model_loop
from pixelpipe.review.imports import import_export
from pixelpipe.review.reviews import load_reviews
from pixelpipe.sources import open_tree

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "pipelines/model-loop.yaml"


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that ingested the demo's pool with its predictions and routed them."""
    root = tmp_path_factory.mktemp("loop")
    build_model_loop(root / "data" / "raw" / "model-loop")
    (root / "pipelines").mkdir()
    for name in ("model-loop.yaml", "model-loop.params.yaml"):
        shutil.copy(REPO / "pipelines" / name, root / "pipelines" / name)
    params = yaml.safe_load((root / "pipelines" / "model-loop.params.yaml").read_text())
    params["route"]["reviewed"] = "reviews/route.json"
    (root / "pipelines" / "model-loop.params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("pool", "route"):
        run_stage(root, stage, PIPELINE, workers=1)
    return root


def _queue(root: Path) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = json.loads(
        (root / "data" / "route" / "review" / "labelstudio.json").read_text()
    )
    return tasks


def test_every_box_lands_in_one_band_and_every_image_somewhere(routed: Path) -> None:
    metrics = json.loads((routed / "reports" / "route.json").read_text())
    predictions = json.loads(
        (routed / "data" / "raw" / "model-loop" / "predictions_pool.json").read_text()
    )
    assert metrics["boxes_accept"] + metrics["boxes_review"] + metrics["boxes_discard"] == len(
        predictions
    )
    assert sum(1 for p in predictions if p["score"] >= 0.9) == metrics["boxes_accept"]
    assert sum(1 for p in predictions if p["score"] < 0.7) == metrics["boxes_discard"]
    pool = len(Dataset(routed / "data" / "pool"))
    out = Dataset(routed / "data" / "route")
    reasons = [r["reason"] for r in out.removed().to_pylist()]
    assert len(out) + len(reasons) == pool
    assert len(out) == metrics["images_accepted"]
    assert reasons.count("review") == metrics["images_review"] > 0
    # accepted images keep only accepted boxes
    scores = [a["score"] for r in out.table.to_pylist() for a in r["annotations"]]
    assert all(s >= 0.9 for s in scores)


def test_the_queue_sorts_riskiest_first_in_label_studio_and_carries_scores_to_cvat(
    routed: Path,
) -> None:
    queue = _queue(routed)
    sent = json.loads((routed / "data" / "route" / "review" / "sent.json").read_text())["images"]
    assert len(queue) == len(sent)
    for task in queue:
        prediction = task["predictions"][0]
        scores = [region["score"] for region in prediction["result"]]
        # an image whose boxes were all discarded goes with none (and no task score)
        assert prediction.get("score") == (min(scores) if scores else None)
        for region in prediction["result"]:
            value = region["value"]
            assert 0 <= value["x"] <= 100 and 0 <= value["width"] <= 100
    labels = cvat.read(
        open_tree(str(routed / "data" / "route" / "review" / "cvat.xml")), ReadOptions()
    )
    back = {i.image: sorted((a.bbox, a.score) for a in i.annotations) for i in labels.items}
    for sid, entry in sent.items():
        expected = sorted((tuple(b["bbox"]), b["score"]) for b in entry["boxes"])
        got = back[sid]
        assert [s for _, s in got] == [s for _, s in expected]
        for (box, _), (want, _) in zip(got, expected, strict=True):
            assert box == pytest.approx(want, abs=1e-6)


def test_an_untouched_review_comes_back_unchanged_to_the_float(
    routed: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export.json"
    export.write_text(json.dumps(label_studio_export(_queue(routed), "rev@lab.org")))
    stage_dir, input_dir = routed / "data" / "route", routed / "data" / "pool"
    reviews = routed / "reviews" / "route.json"
    done = import_export(export, stage_dir, input_dir, reviews, "reviews/route.json")
    sent = json.loads((stage_dir / "review" / "sent.json").read_text())["images"]
    assert done.images == len(sent)
    assert done.changes["unchanged"] == sum(len(e["boxes"]) for e in sent.values())
    assert done.changes["moved"] == done.changes["relabelled"] == done.changes["added"] == 0
    for sid, review in load_reviews(reviews, "reviews").items():
        for label, box in zip(review.labels, sent[sid]["boxes"], strict=True):
            assert label["class"] == box["class"]
            assert label["bbox"] == pytest.approx(box["bbox"], abs=1e-6)
    # the rerun lets the reviewed images through, with the reviewer as annotator
    run_stage(routed, "route", PIPELINE, workers=1)
    out = Dataset(routed / "data" / "route")
    rows = {r["id"]: r for r in out.table.to_pylist()}
    assert set(sent) <= set(rows)
    assert {a["annotator"] for sid in sent for a in rows[sid]["annotations"]} <= {"rev@lab.org"}
    metrics = json.loads((routed / "reports" / "route.json").read_text())
    assert metrics["images_reviewed"] == len(sent)
    reviews.unlink()
    run_stage(routed, "route", PIPELINE, workers=1)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # a task from another project: an image this stage never sent
        ("foreign", "not an image this stage sent to review"),
        # an export edited by hand into invalid JSON
        ("broken", "invalid JSON"),
    ],
)
def test_what_was_not_sent_is_refused_and_nothing_is_written(
    routed: Path, tmp_path: Path, edit: str, message: str
) -> None:
    tasks = label_studio_export(_queue(routed), "rev@lab.org")
    if edit == "foreign":
        tasks[0]["data"]["image"] = "/data/local-files/?d=elsewhere/photo.jpg"
    text = json.dumps(tasks)
    export = tmp_path / "export.json"
    export.write_text(text[:-40] if edit == "broken" else text)
    reviews = tmp_path / "reviews.json"
    with pytest.raises(PixelpipeError, match=message) as raised:
        import_export(
            export, routed / "data" / "route", routed / "data" / "pool", reviews, "reviews.json"
        )
    assert not reviews.exists()
    if edit == "broken":  # the line names the user's file, not a copy of it
        assert str(raised.value).startswith(f"{export}:")


def test_peoples_labels_stay_and_only_the_models_boxes_go_to_review(routed: Path) -> None:
    """On the labelled photos: a queued image sends the model's boxes, never the people's."""
    pipeline = yaml.safe_load((routed / "pipelines" / "model-loop.yaml").read_text())
    pipeline["stages"]["check"] = {"kind": "route", "inputs": "labelled"}
    pipeline["params"] = "pipelines/mixed.params.yaml"
    (routed / "pipelines" / "mixed.yaml").write_text(yaml.safe_dump(pipeline))
    params = yaml.safe_load((routed / "pipelines" / "model-loop.params.yaml").read_text())
    params["check"] = {"model": "detector", "audit": 1.0}
    (routed / "pipelines" / "mixed.params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("labelled", "check"):
        run_stage(routed, stage, "pipelines/mixed.yaml", workers=1)
    sent = json.loads((routed / "data" / "check" / "review" / "sent.json").read_text())["images"]
    people = {
        r["id"]: [a for a in r["annotations"] if a["annotator"] != "detector"]
        for r in Dataset(routed / "data" / "labelled").table.to_pylist()
    }
    assert sent and all(box["score"] is not None for e in sent.values() for box in e["boxes"])
    assert {e["sent_for"] for e in sent.values()} <= {"review", "audit"}
    # every image went (audit 1.0), each with the model's boxes only
    assert set(sent) == set(people)
    tasks = json.loads((routed / "data" / "check" / "review" / "labelstudio.json").read_text())
    assert sum(len(t["predictions"][0]["result"]) for t in tasks) == sum(
        len(e["boxes"]) for e in sent.values()
    )
