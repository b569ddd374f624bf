"""``pixelpipe agreement`` and ``pixelpipe consensus`` on label files alone, as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pixelpipe.project.review_demo import build_review

Run = Callable[..., subprocess.CompletedProcess[str]]
ISSUE_KEYS = (
    "items",
    "annotators",
    "percent_agreement",
    "cohen_kappa_mean",
    "fleiss_kappa",
    "krippendorff_alpha",
    "box_iou_mean",
    "box_f1",
)


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The review demo: real photos, three annotators' COCO files and the gold set."""
    return Path(build_review(tmp_path_factory.mktemp("review") / "review", 3)["path"])


def _annotators(review: Path) -> list[str]:
    return sorted(str(p) for p in (review / "annotators").glob("*.json"))


def test_agreement_writes_the_figures_the_issue_names_and_scores_against_gold(
    review: Path, tmp_path: Path, run: Run
) -> None:
    result = run(
        [
            "pixelpipe",
            "agreement",
            *_annotators(review),
            "--gold",
            str(review / "gold.json"),
            "--json",
            "out/agreement.json",
            "--report",
            "out/agreement.html",
            "--images",
            str(review / "images"),
        ],
        tmp_path,
    )
    figures = json.loads((tmp_path / "out" / "agreement.json").read_text())
    for key in ISSUE_KEYS:
        assert key in figures, key
    assert sorted(figures["annotators"]) == ["alice", "bob", "carol"]
    # carol never saw three images: items have unequal rater counts, so no Fleiss' kappa
    assert figures["fleiss_kappa"] is None
    assert "same number of raters" in figures["fleiss_kappa_reason"]
    assert 0.5 < figures["krippendorff_alpha"] < 1.0
    assert 0.5 < figures["box_f1"] < 1.0
    for entry in figures["annotators"].values():
        assert 0.0 < entry["precision"] <= 1.0
        assert 0.0 < entry["recall"] <= 1.0
        assert entry["gold"]["boxes"]["confusion"]["labels"][-1] == "unmatched"
    assert "images seen: alice 33, bob 33, carol 30" in result.stdout
    page = (tmp_path / "out" / "agreement.html").read_text()
    assert "Against the gold set" in page
    assert "data:image/jpeg" in page  # the worst images, drawn


def test_an_annotator_against_a_copy_of_itself_agrees_perfectly(
    review: Path, tmp_path: Path, run: Run
) -> None:
    shutil.copy(review / "annotators" / "alice.json", tmp_path / "twin.json")
    run(
        [
            "pixelpipe",
            "agreement",
            str(review / "annotators" / "alice.json"),
            str(tmp_path / "twin.json"),
            "--json",
            "a.json",
        ],
        tmp_path,
    )
    figures = json.loads((tmp_path / "a.json").read_text())
    assert figures["box_f1"] == 1.0
    assert figures["box_iou_mean"] == 1.0
    assert figures["krippendorff_alpha"] == 1.0
    assert figures["fleiss_kappa"] == 1.0


def test_consensus_writes_coco_that_pycocotools_loads_and_a_review_list(
    review: Path, tmp_path: Path, run: Run
) -> None:
    from pycocotools.coco import COCO

    result = run(
        [
            "pixelpipe",
            "consensus",
            *_annotators(review),
            "--out",
            "merged",
            "--images",
            str(review / "images"),
        ],
        tmp_path,
    )
    coco = COCO(str(tmp_path / "merged" / "coco" / "annotations" / "instances_unassigned.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(coco.getImgIds()) == 33
    assert anns and all(a["attributes"]["annotators"] for a in anns)
    assert all(a["score"] in (2 / 3, 1.0) for a in anns)  # quorum 0.5 of 3 needs 2
    review_list = json.loads((tmp_path / "merged" / "review.json").read_text())
    assert {e["reason"] for e in review_list} <= {"below_quorum", "tie"}
    assert f"{len(review_list)} to review" in result.stdout
    assert (tmp_path / "merged" / "report.html").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # an IoU of zero would match boxes that do not overlap
        (["--iou", "0"], "error: --iou: must be in (0, 1], got 0.0"),
        # a file that is not there
        (["missing.json"], "error: missing.json: no such file"),
    ],
)
def test_user_mistakes_are_one_line(
    review: Path, tmp_path: Path, run: Run, args: list[str], message: str
) -> None:
    inputs = [] if args == ["missing.json"] else _annotators(review)
    result = run(["pixelpipe", "agreement", *inputs, *args], tmp_path, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(message)
