"""pipelines/model-loop.yaml with real DVC and MLflow: route, review in Label Studio's format, rerun."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from review_tools import label_studio_export

Run = Callable[..., subprocess.CompletedProcess[str]]
REPO = Path(__file__).resolve().parents[2]


def _ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


@pytest.mark.e2e
def test_route_and_review_import_in_the_model_loop_pipeline(project: Path, run: Run) -> None:
    for name in ("model-loop.yaml", "model-loop.params.yaml"):
        shutil.copy(REPO / "pipelines" / name, project / "pipelines" / name)
    run(["pixelpipe", "demo", "--predictions"], project)
    run(["pixelpipe", "compile", "--pipeline", "pipelines/model-loop.yaml"], project)
    first = run(["dvc", "repro"], project, PIXELPIPE_TRACKING="on")
    assert set(_ran(first.stdout)) == {
        "pool",
        "route",
        "release",
        "labelled",
        "label_issues",
        "select",
    }
    assert json.loads((project / "reports" / "runs" / "route.json").read_text())["run_id"]
    queue = json.loads((project / "data" / "route" / "review" / "labelstudio.json").read_text())
    assert queue
    export = project / "export.json"
    export.write_text(json.dumps(label_studio_export(queue, "rev@lab.org")))
    imported = run(
        ["pixelpipe", "review", "import", "export.json", "--pipeline", "pipelines/model-loop.yaml"],
        project,
    )
    assert f"imported {len(queue)} reviewed images (rev@lab.org {len(queue)})" in imported.stdout
    assert "moved 0, relabelled 0, deleted 0, added 0" in imported.stdout
    second = run(["dvc", "repro"], project, PIXELPIPE_TRACKING="on")
    assert _ran(second.stdout) == ["route", "release"]
    assert "up to date" in run(["dvc", "status"], project).stdout
    metrics = json.loads((project / "reports" / "route.json").read_text())
    assert metrics["images_reviewed"] == len(queue)
    # the same export again, or one from another project, changes nothing
    export.write_text(export.read_text().replace("local-files/?d=", "local-files/?d=other/"))
    refused = run(
        ["pixelpipe", "review", "import", "export.json", "--pipeline", "pipelines/model-loop.yaml"],
        project,
        check=False,
    )
    assert refused.returncode == 1
    assert "not an image this stage sent to review" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "up to date" in run(["dvc", "status"], project).stdout
