"""Augment: deterministic albumentations copies of images, with their boxes and masks."""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, ValidationInfo, field_validator

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    PixelpipeError,
    Pixels,
    Problem,
    StageContext,
    StageParams,
    StageResult,
    chunk_size,
    stage,
)
from stages._augment.collect import Collector
from stages._augment.jobs import Jobs, Sent
from stages._augment.recipe import BoxRules, albumentations, load_recipe
from stages._augment.worker import Job, Settings, augment_chunk, derived_id, is_jpeg_path

CHUNK_SIZE = 8  # images per work item; a speed knob, not a param (params change outputs)
CACHE_NAMESPACE = "augment.copies"
REPORT_FILE = "report.json"
DROP_VISIBILITY = 0.999
"""``outside: drop`` keeps only boxes with at least this fraction of their area inside."""
_SHOWN_FAILURES = 100
I64 = npt.NDArray[np.int64]


class Params(StageParams):
    """Params of the ``augment`` stage."""

    copies: int = Field(default=1, ge=0)
    """Augmented copies made of every eligible image (the original is kept as well)."""
    splits: list[str] = ["train"]
    """Splits whose images are augmented when the split is already known (split before
    augment). Images with no split yet are always augmented; the ``split`` stage then
    removes the copies whose parent lands outside its ``augmented_splits``."""
    target_per_class: int = Field(default=0, ge=0)
    """Class-balanced oversampling: a class found in fewer eligible images than this gets
    extra copies of the images holding it, until originals plus copies reach about this
    many images (capped by ``max_copies``). 0: every eligible image gets ``copies``."""
    max_copies: int = Field(default=8, ge=0)
    """Most copies of one image, oversampling included (at least ``copies``)."""
    min_visibility: float = Field(default=0.3, ge=0.0, le=1.0)
    """A box keeping less than this fraction of its area inside the image after a
    transform is dropped (and counted); the others are clipped to the image."""
    outside: Literal["clip", "drop"] = "clip"
    """Boxes that leave the image in part: ``clip`` them to the image (when at least
    ``min_visibility`` of them stays inside), or ``drop`` every such box."""
    min_box_size: float = Field(default=1.0, ge=0.0)
    """Boxes narrower or lower than this many pixels after the transforms are dropped."""
    jpeg_quality: int = Field(default=95, ge=1, le=100)
    """Quality of the copies of JPEG images; copies of other images are lossless PNG."""
    id_tag: str = Field(default="aug", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    """Copies are named ``<parent stem>.<id_tag><copy><ext>`` (``cat.jpg`` ->
    ``cat.aug0.jpg``); give a second augment stage of a pipeline another tag."""
    seed: int = 0
    """Stage seed: each copy's seed derives from (seed, parent id, copy index)."""

    @field_validator("max_copies")
    @classmethod
    def _cap_covers_copies(cls, value: int, info: ValidationInfo) -> int:
        copies = info.data.get("copies")
        if isinstance(copies, int) and value < copies:
            raise ValueError(f"must be at least copies ({copies})")
        return value


def class_pairs(annotations: pa.ChunkedArray) -> tuple[I64, I64]:
    """The distinct ``(row, category id)`` pairs of a manifest's annotations column."""
    rows = np.asarray(pc.list_parent_indices(annotations).to_numpy(zero_copy_only=False), np.int64)
    flat = pc.list_flatten(annotations)
    if not len(flat):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    cats = np.asarray(pc.struct_field(flat, "category_id").to_numpy(zero_copy_only=False), np.int64)
    pairs = np.unique(np.stack([rows, cats], axis=1), axis=0)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def plan_copies(rows: I64, cats: I64, images: int, params: Params) -> tuple[I64, dict[int, int]]:
    """Copies per eligible image, and the extra copies each class asks for.

    Every image gets ``copies``. With ``target_per_class``, a class held by ``n`` images
    asks for ``ceil(target / n) - 1 - copies`` extra copies of each of them (when
    positive); an image gets the largest ask among its classes, capped by ``max_copies``.

    Args:
        rows: Image (row) of each distinct ``(image, class)`` pair.
        cats: Category id of each pair.
        images: Number of eligible images.
        params: The stage params.
    """
    counts = np.full(images, params.copies, dtype=np.int64)
    extra: dict[int, int] = {}
    if params.target_per_class and rows.size:
        ids, held = np.unique(cats, return_counts=True)
        ask = np.ceil(params.target_per_class / held).astype(np.int64) - 1 - params.copies
        ask = np.maximum(ask, 0)
        extra = {int(c): int(a) for c, a in zip(ids.tolist(), ask.tolist(), strict=True) if a > 0}
        best = np.zeros(images, dtype=np.int64)
        np.maximum.at(best, rows, ask[np.searchsorted(ids, cats)])
        counts += best
    return np.minimum(counts, params.max_copies), extra


def _seed(ctx_rng: Any, sample_id: str, copy: int) -> int:
    return int(ctx_rng(sample_id, copy).integers(0, 2**63))


def _sent(ctx: StageContext, job: Job) -> tuple[Job, Pixels]:
    """A job as a worker gets it, with what it reads the image from."""
    return job, ctx.pixels(job.image)


@functools.cache
def _library_versions() -> tuple[str, str]:
    """The versions of albumentations and OpenCV: a new one may move pixels or boxes."""
    import cv2

    return str(albumentations().__version__), str(cv2.__version__)


@stage(
    "augment",
    params=Params,
    configs={"recipe": "albumentations recipe, as A.save(..., data_format='yaml') writes it"},
)
def augment(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Add augmented copies of images, reproducible to the byte and traced to their parent.

    The recipe is albumentations' own serialization (``A.save(t, path,
    data_format="yaml")`` or what ``A.to_dict`` prints). The stage sets its box
    parameters from the dataset: COCO boxes with the class and annotation index as label
    fields, ``min_visibility`` and ``min_box_size`` from params, boxes clipped to the
    image; instance masks (polygons, RLE) move with the image when present. Each copy's
    seed derives from (``seed``, parent id, copy index) and is set right before the
    recipe runs on it, so copies are byte-identical across runs and worker counts.

    Every original passes through unchanged. A copy is a new sample with ``parent`` set
    to the original's id, the original's split, group, tags and other columns, its own
    pixels (JPEG for JPEG parents, PNG otherwise) and labels, and the transforms actually
    applied with their parameters as JSON in the ``augment`` column (with the recipe
    digest and the seed: enough to regenerate and explain it). Boxes dropped by the
    transforms are counted per reason and class in the metrics and ``report.json``.

    The copies of each image are a per-item cache entry, keyed by the image's sha256,
    labels and id, the copies asked, the recipe, ``seed``, ``jpeg_quality`` and the
    albumentations and OpenCV versions: a rerun decodes only the images whose copies were
    not made before (new images, changed labels, more copies) and links the others' pixels
    from the project's object store.

    ```yaml
    # pipelines/default.yaml
    stages:
      augment:
        kind: augment
        inputs: validate
        configs:
          recipe: configs/augment/default.yaml
    # params.yaml
    augment:
      copies: 1                 # per eligible image
      splits: [train]           # when splits are known; unsplit images are always eligible
      target_per_class: 0       # e.g. 200: oversample rare classes toward 200 images
      max_copies: 8
      min_visibility: 0.3       # boxes less visible than this are dropped
      outside: clip             # or: drop (any box leaving the image)
      min_box_size: 1.0         # pixels
      seed: 0
    ```
    """
    (dataset,) = inputs
    table = dataset.table
    if "recipe" not in ctx.configs:
        raise PixelpipeError(
            Problem(
                "the augment stage needs `configs: {recipe: configs/augment/default.yaml}`",
                key=f"stages.{ctx.stage}.configs",
            )
        )
    recipe_path = ctx.configs["recipe"]
    shown = os.path.relpath(recipe_path, ctx.root)
    visibility = params.min_visibility
    if params.outside == "drop":
        visibility = max(visibility, DROP_VISIBILITY)
    recipe = load_recipe(recipe_path, shown, BoxRules(visibility, params.min_box_size))

    splits = table.column("split")
    wanted = pa.array(params.splits, pa.string())
    eligible_mask = pc.fill_null(pc.or_kleene(pc.is_null(splits), pc.is_in(splits, wanted)), True)
    eligible = table.filter(eligible_mask)
    pair_rows, pair_cats = class_pairs(eligible.column("annotations"))
    counts, extra = plan_copies(pair_rows, pair_cats, eligible.num_rows, params)
    chosen = np.flatnonzero(counts > 0).tolist()
    work_table = eligible.take(pa.array(chosen, pa.int64())) if chosen else eligible.slice(0, 0)
    work_counts = [int(counts[i]) for i in chosen]
    jobs = Jobs(work_table, work_counts, functools.partial(_seed, ctx.rng), params.id_tag)
    _check_ids(table, jobs, params, ctx)

    out = DatasetBuilder(dataset.categories)
    out.add_table(table)
    names = {c.id: c.name for c in dataset.categories}
    collect = Collector(jobs, ctx.images, out)
    work = functools.partial(
        augment_chunk, Settings(recipe.text, recipe.digest, params.jpeg_quality)
    )
    # What decides the copies besides a job's content (see Job.content): the recipe with
    # its box rules, the seeds, the encoding, and the libraries that make the pixels.
    salt = (recipe.digest, params.seed, params.jpeg_quality, _library_versions())
    # The cache keeps a copy's metadata and sha256, not its pixels: `take` stores a computed
    # copy's bytes and drops them from the result before the cache writes it (after its
    # block of results is consumed); a cached copy's pixels are linked by sha256.
    again: list[int] = []
    with ctx.progress(len(jobs), "augmenting") as advance:
        results = ctx.cached_map(
            CACHE_NAMESPACE,
            salt,
            work,
            jobs,
            Job.content,
            advance=advance,
            largest_chunk=CHUNK_SIZE,
            keep=lambda result: not result.get("transient"),
            prepare=functools.partial(_sent, ctx),  # bytes read only for jobs computed
        )
        for row, result in enumerate(results):
            if not collect.take(row, result):
                again.append(row)
    if again:  # cached copies whose images were collected from the object store
        ctx.log.info("%d images augmented again: their copies were collected", len(again))
        redo = Sent(jobs, again, ctx.pixels)
        size = chunk_size(len(redo), ctx.executor.workers, CHUNK_SIZE)
        for row, result in zip(again, ctx.executor.map_chunks(work, redo, size), strict=True):
            collect.take(row, result)
    collect.flush()
    tally = collect.tally

    if tally.failures and not tally.made:
        first_id, first_error = tally.failures[0]
        raise PixelpipeError(
            Problem(
                f"the recipe failed on every image (first: {first_id}: {first_error})", file=shown
            )
        )
    for sample_id, error in (tally.undecodable + tally.failures)[:10]:
        ctx.log.warning("%s: no copy made: %s", sample_id, error)

    before = Counter(pair_cats.tolist())
    report = {
        "recipe": {"file": shown, "digest": recipe.digest, "transforms": list(recipe.transforms)},
        "eligible_images": eligible.num_rows,
        "copies": {"requested": tally.requested, "made": tally.made},
        "classes": [
            {
                "category_id": cid,
                "name": names.get(cid, str(cid)),
                "images_before": before.get(cid, 0),
                "images_after": before.get(cid, 0) + tally.images_with.get(cid, 0),
                "instances_in_copies": tally.instances.get(cid, 0),
                "extra_copies_asked": extra.get(cid, 0),
                "boxes_dropped": {
                    reason: per.get(cid, 0) for reason, per in sorted(tally.dropped.items())
                },
            }
            for cid in sorted(set(before) | set(names))
        ],
        "undecodable": [{"id": i, "error": e} for i, e in tally.undecodable[:_SHOWN_FAILURES]],
        "failed_copies": [{"id": i, "error": e} for i, e in tally.failures[:_SHOWN_FAILURES]],
    }
    (ctx.output_dir / REPORT_FILE).write_text(
        json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    dropped_total = sum(sum(per.values()) for per in tally.dropped.values())
    metrics: dict[str, Any] = {
        "recipe_digest": recipe.digest,
        "eligible_images": eligible.num_rows,
        "augmented_images": len(chosen),
        "oversampled_images": int((counts > params.copies).sum()),
        "copies_requested": tally.requested,
        "copies_made": tally.made,
        "copies_failed": len(tally.failures),
        "images_undecodable": len(tally.undecodable),
        "boxes_in_parents": tally.boxes_in,
        "boxes_kept": tally.boxes_kept,
        "boxes_dropped": dropped_total,
        **{
            f"boxes_dropped_{reason}": sum(per.values())
            for reason, per in sorted(tally.dropped.items())
        },
    }
    return StageResult(output=out, metrics=metrics)


def _check_ids(table: pa.Table, jobs: Jobs, params: Params, ctx: StageContext) -> None:
    """Copies' ids must be new: not an input id, not another copy's."""
    taken = set(table.column("id").to_pylist())
    seen: set[str] = set()
    clashes: list[str] = []
    ids = jobs.table.column("id").to_pylist()
    images = jobs.table.column("image").to_pylist()
    for sample_id, image, count in zip(ids, images, jobs.counts, strict=True):
        jpeg = is_jpeg_path(image)
        for k in range(count):
            new = derived_id(sample_id, params.id_tag, k, jpeg)
            if new in taken or new in seen:
                clashes.append(new)
            seen.add(new)
    if clashes:
        raise PixelpipeError(
            Problem(
                f"{len(clashes)} copy ids are already taken (first: {clashes[0]}); "
                "set another id_tag",
                file="params.yaml",
                key=f"{ctx.stage}.id_tag",
            )
        )
