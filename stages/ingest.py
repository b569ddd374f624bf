"""Ingest: read images and their labels (COCO, VOC, YOLO, image folders) from a folder or URL."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, field_validator

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    Dependency,
    PixelpipeError,
    Problem,
    StageContext,
    StageParams,
    StageResult,
    chunk_size,
    stage,
)
from pixelpipe.formats.base import (
    IMAGE_EXTENSIONS,
    has_extension,
    id_folder,
    removal_id,
    sample_id,
)
from pixelpipe.formats.pixels import DEFAULT_MAX_PIXELS
from pixelpipe.sources import (
    FileAccess,
    SourceUnavailable,
    Tree,
    credential_problem,
    name_id,
    open_tree,
)
from stages._ingest.keys import make_jobs
from stages._ingest.labels import LabelFile, PredictionFile, read_labels
from stages._ingest.parent import (
    ORIENTATION_COLUMN as ORIENTATION_COLUMN,
)
from stages._ingest.parent import (
    WARNINGS_LOGGED,
    Collector,
    Work,
    source_uri,
)
from stages._ingest.worker import Job, Result, Settings, probe_chunk

NAMESPACE = "ingest.images"
"""What the per-item cache keeps for ingest: each source file's probe, by path and stamp."""
CHUNK = 64
"""Most images per chunk sent to a worker."""
T = TypeVar("T")


class Params(StageParams):
    """Params of the ``ingest`` stage."""

    source: Annotated[str, Dependency()] = "data/raw/demo"
    """Folder, label file or URL (s3://, remote://NAME/path, gs://, https://); a DVC dependency."""
    format: Literal[
        "auto", "coco", "voc", "yolo", "labelstudio", "cvat", "csv", "imagefolder", "images"
    ] = "auto"
    """Label format; ``auto`` detects COCO, VOC, YOLO, Label Studio JSON, CVAT XML or a CSV
    (see docs/formats.md)."""
    annotations: list[str | LabelFile] = []
    """Label files in ``source`` (COCO JSON files, a YOLO data.yaml or obj.data); empty: found.
    Several annotators' files of the same images: ``{path, annotator, format}`` entries
    (see ``LabelFile``); their labels are kept side by side, classes matched by name."""
    predictions: list[PredictionFile] = []
    """Model predictions of the same images, kept beside the labels as annotations with a
    ``score`` and ``annotator`` = the model (see ``PredictionFile``)."""
    images: str = ""
    """COCO: the folder ``file_name`` is relative to, in ``source``; empty: found."""
    classes: list[str] = []
    """VOC, image folders: class names in id order; empty: labelmap.txt, else sorted names."""
    pixel_convention: Literal["corners", "inclusive"] = "corners"
    """VOC boxes: ``corners`` (CVAT, labelImg) or ``inclusive`` (the devkit's 1-based pixels)."""
    label_frame: Literal["auto", "displayed", "stored"] = "auto"
    """EXIF photos: labels drawn as displayed or on the stored pixels; ``auto`` asks the size."""
    follow_symlinks: bool = False
    """Follow symlinks that lead outside ``source`` (removed as ``unsafe_path`` by default)."""
    extensions: list[str] = list(IMAGE_EXTENSIONS)
    """File endings that are images; other files are counted as ignored, never read."""
    max_pixels: int = DEFAULT_MAX_PIXELS
    """Images with more pixels are removed as ``too_large`` before decoding (bomb guard)."""
    decode: bool = False
    """Fully decode every image to catch truncated files here (``validate`` also does this)."""
    jpeg_quality: int = Field(default=95, ge=1, le=100)
    """Quality of the JPEG or WebP written when an EXIF-rotated photo is turned upright."""

    @field_validator("source")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        problem = credential_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def _content(job: Job) -> tuple[str, str]:
    """An image's content key: its path in the source and its stamp (see ``_ingest.keys``)."""
    return job.path, job.stamp


def _cacheable(result: Result) -> bool:
    return result.cacheable


def _source_problem(error: PixelpipeError, stage_name: str) -> PixelpipeError:
    """Point a source error at the ``source`` param too."""
    return PixelpipeError(
        [
            Problem(str(p), file="params.yaml", key=f"{stage_name}.source") if p.file is None else p
            for p in error.problems
        ]
    )


@stage("ingest", params=Params, inputs=0)
def ingest(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Read images and their labels into a dataset; unusable files are removed with a reason.

    Formats: COCO, Pascal VOC, YOLO (Ultralytics, Darknet), class folders and unlabelled
    images, from a folder or any fsspec URL (see ``docs/formats.md``). Images are copied
    once into the stage output, content-addressed by SHA-256; width and height are read
    from the file. A photo with an EXIF orientation is stored upright (its labels moved
    with it when they were drawn on the stored pixels) and the original orientation is
    kept in the ``exif_orientation`` column. Sample ids are image paths relative to the
    deepest folder holding every image (for COCO, the ``file_name`` values).

    Reasons for removal: ``unreadable``, ``truncated`` (with ``decode``), ``too_large``,
    ``missing`` (listed, or a label file, without its image; a link to nothing; a file
    gone since the listing), ``unlisted`` (an image no COCO/VOC file lists), ``unsafe_path``
    (a name or symlink that escapes the source, a FIFO or other special file),
    ``size_mismatch`` (the labels' declared size is not the image's). A file name that is
    not UTF-8 is kept, its id written with ``%XX`` escapes (see docs/formats.md). Pillow's
    warnings about an image (broken EXIF...) are one log line per image, counted in
    ``image_warnings``. A source that fails for good (a bucket that went away, after
    retries) stops the stage in one line; nothing is written.

    ```yaml
    # pipelines/default.yaml
    stages:
      ingest:
        kind: ingest
    # params.yaml
    ingest:
      source: data/raw/demo      # or /abs/path, s3://bucket/prefix, remote://NAME/prefix
      format: auto               # coco | voc | yolo | imagefolder | images
      annotations: []            # e.g. [annotations/instances_train.json] or [data.yaml]
      images: ""                 # COCO images folder; "" finds it
      classes: []                # VOC / image folders: names in id order
      pixel_convention: corners  # VOC: corners | inclusive
      label_frame: auto          # EXIF photos: auto | displayed | stored
    ```
    """
    try:
        tree = open_tree(
            params.source, ctx.root, follow_symlinks=params.follow_symlinks, project=ctx.root
        )
        extensions = tuple(e.lower() for e in params.extensions)
        labels = read_labels(tree, params, extensions)
    except PixelpipeError as exc:
        raise _source_problem(exc, ctx.stage) from None
    for warning in labels.warnings:
        ctx.log.warning("%s", warning)
    out = DatasetBuilder(labels.categories)
    removed: dict[str, tuple[str, str, str]] = {}

    def remove(sid: str, reason: str, detail: str, source: str) -> None:
        # Names from label files may hold text no manifest can store (JSON's "\\udcff").
        removed.setdefault(name_id(sid), (reason, name_id(detail), name_id(source)))

    folder = id_folder(labels, extensions)
    for removal in labels.removed:
        remove(
            removal_id(removal, folder, extensions),
            removal.reason,
            removal.detail,
            tree.uri(removal.path) if removal.path else removal.id,
        )
    work: list[Work] = []
    referenced: set[str] = set()
    for item in labels.items:
        sid = sample_id(item.image, folder)
        status = tree.status(item.image)
        referenced.add(item.image)
        if status == "unsafe":
            remove(sid, "unsafe_path", f"{tree.shown(item.image)} leads outside the source", "")
        elif status == "missing":
            remove(sid, "missing", f"listed in {item.origin} but not found", tree.uri(item.image))
        else:
            work.append(
                Work(
                    sid,
                    item.image,
                    item.width,
                    item.height,
                    item.normalized,
                    item.annotations,
                    item.origin,
                    tuple(item.annotators),
                )
            )
    for link, why in sorted(tree.links_out.items()):
        if not any(r == link or r.startswith(f"{link}/") for r in referenced):
            remove(sample_id(link, folder), "unsafe_path", f"{tree.shown(link)}: {why}", "")
    found = len(work) + len(removed)
    splits = {item.image: item.split for item in labels.items}
    collect = Collector(
        out,
        ctx.images,
        tree.access,
        params.label_frame,
        lambda one, reason, detail: remove(one.id, reason, detail, tree.uri(one.path)),
        lambda one: (source_uri(tree.uri(one.path), ctx.root), splits[one.path]),
        ctx.log,
        ctx.stage,
        annotated=any(item.annotators for item in labels.items),
    )
    _read_images(ctx, params, tree.access, work, _jobs(ctx, tree, work), collect)
    for sid, (reason, detail, source) in sorted(removed.items()):
        out.remove(sid, reason, detail, source=source or None)
    if collect.warned > WARNINGS_LOGGED:
        ctx.log.warning(
            "%s: %d more images with Pillow warnings (image_warnings in the metrics)",
            ctx.stage,
            collect.warned - WARNINGS_LOGGED,
        )
    images_listed = sum(1 for f in tree.files if has_extension(f, extensions))
    ctx.log.info("%s: read as %s", tree.display, labels.format)
    metrics: dict[str, Any] = {
        "found": found,
        "files": len(tree.files),
        "hidden_files": tree.hidden,
        "ignored_files": len(tree.files) - images_listed,
        "exif_rotated": collect.rotated,
        "labels_moved_with_exif": collect.stored_frame,
        "image_warnings": collect.warned,
        **dict(itertools.islice(sorted(labels.notes.items()), 20)),
    }
    return StageResult(output=out, metrics=metrics, expected=found)


def _read_images(
    ctx: StageContext,
    params: Params,
    access: FileAccess,
    work: list[Work],
    jobs: list[Job],
    collect: Collector,
) -> None:
    """Each image's result, reused from the per-item cache or computed by the workers.

    A cached result whose object was collected from the project's store, and a local
    file that changed between the worker's read and the copy, are computed again.
    """
    settings = Settings(params.max_pixels, params.decode, params.jpeg_quality)
    fn = functools.partial(probe_chunk, access, settings)
    salt = (settings.max_pixels, settings.decode, settings.jpeg_quality)
    redo: list[int] = []
    with ctx.progress(len(work), "reading images") as advance:
        results = ctx.cached_map(
            NAMESPACE,
            salt,
            fn,
            jobs,
            _content,
            advance=advance,
            largest_chunk=CHUNK,
            keep=_cacheable,
        )
        for index, result in enumerate(_until_the_source_fails(results, ctx.stage)):
            if not collect.take(work[index], jobs[index], result):
                redo.append(index)
        if redo:
            size = chunk_size(len(redo), ctx.executor.workers, CHUNK)
            again = ctx.executor.map_chunks(fn, [jobs[i] for i in redo], size)
            for index, result in zip(redo, _until_the_source_fails(again, ctx.stage), strict=True):
                collect.take(work[index], jobs[index], result, last_try=True)


def _jobs(ctx: StageContext, tree: Tree, work: list[Work]) -> list[Job]:
    """The work items of the images, with their content stamps (see ``_ingest.keys``)."""
    paths = [one.path for one in work]
    return make_jobs(
        tree, paths, ctx.executor, lambda found: _until_the_source_fails(found, ctx.stage)
    )


def _until_the_source_fails(results: Iterator[T], stage_name: str) -> Iterator[T]:
    """The workers' results; a source that fails for good stops the stage in one line."""
    try:
        yield from results
    except SourceUnavailable as exc:
        raise PixelpipeError(f"{stage_name}: {exc}; nothing was written") from None
