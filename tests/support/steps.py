"""Running a stage's step in-process, as the runner would, on one worker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from pixelpipe.dataset import Category, Dataset, DatasetBuilder, Sample, write_dataset
from pixelpipe.engine.context import StageContext
from pixelpipe.engine.executor import Executor, SerialExecutor
from pixelpipe.engine.registry import resolve


def serial_context(root: Path, stage: str, output_dir: Path) -> StageContext:
    """The context the runner gives ``stage`` (kind of the same name), with no workers."""
    return StageContext(
        stage=stage,
        kind=stage,
        root=root,
        output_dir=output_dir,
        final_dir=f"data/{stage}",
        configs={},
        seed=0,
        executor=SerialExecutor(),
    )


def ingest(
    root: Path, executor: Executor | None = None, **params: Any
) -> tuple[Dataset, dict[str, Any]]:
    """Run the ingest step in-process (on ``executor``, closed after, else serially) and
    write its dataset, as the runner does."""
    kind = resolve("ingest")
    validated = kind.params(**params)
    tmp = root / "data" / ".ingest.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ctx = serial_context(root, "ingest", tmp)
    if executor is not None:
        ctx.executor = executor
    try:
        result = kind.step([], validated, ctx)
    finally:
        ctx.executor.close()
    kept = result.output.samples_table().num_rows
    removed = result.output.removed_table().num_rows
    assert result.expected == kept + removed, "every item found is kept or removed"
    write_dataset(
        tmp,
        result.output,
        stage="ingest",
        kind="ingest",
        params=validated.model_dump(mode="json"),
        inputs={},
    )
    final = root / "data" / "ingest"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return Dataset(final), result.metrics


def removed_reasons(dataset: Dataset) -> dict[str, str]:
    return {r["id"]: r["reason"] for r in dataset.removed().to_pylist()}


def after_source(
    root: Path, samples: list[Sample], categories: list[Category], kind: str, **params: Any
) -> Path:
    """A project whose stage ``src`` already holds ``samples``, with a stage of ``kind``
    (named as the kind) after it in ``pipelines/p.yaml``, its params in ``params.yaml``."""
    builder = DatasetBuilder(categories)
    for sample in samples:
        builder.add(sample)
    write_dataset(root / "data" / "src", builder, stage="src", kind="ingest", params={}, inputs={})
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    stages = {"src": {"kind": "ingest"}, kind: {"kind": kind, "inputs": ["src"]}}
    (root / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (root / "params.yaml").write_text(yaml.safe_dump({"src": {}, kind: params}))
    return root
