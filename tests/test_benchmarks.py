"""Smoke runs of the benchmark helpers at a tiny size (no timings are checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from bench_pipeline import disk, link_tree, tree_bytes  # noqa: E402
from make_synthetic import Recipe, find_photos, generate  # noqa: E402


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_synthetic_images_are_deterministic_and_extend_by_index(
    corpora: Path, tmp_path: Path
) -> None:
    photos = find_photos(corpora / "photos")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    generate(Recipe(photos=photos, out=str(whole), near=0.2), 0, 30, workers=1)
    generate(Recipe(photos=photos, out=str(parts), near=0.2), 0, 20, workers=2)
    generate(Recipe(photos=photos, out=str(parts), near=0.2), 20, 10, workers=2)
    files = _files(whole)
    assert files == _files(parts)
    originals = [name for name in files if not name.endswith("_dup.jpg")]
    assert len(originals) == 30
    assert len(files) > 30  # some planted near-duplicates, beside their original
    assert all(name.startswith("class_") for name in files)


def test_make_synthetic_script_checks_its_hashes(corpora: Path, tmp_path: Path) -> None:
    out = tmp_path / "synth"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "make_synthetic.py"),
            "--count",
            "40",
            "--out",
            str(out),
            "--near-duplicates",
            "0.25",
            "--workers",
            "2",
            "--check",
            "--photos",
            str(corpora / "photos"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["images"] == 40
    assert report["files"] == 40 + report["near_duplicates"]
    assert report["check"]["distinct_pairs_within"] == 0
    assert report["check"]["planted"] == report["near_duplicates"]


def test_disk_counts_each_inode_once(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "a").mkdir(parents=True)
    (source / "a" / "x.jpg").write_bytes(b"x" * 100)
    project = tmp_path / "project"
    assert link_tree(source, project / "data" / "ingest") == 1
    (project / "data" / "dedupe").mkdir(parents=True)
    (project / "data" / "dedupe" / "samples.parquet").write_bytes(b"y" * 10)
    cache = project / ".dvc" / "cache"
    cache.mkdir(parents=True)
    os.link(project / "data" / "dedupe" / "samples.parquet", cache / "obj")
    assert tree_bytes([source, project], set()) == (110, 2)
    found = disk(project, source)
    assert found["source_bytes"] == 100
    assert found["data_bytes"] == 110
    assert found["dvc_cache_bytes"] == 10
    assert found["project_bytes_once"] == 10  # the linked image is the source's bytes
    assert found["files_per_output"] == {"dedupe": 1, "ingest": 1}


def test_agreement_benchmark_matches_its_naive_loop_at_a_tiny_size() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_agreement.py"),
            "--images",
            "50",
            "--crowded",
            "0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["images"] == 50
    # pixelpipe's Hungarian matching and its per-image loop agree exactly; the greedy
    # loop a user would write can only pair fewer boxes correctly
    assert result["f1_pixelpipe"] == result["f1_match_boxes_loop"]
    assert result["f1_naive"] <= result["f1_pixelpipe"]


def test_exports_benchmark_runs_every_measurement_at_a_tiny_size(corpora: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_exports.py"), "--images", "30"],
        capture_output=True,
        text=True,
        check=True,
    )
    runs = json.loads(done.stdout)["runs"]
    assert set(runs) == {
        "coco",
        "yolo",
        "voc",
        "cvat",
        "labelstudio",
        "hf",
        "plain_coco",
        "plain_hf",
    }
    # the exports link the images, the plain script copies them: it stores more bytes
    assert runs["coco"]["disk_mb"] < runs["plain_coco"]["disk_mb"]
    assert runs["coco"]["files"] == runs["plain_coco"]["files"] == 30 + 3
