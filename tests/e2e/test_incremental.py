"""Reruns cost what changed: a data drop is decoded once, and cached results are exact.

Every Python process of ``dvc repro`` (and its workers) logs the sha256 of each image it
opens with PIL (``tests/support/decodes/sitecustomize.py``), so the test sees exactly which
images a rerun decoded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from PIL import Image
from shell import env

from pixelpipe import Dataset

pytestmark = pytest.mark.e2e
DECODES = Path(__file__).parents[1] / "support" / "decodes"
STAGES = ("ingest", "dedupe", "validate", "augment", "split", "publish")


def _repro(project: Path, log: Path | None = None, **extra: str) -> str:
    if log is not None:
        extra = {**extra, "PYTHONPATH": str(DECODES), "PIXELPIPE_TEST_DECODES": str(log)}
    result = subprocess.run(
        ["dvc", "repro"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env=env(PIXELPIPE_TRACKING="off", PIXELPIPE_WORKERS="2", **extra),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _project(root: Path, source: Path) -> Path:
    subprocess.run(["pixelpipe", "init", str(root)], env=env(), check=True, capture_output=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["source"] = str(source)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run(["pixelpipe", "compile"], cwd=root, env=env(), check=True, capture_output=True)
    return root


def _add_image(source: Path) -> str:
    """A data drop: one new photo and its box, appended to the COCO file."""
    with Image.open(source / "images" / "clock.jpg") as photo:
        photo.crop((10, 20, 180, 200)).save(source / "images" / "clock_new.jpg", quality=90)
    coco_file = source / "annotations.json"
    coco = json.loads(coco_file.read_text())
    image_id = max(i["id"] for i in coco["images"]) + 1
    coco["images"].append(
        {"id": image_id, "file_name": "clock_new.jpg", "width": 170, "height": 180}
    )
    coco["annotations"].append(
        {
            "id": max(a["id"] for a in coco["annotations"]) + 1,
            "image_id": image_id,
            "category_id": coco["annotations"][0]["category_id"],
            "bbox": [30.0, 40.0, 60.0, 70.0],
            "area": 4200.0,
            "iscrowd": 0,
            "segmentation": [],
        }
    )
    coco_file.write_text(json.dumps(coco))
    return hashlib.sha256((source / "images" / "clock_new.jpg").read_bytes()).hexdigest()


def test_a_rerun_after_a_data_drop_decodes_only_the_new_image(
    demo_raw: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    shutil.copytree(demo_raw, source)
    project = _project(tmp_path / "project", source)
    first_log = tmp_path / "first.log"
    _repro(project, first_log)
    first = first_log.read_text().split()
    assert len(set(first)) >= 38 and "unknown" not in first  # every image decoded once or more

    new_sha = _add_image(source)
    log = tmp_path / "rerun.log"
    output = _repro(project, log)
    assert all(f"Running stage '{s}'" in output for s in STAGES)
    decoded = set(log.read_text().split())
    derived = {
        s.sha256 for s in Dataset(project / "data/augment").samples() if s.parent == "clock_new.jpg"
    }
    assert new_sha in decoded
    assert decoded <= {new_sha} | derived, "the rerun decoded images that did not change"

    fresh = _project(tmp_path / "fresh", source)  # the same data, nothing cached
    _repro(fresh, PIXELPIPE_CACHE="off")
    for stage in STAGES:
        for name in ("samples.parquet", "removed.parquet", "dataset.json"):
            assert (project / "data" / stage / name).read_bytes() == (
                fresh / "data" / stage / name
            ).read_bytes(), f"{stage}/{name}: a cached rerun differs from a fresh run"
