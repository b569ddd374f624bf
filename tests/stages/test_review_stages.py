"""The agreement and consensus stages on the review demo, run by the real runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pixelpipe.dataset import Dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.errors import PixelpipeError
from pixelpipe.project.review_demo import build_review

REPO = Path(__file__).resolve().parents[2]


def _pipeline(root: Path, name: str, stages: dict[str, object], params: dict[str, object]) -> str:
    (root / "pipelines" / f"{name}.params.yaml").write_text(yaml.safe_dump(params))
    (root / "pipelines" / f"{name}.yaml").write_text(
        yaml.safe_dump({"params": f"pipelines/{name}.params.yaml", "stages": stages})
    )
    return f"pipelines/{name}.yaml"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that ran the repository's review pipeline up to consensus."""
    root = tmp_path_factory.mktemp("review")
    build_review(root / "data" / "raw" / "review", 3)
    (root / "pipelines").mkdir()
    for name in ("review.yaml", "review.params.yaml"):
        (root / "pipelines" / name).write_text((REPO / "pipelines" / name).read_text())
    for stage in ("labels", "agreement", "consensus"):
        run_stage(root, stage, "pipelines/review.yaml", workers=1)
    return root


def test_ingest_keeps_every_annotators_labels_side_by_side(project: Path) -> None:
    dataset = Dataset(project / "data" / "labels")
    rows = dataset.table.to_pylist()
    assert len(rows) == 33
    # carol skipped the last three images; the expert (gold) saw all of them
    seen = {r["id"]: r["annotated_by"] for r in rows}
    assert sum("carol" not in who for who in seen.values()) == 3
    assert all({"alice", "bob", "expert"} <= set(who) for who in seen.values())
    annotators = {a["annotator"] for r in rows for a in r["annotations"]}
    assert annotators == {"alice", "bob", "carol", "expert"}
    # classes matched by name: each annotator's file numbered them differently
    names = {c.name for c in dataset.categories}
    assert {"person", "cat", "cup", "spoon", "rocket"} <= names
    assert len(names) == len(dataset.categories)


def test_agreement_reports_figures_and_scores_against_the_gold_annotator(project: Path) -> None:
    report = json.loads((project / "data" / "agreement" / "report.json").read_text())
    assert sorted(report["annotators"]) == ["alice", "bob", "carol"]  # gold left out
    assert report["gold"]["name"] == "expert"
    metrics = json.loads((project / "reports" / "agreement.json").read_text())
    assert 0.5 < metrics["krippendorff_alpha"] < 1.0
    for name in ("alice", "bob", "carol"):
        assert 0.5 < metrics[f"gold_accuracy_{name}"] <= 1.0
    plot = json.loads((project / "reports" / "plots" / "agreement" / "annotators.json").read_text())
    assert sorted(row["annotator"] for row in plot) == ["alice", "bob", "carol"]
    # the dataset passes through unchanged
    assert (
        Dataset(project / "data" / "agreement").content_digest()
        == Dataset(project / "data" / "labels").content_digest()
    )


def test_consensus_labels_every_image_and_lists_what_it_did_not_decide(project: Path) -> None:
    dataset = Dataset(project / "data" / "consensus")
    rows = dataset.table.to_pylist()
    assert len(rows) == 33
    labels = [a for r in rows for a in r["annotations"]]
    assert labels and {a["annotator"] for a in labels} == {"consensus"}
    assert all(a["score"] >= 2 / 3 for a in labels)  # quorum 0.5 of three
    review = json.loads((project / "data" / "consensus" / "review.json").read_text())
    metrics = json.loads((project / "reports" / "consensus.json").read_text())
    assert metrics["review"] == len(review)
    assert metrics["boxes_out"] == len(labels)


def test_fail_below_stops_the_stage_and_an_unknown_annotator_is_a_params_error(
    project: Path,
) -> None:
    stages = {"labels": {"kind": "ingest"}, "strict": {"kind": "agreement", "inputs": "labels"}}
    labels = yaml.safe_load((project / "pipelines" / "review.params.yaml").read_text())["labels"]
    strict = _pipeline(
        project, "strict", stages, {"labels": labels, "strict": {"fail_below": 0.99}}
    )
    # the problem names the pipeline's own params file, and how to see the worst images
    with pytest.raises(
        PixelpipeError,
        match=r"pipelines/strict.params.yaml strict.fail_below: Krippendorff's alpha is 0\.\d+, "
        r"below 0.99; to see the worst images: pixelpipe agreement data/labels",
    ):
        run_stage(project, "strict", strict, workers=1)
    typo = _pipeline(project, "typo", stages, {"labels": labels, "strict": {"gold": "expret"}})
    with pytest.raises(PixelpipeError, match=r"no annotator 'expret' .*did you mean 'expert'"):
        run_stage(project, "strict", typo, workers=1)
