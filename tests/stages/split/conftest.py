"""Fixtures of the split tests on real data: ingested corpora, and runs of the split stage."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from pixelpipe import DatasetBuilder
from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.runner import run_stage

SplitRun = Callable[..., tuple[dict[str, str], dict[str, Any]]]


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")


def _ingest(root: Path, params: dict[str, Any]) -> Path:
    (root / "pipelines").mkdir(parents=True)
    stages = {"ingest": {"kind": "ingest"}}
    (root / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (root / "params.yaml").write_text(yaml.safe_dump({"ingest": params}))
    previous = os.environ.get("PIXELPIPE_TRACKING")
    os.environ["PIXELPIPE_TRACKING"] = "off"
    try:
        run_stage(root, "ingest", "pipelines/p.yaml", workers=2)
    finally:
        if previous is None:
            del os.environ["PIXELPIPE_TRACKING"]
        else:
            os.environ["PIXELPIPE_TRACKING"] = previous
    return root


@pytest.fixture(scope="package")
def coco256(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project holding the 128 COCO train2017 images of coco256, ingested (939 boxes)."""
    source = corpora / "detection" / "coco256"
    return _ingest(
        tmp_path_factory.mktemp("coco256"),
        {
            "source": str(source),
            "format": "coco",
            "annotations": ["coco_json/instances_train2017.json"],
            "images": "images/train2017",
        },
    )


@pytest.fixture(scope="package")
def bccd(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project holding BCCD (364 images, VOC, with ImageSets train/val/test), ingested."""
    source = corpora / "detection" / "bccd_voc" / "BCCD"
    return _ingest(tmp_path_factory.mktemp("bccd"), {"source": str(source), "format": "voc"})


@pytest.fixture
def split_run(tmp_path: Path) -> Iterator[SplitRun]:
    """``split_run(base, table, params, name=..., workers=1)``: run the split stage on a
    manifest (rows of ``base``'s ingest output); returns each kept id's split and the report."""

    def go(
        base: Path, table: pa.Table, params: dict[str, Any], name: str = "run", workers: int = 1
    ) -> tuple[dict[str, str], dict[str, Any]]:
        root = tmp_path / name
        (root / "data").mkdir(parents=True)
        (root / "data" / "ingest").symlink_to(base / "data" / "ingest")  # the images
        builder = DatasetBuilder(Dataset(base / "data" / "ingest").categories)
        builder.add_table(table)
        write_dataset(
            root / "data" / "src", builder, stage="src", kind="ingest", params={}, inputs={}
        )
        stages = {"src": {"kind": "ingest"}, "split": {"kind": "split", "inputs": ["src"]}}
        (root / "pipelines").mkdir()
        (root / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"stages": stages}))
        (root / "params.yaml").write_text(yaml.safe_dump({"src": {}, "split": params}))
        run_stage(root, "split", "pipelines/p.yaml", workers=workers)
        out = Dataset(root / "data" / "split").table
        splits = dict(
            zip(out.column("id").to_pylist(), out.column("split").to_pylist(), strict=True)
        )
        report = json.loads((root / "data" / "split" / "report.json").read_text())
        return splits, report

    yield go
