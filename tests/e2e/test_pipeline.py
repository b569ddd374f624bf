"""End to end with real DVC in a temporary git repo: init, demo, repro, reruns."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from pycocotools.coco import COCO

from pixelpipe import Dataset

Run = Callable[..., CompletedProcess[str]]
GOLDEN = Path(__file__).parent / "golden" / "demo_publish.json"

pytestmark = pytest.mark.e2e


def _ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def published_labels(folder: Path) -> dict[str, Any]:
    """What the demo's published dataset holds, without the JPEG bytes (encoder-specific).

    Ids, splits, sizes, parents, boxes (to 1e-4 px) and the class map: a refactoring that
    changes any decision of any stage changes this.
    """
    dataset = Dataset(folder)
    return {
        "categories": [c.to_json() for c in dataset.categories],
        "samples": [
            [
                s.id,
                s.split,
                s.width,
                s.height,
                s.parent,
                [[a.category_id, [round(v, 4) for v in a.bbox]] for a in s.annotations],
            ]
            for s in dataset.samples()
        ],
    }


def golden_text(value: dict[str, Any]) -> str:
    """One category and one sample a line, so a diff shows what changed."""
    rows = [json.dumps(c) for c in value["categories"]]
    samples = [json.dumps(s) for s in value["samples"]]
    return (
        '{"categories": [\n'
        + ",\n".join(rows)
        + '\n],\n"samples": [\n'
        + ",\n".join(samples)
        + "\n]}\n"
    )


def test_demo_pipeline_end_to_end(demo_project: Path, run: Run) -> None:
    root = demo_project
    first = run(["dvc", "repro"], root, PIXELPIPE_TRACKING="on")
    assert _ran(first.stdout) == ["ingest", "dedupe", "validate", "augment", "split", "publish"]
    # The MLflow run is linked outside what DVC tracks (reports/runs/, git-ignored).
    assert "mlflow_run_id" not in (root / "reports" / "publish.json").read_text()
    link = json.loads((root / "reports" / "runs" / "publish.json").read_text())
    assert link["run_id"]
    if os.environ.get("PIXELPIPE_UPDATE_GOLDEN"):
        GOLDEN.write_text(golden_text(published_labels(root / "data" / "publish")))
    assert published_labels(root / "data" / "publish") == json.loads(GOLDEN.read_text())

    published = json.loads((root / "data" / "publish" / "dataset.json").read_text())["counts"]
    assert set(published["splits"]) == {"train", "val", "test"}
    exported = root / "data" / "publish" / "coco"
    for split, count in published["splits"].items():
        coco = COCO(str(exported / "annotations" / f"instances_{split}.json"))
        assert sorted(coco.getCatIds()) == [1, 4, 17, 47, 50, 85, 91]
        assert coco.loadCats(91)[0]["name"] == "rocket"
        assert len(coco.getImgIds()) == count
        for image in coco.loadImgs(coco.getImgIds()):
            assert (exported / "images" / split / image["file_name"]).is_file()
    metrics = json.loads((root / "reports" / "ingest.json").read_text())
    assert metrics["removed_by_reason"] == {"unreadable": 1}

    status = run(["dvc", "status"], root)
    assert "up to date" in status.stdout

    again = run(["dvc", "repro"], root)
    assert _ran(again.stdout) == []

    # A param change reruns that stage and what reads it, nothing upstream.
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("near: true", "near: false"))
    changed = run(["dvc", "repro"], root)
    assert _ran(changed.stdout) == ["dedupe", "validate", "augment", "split", "publish"]
    metrics = json.loads((root / "reports" / "dedupe.json").read_text())
    assert metrics["removed_by_reason"] == {"duplicate": 1}  # only the byte-identical copy

    # New source files rerun ingest and what reads it.
    (root / "data" / "raw" / "demo" / "images" / "extra.jpg").write_bytes(
        (root / "data" / "raw" / "demo" / "images" / "cat.jpg").read_bytes()
    )
    grown = run(["dvc", "repro"], root)
    assert _ran(grown.stdout)[0] == "ingest"
    shown = run(["pixelpipe", "show", "data/ingest"], root).stdout
    assert "unlisted" in shown and "extra.jpg" in shown
