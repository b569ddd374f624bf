"""Augment and split in real pipelines, with DVC, in both orders: leak-free and reproducible.

``ingest -> dedupe -> augment -> split -> publish`` (the default order) and
``ingest -> dedupe -> split -> augment -> publish`` run with ``dvc repro`` on the demo
photos. In both, the published dataset is checked from scratch: copies sit in their
parent's split and only in the augmented splits, and no two images in different splits
are near duplicates (pHash recomputed here, all pairs compared by brute force). Two clean
projects, one run with 2 workers and one with 1, record identical output hashes in
``dvc.lock``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pixelpipe.dataset import Dataset
from pixelpipe.imaging import hamming
from pixelpipe.imaging.hashing import hash_files, to_words

REPO = Path(__file__).resolve().parents[3]
RECIPE = "configs/augment/default.yaml"
NEAR = 10  # the split stage's default near_distance

pytestmark = pytest.mark.e2e

ORDERS = {
    "augment then split": {
        "ingest": {"kind": "ingest"},
        "dedupe": {"kind": "dedupe", "inputs": "ingest"},
        "augment": {"kind": "augment", "inputs": "dedupe", "configs": {"recipe": RECIPE}},
        "split": {"kind": "split", "inputs": "augment"},
        "publish": {"kind": "publish", "inputs": "split"},
    },
    "split then augment": {
        "ingest": {"kind": "ingest"},
        "dedupe": {"kind": "dedupe", "inputs": "ingest"},
        "split": {"kind": "split", "inputs": "dedupe"},
        "augment": {"kind": "augment", "inputs": "split", "configs": {"recipe": RECIPE}},
        "publish": {"kind": "publish", "inputs": "augment"},
    },
}
PARAMS: dict[str, Any] = {
    "ingest": {},
    "dedupe": {},
    "augment": {"copies": 2, "target_per_class": 6},
    "split": {},
    "publish": {},
}


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, check=False,
        env={**os.environ, **env}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result


def _configure(root: Path, stages: dict[str, Any]) -> None:
    (root / "configs" / "augment").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / RECIPE, root / RECIPE)
    (root / "pipelines" / "default.yaml").write_text(
        yaml.safe_dump({"stages": stages}, sort_keys=False)
    )
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    _run(["pixelpipe", "compile"], root)


def _outs(root: Path) -> dict[str, str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {
        f"{name}:{out['path']}": out["md5"]
        for name, stage in lock["stages"].items()
        for out in stage.get("outs", [])
    }


def _assert_leak_free(root: Path) -> dict[str, int]:
    final = Dataset(root / "data" / "publish").table.to_pylist()
    split_of = {r["id"]: r["split"] for r in final}
    originals = [r for r in final if r["parent"] is None]
    copies = [r for r in final if r["parent"] is not None]
    assert copies, "the pipeline made no copies"
    for row in copies:
        assert split_of[row["parent"]] == row["split"] == "train", row["id"]
    assert {r["id"] for r in originals} == set(
        Dataset(root / "data" / "dedupe").table.column("id").to_pylist()
    )
    batch = hash_files([root / r["image"] for r in originals])
    report = json.loads((root / "data" / "split" / "report.json").read_text())
    assert int((~batch.ok).sum()) == report["groups"]["unhashed"] <= 1  # the truncated photo
    hashed = [r for r, ok in zip(originals, batch.ok.tolist(), strict=True) if ok]
    pairs = hamming.brute_force_pairs(to_words(batch.codes[batch.ok]), NEAR)
    crossing = [
        (hashed[i]["id"], hashed[j]["id"])
        for i, j in zip(pairs.i.tolist(), pairs.j.tolist(), strict=True)
        if hashed[i]["split"] != hashed[j]["split"]
    ]
    assert not crossing
    assert report["leak_check"]["result"] == "clean"
    for split in ("train", "val", "test"):
        assert (
            root / "data" / "publish" / "coco" / "annotations" / f"instances_{split}.json"
        ).is_file()
    return {s: sum(1 for r in originals if r["split"] == s) for s in ("train", "val", "test")}


def _project(parent: Path, order: str, workers: int) -> Path:
    """A fresh project (``pixelpipe init`` + ``demo``) with ``order``'s pipeline, reproduced."""
    root = parent / "project"
    _run(["pixelpipe", "init", str(root)], parent)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "init"], root)
    _run(["pixelpipe", "demo"], root)
    _configure(root, ORDERS[order])
    _run(["dvc", "repro"], root, PIXELPIPE_WORKERS=str(workers), PIXELPIPE_TRACKING="off")
    return root


@pytest.fixture(scope="module")
def default_order(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default order, reproduced with 2 workers (shared by the tests below)."""
    return _project(tmp_path_factory.mktemp("default"), "augment then split", workers=2)


def test_augment_then_split_is_leak_free(default_order: Path) -> None:
    sizes = _assert_leak_free(default_order)
    assert sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    removed = Dataset(default_order / "data" / "split").removed().to_pylist()
    assert removed and {r["reason"] for r in removed} == {"outside_augmented_splits"}


def test_split_then_augment_is_leak_free(tmp_path: Path) -> None:
    root = _project(tmp_path, "split then augment", workers=2)
    sizes = _assert_leak_free(root)
    assert sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    assert Dataset(root / "data" / "split").removed().num_rows == 0


def test_two_clean_runs_record_identical_output_hashes(default_order: Path, tmp_path: Path) -> None:
    other = _project(tmp_path, "augment then split", workers=1)
    first, second = _outs(default_order), _outs(other)
    assert {k for k in first if k.split(":")[1].startswith("data/")} == {
        f"{s}:data/{s}" for s in ORDERS["augment then split"]
    }
    differ = {
        k: (first.get(k), second.get(k))
        for k in set(first) | set(second)
        if first.get(k) != second.get(k)
    }
    assert not differ  # every output, the metrics files included
    status = _run(["dvc", "status"], other, PIXELPIPE_TRACKING="off")
    assert "up to date" in status.stdout
