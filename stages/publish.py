"""Publish: materialize the dataset in the export layouts training code reads."""

from __future__ import annotations

import json
import shutil
from pathlib import PurePosixPath
from typing import Literal

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    Sample,
    StageContext,
    StageParams,
    StageResult,
    stage,
)
from pixelpipe.formats import coco


class Params(StageParams):
    """Params of the ``publish`` stage."""

    formats: list[Literal["coco"]] = ["coco"]
    """Export layouts to write, each into ``data/<stage>/<format>/``."""


def _export_name(sample: Sample) -> str:
    return PurePosixPath("images", sample.id).as_posix()


@stage("publish", params=Params)
def publish(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Write the dataset as a COCO export; the manifest passes through unchanged.

    ``coco/annotations.json`` holds every sample (and ``coco/annotations/<split>.json``
    one file per split, once splits are assigned), with the class map's ids unchanged;
    images are copied to ``coco/images/<sample id>``.

    ```yaml
    # pipelines/default.yaml
    stages:
      publish:
        kind: publish
        inputs: dedupe
    # params.yaml
    publish:
      formats: [coco]
    ```
    """
    (dataset,) = inputs
    samples = list(dataset.samples())
    out = DatasetBuilder(dataset.categories)
    out.add_table(dataset.table)
    exported = 0
    if "coco" in params.formats:
        target = ctx.output_dir / "coco"
        with ctx.progress(len(samples), "copying images") as advance:
            for sample in samples:
                dst = target / _export_name(sample)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ctx.root / sample.image, dst)
                exported += 1
                advance(1)
        groups: dict[str, list[Sample]] = {"": samples}
        for sample in samples:
            if sample.split:
                groups.setdefault(sample.split, []).append(sample)
        for split, members in sorted(groups.items()):
            doc = coco.dump(members, dataset.categories, _export_name)
            path = target / ("annotations.json" if not split else f"annotations/{split}.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8"
            )
    return StageResult(
        output=out, metrics={"exported_images": exported, "categories": len(dataset.categories)}
    )
