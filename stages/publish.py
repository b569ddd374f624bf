"""Publish: materialize the dataset in the export layouts training code reads."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Literal, overload

import pyarrow as pa
from pydantic import Field

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    Dependency,
    Plot,
    Sample,
    StageContext,
    StageParams,
    StageResult,
    stage,
    write_card,
)
from pixelpipe.formats.export import ExportOptions, class_ids, export, id_warnings
from pixelpipe.taxonomy import check as check_taxonomy
from stages._publish import depth, stats

CLASS_MAP = "class_map.json"
BATCH_ROWS = 1024  # manifest rows decoded into samples at a time


class Samples(Sequence[Sample]):
    """The samples of a manifest, decoded a batch at a time each time they are iterated.

    The writers go over the samples a few times; holding them all as Python objects
    would cost far more than the Arrow manifest they come from.

    Args:
        table: The manifest.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def __iter__(self) -> Iterator[Sample]:
        for batch in self.table.to_batches(max_chunksize=BATCH_ROWS):
            for row in batch.to_pylist():
                yield Sample.from_row(row)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            rows = self.table.slice(start, max(stop - start, 0)).to_pylist()[::step]
            return [Sample.from_row(row) for row in rows]
        position = index if index >= 0 else len(self) + index
        if not 0 <= position < len(self):
            raise IndexError(index)
        return Sample.from_row(self.table.slice(position, 1).to_pylist()[0])


class Params(StageParams):
    """Params of the ``publish`` stage."""

    formats: list[Literal["coco", "yolo", "voc", "imagefolder", "hf", "cvat", "labelstudio"]] = [
        "coco"
    ]
    """Export layouts to write, each into ``data/<stage>/<format>/``."""
    category_ids: Literal["auto", "preserve", "zero_based", "one_based"] = "auto"
    """Ids written: ``auto`` keeps COCO's and numbers YOLO's 0..n-1 (see docs/formats.md)."""
    voc_pixel_convention: Literal["corners", "inclusive"] = "corners"
    """VOC boxes: ``corners`` (continuous corners) or ``inclusive`` (1-based pixel indices)."""
    yolo_task: Literal["detect", "segment"] = "detect"
    """YOLO labels: ``detect`` (boxes) or ``segment`` (polygons; masks traced)."""
    yolo_include_crowd: bool = False
    """Write COCO crowd boxes into YOLO labels (Ultralytics' own converter leaves them out)."""
    labelstudio_image_prefix: str = ""
    """Label Studio image URLs start with this (a bucket, a web server); empty: local files."""
    class_depth: int | None = Field(default=None, ge=1)
    """Publish the classes at this depth of the hierarchy (1: the roots, sedans become
    vehicles); ``null``: as labelled. Deeper than the hierarchy: as labelled."""
    taxonomy: Annotated[str, Dependency(check=check_taxonomy)] = ""
    """The hierarchy ``class_depth`` reads (``configs/taxonomy/<name>.yaml``); empty: the
    class map's parents (COCO's ``supercategory``)."""


@stage(
    "publish",
    params=Params,
    plots={
        "images": Plot(x="images", y="split", title="images per split"),
        "instances": Plot(x="instances", y="class_split", title="instances per class and split"),
        "box_sizes": Plot(x="boxes", y="size_split", title="boxes by size, sqrt(w*h)"),
        "box_aspects": Plot(x="boxes", y="aspect_split", title="boxes by aspect, w/h"),
    },
)
def publish(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Write the dataset in each export format; the manifest passes through, flattened if asked.

    Every format gets the whole dataset and the same class map, in every split (samples
    without one are the split ``unassigned``); each loads in its consumers without options
    (docs/formats.md, "Exports"):

    - ``coco/``: ``annotations/instances_<split>.json`` and ``images/<split>/<id>``, as
      COCO 2017 lays it out (pycocotools, Datumaro, FiftyOne, Detectron2, supervision);
    - ``yolo/``: Ultralytics ``data.yaml`` (``train``/``val``/``test``, ``names``),
      ``images/<split>/`` and ``labels/<split>/``; boxes clipped to the image;
    - ``voc/``: ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``,
      ``labelmap.txt``;
    - ``imagefolder/``: ``<split>/<class>/<id>`` and a Hugging Face ``metadata.jsonl``;
    - ``hf/``: a Hugging Face dataset (``README.md`` card, Parquet shards under ``data/``)
      that ``datasets.load_dataset`` loads and ``push_to_hub`` uploads as it is: ``image``,
      ``objects`` (``bbox``, ``category`` as ``ClassLabel``...) and whole-image ``labels``;
      it holds a copy of the image bytes, where the other exports hard-link them;
    - ``cvat/``: ``annotations.xml`` (CVAT for images 1.1, splits as subsets) and
      ``images/``, to upload into a CVAT task;
    - ``labelstudio/``: ``tasks.json`` (the labels as annotations), ``label_config.xml``
      and ``images/``, to import into a Label Studio project.

    With ``class_depth``, every class first becomes its ancestor at that depth of the
    ``taxonomy`` (or of the class map's parents): the manifest, the class map and every
    export hold the flattened classes, kept classes keep their ids and new ancestors get
    the next ones (``stages/_publish/depth.py``).

    ``class_map.json`` lists each category (id, name, parent) with the id the COCO and
    YOLO exports write for it. Plots (``dvc plots diff v1 v2`` shows what a release
    changed): images and boxes per split, instances per class and split, box sizes and
    aspects per split; metrics: images, boxes and whole-image labels per split.

    ```yaml
    # pipelines/default.yaml
    stages:
      publish:
        kind: publish
        inputs: dedupe
    # params.yaml
    publish:
      formats: [coco, yolo]        # coco | yolo | voc | imagefolder | hf | cvat | labelstudio
      category_ids: auto           # auto | preserve | zero_based | one_based
      voc_pixel_convention: corners
      yolo_task: detect            # detect | segment
      yolo_include_crowd: false
      labelstudio_image_prefix: "" # e.g. s3://bucket/release/labelstudio/
      class_depth: null            # e.g. 1: sedan -> vehicle
      taxonomy: ""                 # e.g. configs/taxonomy/cars.yaml; "": the class map's
    ```
    """
    (dataset,) = inputs
    table, categories = dataset.table, dataset.categories
    levels: dict[str, object] = {}
    if params.class_depth is not None:
        flat = depth.flatten(dataset, params.class_depth, params.taxonomy, ctx)
        table, categories = flat.table, flat.classes.categories
        levels = {"class_depth": flat.classes.depth}
    samples = Samples(table)
    out = DatasetBuilder(categories)
    out.add_table(table)
    options = ExportOptions(
        category_ids=params.category_ids,
        pixel_convention=params.voc_pixel_convention,
        yolo_task=params.yolo_task,
        include_crowd=params.yolo_include_crowd,
        image_url_prefix=params.labelstudio_image_prefix,
    )
    ids = class_ids(categories, options, [f for f in params.formats if f in ("coco", "yolo")])
    for warning in id_warnings(ids):
        ctx.log.warning("%s", warning)
    counted = stats.collect(table)  # after flattening: instances per published class
    metrics: dict[str, object] = {
        "categories": len(categories),
        **levels,
        **stats.metrics(counted),
    }

    def image_source(sample: Sample) -> Path:
        return ctx.root / sample.image

    for fmt in dict.fromkeys(params.formats):
        with ctx.progress(len(samples), f"writing {fmt}") as advance:

            def copied(sample: Sample, target: Path) -> None:  # a link to the stored image
                out.record_file(target.relative_to(ctx.output_dir).as_posix(), sample.sha256)
                advance(1)

            counts = export(
                fmt,
                samples,
                categories,
                ctx.output_dir / fmt,
                image_source,
                options,
                copied,
            )
            advance(len(samples) - counts.get("images", 0))
        for key, value in counts.items():
            metrics[f"{fmt}_{key}"] = value
        if counts.get("images", 0) != len(samples) and fmt != "imagefolder":
            ctx.log.warning(
                "%s: %d of %d images written", fmt, counts.get("images", 0), len(samples)
            )
        for key in ("boxes_clipped", "boxes_outside", "crowd_skipped", "skipped_not_single_class"):
            if counts.get(key):
                ctx.log.warning("%s: %s = %d", fmt, key, counts[key])
    class_map = [
        {
            "id": c.id,
            "name": c.name,
            **({"parent": c.parent} if c.parent else {}),
            **{fmt: mapping[c.id] for fmt, mapping in ids.items()},
        }
        for c in sorted(categories, key=lambda c: c.id)
    ]
    (ctx.output_dir / CLASS_MAP).write_text(
        json.dumps(class_map, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    write_card(ctx, inputs, out, params)  # data/publish/README.md, the dataset card
    plots = {
        "images": stats.images_rows(counted),
        "instances": stats.instances_rows(counted, categories),
        "box_sizes": stats.histogram_rows(counted.sizes, stats.SIZE_BINS, "size", counted),
        "box_aspects": stats.histogram_rows(counted.aspects, stats.ASPECT_BINS, "aspect", counted),
    }
    return StageResult(output=out, metrics=metrics, plots=plots)
