"""End to end with real DVC in a temporary git repo: init, demo, repro, reruns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from pycocotools.coco import COCO

Run = Callable[..., CompletedProcess[str]]

pytestmark = pytest.mark.e2e


def _ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_demo_pipeline_end_to_end(demo_project: Path, run: Run) -> None:
    root = demo_project
    first = run(["dvc", "repro"], root, PIXELPIPE_TRACKING="on")
    assert _ran(first.stdout) == ["ingest", "dedupe", "validate", "augment", "split", "publish"]
    assert json.loads((root / "reports" / "publish.json").read_text())["mlflow_run_id"]

    coco = COCO(str(root / "data" / "publish" / "coco" / "annotations.json"))
    assert sorted(coco.getCatIds()) == [1, 4, 17, 47, 50, 85, 91]
    assert coco.loadCats(91)[0]["name"] == "rocket"
    published = json.loads((root / "data" / "publish" / "dataset.json").read_text())["counts"]
    assert len(coco.getImgIds()) == published["samples"]
    assert set(published["splits"]) == {"train", "val", "test"}
    for image in coco.loadImgs(coco.getImgIds()):
        assert (root / "data" / "publish" / "coco" / image["file_name"]).is_file()
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
