"""pipelines/review.yaml end to end with real DVC: several annotators -> agreement -> consensus -> publish."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_review_pipeline_runs_with_dvc_on_the_review_demo(project: Path, run: Run) -> None:
    for name in ("review.yaml", "review.params.yaml"):
        shutil.copy(REPO / "pipelines" / name, project / "pipelines" / name)
    run(["pixelpipe", "demo", "--annotators", "3"], project)
    run(["pixelpipe", "compile", "--pipeline", "pipelines/review.yaml"], project)
    run(["dvc", "repro"], project)
    assert "up to date" in run(["dvc", "status"], project).stdout
    from pycocotools.coco import COCO

    coco = COCO(
        str(project / "data" / "release" / "coco" / "annotations" / "instances_unassigned.json")
    )
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(coco.getImgIds()) == 33
    assert anns and all(a["attributes"]["annotators"] for a in anns)
    agreement = json.loads((project / "reports" / "agreement.json").read_text())
    consensus = json.loads((project / "reports" / "consensus.json").read_text())
    assert 0.5 < agreement["krippendorff_alpha"] < 1.0
    assert consensus["boxes_out"] == len(anns)
    # `dvc metrics show` reads them, `dvc plots show` renders the stage's plots
    assert "krippendorff_alpha" in run(["dvc", "metrics", "show"], project).stdout
    run(["dvc", "plots", "show", "reports/plots/agreement/annotators.json"], project)
