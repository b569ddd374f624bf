"""Augment on a rerun: copies come from the per-item cache, only new images are decoded."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from pixelpipe import Annotation, Category, DatasetBuilder, Sample
from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.runner import run_stage
from stages._augment.recipe import BoxRules, load_recipe
from stages._augment.worker import Copy, Job, Settings, augment_chunk, encode

REPO = Path(__file__).resolve().parents[2]
CATEGORIES = [Category(1, "box"), Category(2, "blob")]


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")
    monkeypatch.delenv("PIXELPIPE_CACHE", raising=False)
    monkeypatch.delenv("PIXELPIPE_CACHE_DIR", raising=False)
    monkeypatch.delenv("PIXELPIPE_OBJECTS_DIR", raising=False)


def _image(index: int) -> tuple[str, np.ndarray, list[Annotation]]:
    pixels = np.random.default_rng(index).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    boxes = [Annotation(1 + index % 2, (4.0 + index, 6.0, 20.0, 16.0))]
    return f"img{index:02d}.{'jpg' if index % 2 else 'png'}", pixels, boxes


def _project(root: Path, images: int, copies: int = 2) -> Path:
    """A ``src`` dataset of ``images`` images and an ``augment`` stage over it."""
    builder = DatasetBuilder(CATEGORIES)
    for index in range(images):
        name, pixels, boxes = _image(index)
        data = encode(pixels, name.endswith(".jpg"), 95)
        path = root / "data" / "src" / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        builder.add(Sample(name, f"data/src/images/{name}", sha, 64, 48, name, annotations=boxes))
    write_dataset(root / "data" / "src", builder, stage="src", kind="ingest", params={}, inputs={})
    (root / "configs").mkdir(exist_ok=True)
    shutil.copyfile(REPO / "configs" / "augment" / "default.yaml", root / "configs" / "r.yaml")
    stages = {
        "src": {"kind": "ingest"},
        "augment": {"kind": "augment", "inputs": ["src"], "configs": {"recipe": "configs/r.yaml"}},
    }
    (root / "pipelines").mkdir(exist_ok=True)
    (root / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"stages": stages}))
    params = {"src": {}, "augment": {"copies": copies, "seed": 3}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _snapshot(root: Path) -> dict[str, str]:
    out = root / "data" / "augment"
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every ``PIL.Image.open`` call of the test (the real function still runs)."""
    calls: list[object] = []
    real: Callable[..., Any] = Image.open

    def counting(fp: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fp)
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting)
    return calls


def _augment(root: Path, **env: str) -> dict[str, str]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        run_stage(root, "augment", "pipelines/p.yaml", workers=1)
    return _snapshot(root)


def test_a_rerun_decodes_only_new_images_and_matches_an_uncached_run(
    tmp_path: Path, opened: list[object]
) -> None:
    root = _project(tmp_path / "cached", 6)
    _augment(root)
    assert len(opened) == 6  # each parent decoded once for its two copies
    _project(root, 7)  # one new image arrives
    opened.clear()
    rerun = _augment(root)
    assert len(opened) == 1
    fresh = _augment(_project(tmp_path / "uncached", 7), PIXELPIPE_CACHE="off")
    assert rerun == fresh
    assert len([p for p in rerun if p.startswith("images/")]) == 14

    # Object store collected: the cached copies are computed again, to the same bytes.
    shutil.rmtree(root / ".pixelpipe" / "objects")
    opened.clear()
    assert _augment(root) == fresh
    assert len(opened) == 7

    # The cache holds the copies' metadata and sha256 (one entry per image), never pixels.
    with sqlite3.connect(root / ".pixelpipe" / "cache" / "items.sqlite") as db:
        entries, largest = db.execute("SELECT COUNT(*), MAX(size) FROM items").fetchone()
    smallest_copy = min(
        p.stat().st_size for p in (root / "data" / "augment" / "images").rglob("*.*")
    )
    assert entries == 7 and largest < min(smallest_copy, 4096)


def test_more_copies_decode_each_image_once_and_keep_the_first_copies(
    tmp_path: Path, opened: list[object]
) -> None:
    root = _project(tmp_path, 4, copies=1)
    _augment(root)
    before = {r["id"]: r["sha256"] for r in Dataset(root / "data" / "augment").table.to_pylist()}
    _project(root, 4, copies=2)
    opened.clear()
    _augment(root)
    after = {r["id"]: r["sha256"] for r in Dataset(root / "data" / "augment").table.to_pylist()}
    assert len(opened) == 4  # copy 1 of each image is new
    assert {k: after[k] for k in before} == before and len(after) == 12
    fresh = _augment(_project(tmp_path / "uncached", 4, copies=2), PIXELPIPE_CACHE="off")
    assert _snapshot(root) == fresh


def test_an_unreadable_parent_is_reported_and_not_cached(tmp_path: Path) -> None:
    root = _project(tmp_path, 3, copies=1)
    missing = root / "data" / "src" / "images" / "img01.jpg"
    kept = missing.read_bytes()
    missing.unlink()
    run_stage(root, "augment", "pipelines/p.yaml", workers=1)
    metrics = Dataset(root / "data" / "augment").info
    assert "img01.aug0.jpg" not in set(Dataset(root / "data" / "augment").table["id"].to_pylist())
    assert metrics["counts"]["samples"] == 5
    missing.write_bytes(kept)  # the file is back: its copy is made, not a stale failure
    run_stage(root, "augment", "pipelines/p.yaml", workers=1)
    assert "img01.aug0.jpg" in set(Dataset(root / "data" / "augment").table["id"].to_pylist())


def test_a_worker_makes_the_same_copy_from_a_path_or_the_bytes(tmp_path: Path) -> None:
    name, pixels, boxes = _image(0)
    path = tmp_path / name
    path.write_bytes(encode(pixels, False, 95))
    annotations = [
        {"category_id": a.category_id, "bbox": list(a.bbox), "polygons": None, "rle": None}
        for a in boxes
    ]
    job = Job(name, f"data/src/images/{name}", "0" * 64, annotations, False, (Copy(0, 7),))
    loaded = load_recipe(REPO / "configs" / "augment" / "default.yaml", "r", BoxRules(0.3, 1.0))
    settings = Settings(loaded.text, loaded.digest, 95)
    (by_path,) = augment_chunk(settings, [(job, str(path))])
    (by_bytes,) = augment_chunk(settings, [(job, path.read_bytes())])  # a worker elsewhere
    (made,) = by_path["copies"]
    assert made == by_bytes["copies"][0]
    assert made["sha256"] == hashlib.sha256(made["data"]).hexdigest() and made["ext"] == ".png"
    (gone,) = augment_chunk(settings, [(job, str(tmp_path / "gone.png"))])
    assert gone["transient"] and gone["undecodable"].startswith("cannot read: FileNotFoundError")
    (broken,) = augment_chunk(settings, [(job, b"not an image")])
    assert "transient" not in broken and broken["undecodable"].startswith("cannot decode: ")
