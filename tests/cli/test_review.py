"""``pixelpipe review import`` from the command line: where the reviews go, and wrong stages."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml
from review_tools import label_studio_export

Run = Callable[..., subprocess.CompletedProcess[str]]
REPO = Path(__file__).resolve().parents[2]
PIPELINE = "pipelines/model-loop.yaml"


def test_an_import_with_no_reviews_file_set_writes_one_and_says_where(
    project: Path, run: Run
) -> None:
    for name in ("model-loop.yaml", "model-loop.params.yaml"):
        shutil.copy(REPO / "pipelines" / name, project / "pipelines" / name)
    params_file = project / "pipelines" / "model-loop.params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["route"]["reviewed"] = ""
    params_file.write_text(yaml.safe_dump(params))
    run(["pixelpipe", "demo", "--predictions"], project)
    for stage in ("pool", "route"):
        run(["pixelpipe", "run", stage, "--pipeline", PIPELINE], project)
    queue = json.loads((project / "data" / "route" / "review" / "labelstudio.json").read_text())
    (project / "export.json").write_text(json.dumps(label_studio_export(queue, "rev@lab.org")))
    done = run(["pixelpipe", "review", "import", "export.json", "--pipeline", PIPELINE], project)
    assert "set `route.reviewed: reviews/route.json` in pipelines/model-loop.params.yaml" in (
        done.stdout
    )
    reviews = json.loads((project / "reviews" / "route.json").read_text())["reviews"]
    assert len(reviews) == len(queue)
    wrong = run(
        [
            "pixelpipe",
            "review",
            "import",
            "export.json",
            "--pipeline",
            PIPELINE,
            "--stage",
            "select",
        ],
        project,
        check=False,
    )
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "error: --stage select: a stage of kind 'select', not 'route'"
