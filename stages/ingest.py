"""Ingest: read images and their labels (COCO, VOC, YOLO, image folders) from a folder or URL."""

from __future__ import annotations

import errno
import functools
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from pixelpipe import (
    Annotation,
    Dataset,
    DatasetBuilder,
    Dependency,
    ImageStore,
    PixelpipeError,
    Problem,
    Sample,
    StageContext,
    StageParams,
    StageResult,
    chunk_size,
    stage,
)
from pixelpipe.formats import detect
from pixelpipe.formats.base import (
    IMAGE_EXTENSIONS,
    ReadOptions,
    has_extension,
    id_folder,
    removal_id,
    sample_id,
    to_pixels,
)
from pixelpipe.formats.pixels import (
    DEFAULT_MAX_PIXELS,
    ImageChecks,
    check_image,
    orient_annotations,
    pillow_warnings,
    upright,
    warnings_line,
)
from pixelpipe.sources import (
    FileAccess,
    SourceUnavailable,
    credential_problem,
    name_id,
    open_tree,
)

ORIENTATION_COLUMN = "exif_orientation"
_OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
"""Failures to write the output, which stop the stage (not the image's fault)."""
WARNINGS_LOGGED = 50
"""Images whose Pillow warnings are logged one line each; the rest are counted."""


class Params(StageParams):
    """Params of the ``ingest`` stage."""

    source: Annotated[str, Dependency()] = "data/raw/demo"
    """Folder, label file or URL (s3://, remote://NAME/path, gs://, https://); a DVC dependency."""
    format: Literal["auto", "coco", "voc", "yolo", "imagefolder", "images"] = "auto"
    """Label format; ``auto`` detects COCO, VOC or YOLO (see docs/formats.md)."""
    annotations: list[str] = []
    """Label files in ``source`` (COCO JSON files, a YOLO data.yaml or obj.data); empty: found."""
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


@dataclass(frozen=True)
class _Work:
    """One image for a worker: where it is and the labels to check against it."""

    id: str
    path: str
    width: int | None
    height: int | None
    normalized: bool
    annotations: list[Annotation]
    origin: str


@dataclass(frozen=True)
class _Settings:
    checks: ImageChecks
    jpeg_quality: int


def _removal(work: _Work, reason: str, detail: str) -> dict[str, Any]:
    return {"id": work.id, "reason": reason, "detail": detail}


def _download(access: FileAccess, store: ImageStore, work: _Work) -> Path:
    """A remote image copied once into the output folder, to be read locally."""
    incoming = store.write_dir / "images" / f".download-{os.getpid()}-{id(work)}"
    incoming.parent.mkdir(parents=True, exist_ok=True)
    with access.open(work.path) as stream, incoming.open("wb") as out:
        while block := stream.read(1 << 20):
            out.write(block)
    return incoming


def _one(access: FileAccess, store: ImageStore, settings: _Settings, work: _Work) -> dict[str, Any]:
    """Check, orient and store one image; a removal when it is not usable.

    Only failures to read the image remove it; a source that fails for good
    (:class:`SourceUnavailable`) and failures to write the output stop the stage.
    """
    local = access.local_path(work.path)
    incoming: Path | None = None
    try:
        if local is None:  # remote: download once, then read locally
            try:
                incoming = local = _download(access, store, work)
            except FileNotFoundError:
                return _removal(work, "missing", "gone since the source was listed")
            except OSError as exc:
                return _removal(work, "unreadable", f"{type(exc).__name__}: {exc}")
        checked = check_image(
            local, settings.checks, (work.width, work.height), bool(work.annotations), work.origin
        )
        if isinstance(checked, tuple):
            return _removal(work, *checked)
        probed = checked.probe
        annotations = work.annotations
        if work.normalized:
            annotations = to_pixels(annotations, *checked.label_size)
        if checked.frame == "stored":
            annotations = orient_annotations(
                annotations, probed.orientation, probed.width, probed.height
            )
        said = list(probed.warnings)
        if probed.orientation != 1:
            try:
                with pillow_warnings() as more:
                    data, ext = upright(local, settings.jpeg_quality)
            except PixelpipeError:
                raise
            except Exception as exc:  # a photo whose header read but whose pixels do not
                return _removal(work, "unreadable", f"{type(exc).__name__}: {exc}")
            said += [m for m in more if m not in said]
        try:
            if probed.orientation != 1:
                image, sha = store.put_bytes(data, ext)
            else:
                image, sha = store.put_file(local, Path(work.path).suffix)
        except FileNotFoundError:
            return _removal(work, "missing", "gone since the source was listed")
        except OSError as exc:
            if exc.errno in _OUTPUT_FULL:
                raise PixelpipeError(f"cannot write {store.write_dir}: {exc.strerror}") from None
            return _removal(work, "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}")
    finally:
        if incoming is not None:
            incoming.unlink(missing_ok=True)
    width, height = probed.displayed
    return {
        "id": work.id,
        "image": image,
        "sha256": sha,
        "width": width,
        "height": height,
        "orientation": probed.orientation,
        "frame": checked.frame,
        "annotations": annotations,
        "warnings": said,
    }


def _ingest_work(
    access: FileAccess, store: ImageStore, settings: _Settings, items: list[_Work]
) -> list[dict[str, Any]]:
    """Probe, orient and store each image; runs in a worker."""
    return [_one(access, store, settings, work) for work in items]


def _ingest_chunk(
    store: ImageStore, max_pixels: int, decode: bool, items: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Probe, orient and store local files given as ``(id, path)``, without labels.

    The chunk function of the first ingest, kept for the executor tests and benchmarks.
    """
    access = FileAccess(None, "/", Path("/"))
    settings = _Settings(ImageChecks(max_pixels, decode), 95)
    return [
        _one(
            access,
            store,
            settings,
            _Work(sample, Path(path).resolve().as_posix().lstrip("/"), None, None, False, [], path),
        )
        for sample, path in items
    ]


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
        labels = detect.read(
            tree,
            params.format,
            ReadOptions(
                annotations=params.annotations,
                images=params.images,
                classes=params.classes,
                pixel_convention=params.pixel_convention,
                extensions=extensions,
            ),
        )
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
    work: list[_Work] = []
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
                _Work(
                    sid,
                    item.image,
                    item.width,
                    item.height,
                    item.normalized,
                    item.annotations,
                    item.origin,
                )
            )
    for link, why in sorted(tree.links_out.items()):
        if not any(r == link or r.startswith(f"{link}/") for r in referenced):
            remove(sample_id(link, folder), "unsafe_path", f"{tree.shown(link)}: {why}", "")
    found = len(work) + len(removed)
    items = {w.id: w for w in work}
    splits = {item.image: item.split for item in labels.items}
    checks = ImageChecks(params.max_pixels, params.decode, params.label_frame)
    chunk = functools.partial(
        _ingest_work, tree.access, ctx.images, _Settings(checks, params.jpeg_quality)
    )
    rotated = stored_frame = warned = 0
    with ctx.progress(len(work), "reading images") as advance:
        results = ctx.executor.map_chunks(
            chunk, work, chunk_size(len(work), ctx.executor.workers, 64), advance
        )
        for result in _until_the_source_fails(results, ctx.stage):
            sid = result["id"]
            one = items[sid]
            if "reason" in result:
                remove(sid, result["reason"], result["detail"], tree.uri(one.path))
                continue
            rotated += result["orientation"] != 1
            stored_frame += result["frame"] == "stored" and result["orientation"] != 1
            if result["warnings"]:
                warned += 1
                if warned <= WARNINGS_LOGGED:
                    ctx.log.warning("%s: %s: %s", ctx.stage, sid, warnings_line(result["warnings"]))
            out.add(
                Sample(
                    id=sid,
                    image=result["image"],
                    sha256=result["sha256"],
                    width=result["width"],
                    height=result["height"],
                    source=_source_uri(tree.uri(one.path), ctx.root),
                    split=splits[one.path],
                    annotations=result["annotations"],
                    extra={ORIENTATION_COLUMN: result["orientation"]},
                )
            )
    for sid, (reason, detail, source) in sorted(removed.items()):
        out.remove(sid, reason, detail, source=source or None)
    if warned > WARNINGS_LOGGED:
        ctx.log.warning(
            "%s: %d more images with Pillow warnings (image_warnings in the metrics)",
            ctx.stage,
            warned - WARNINGS_LOGGED,
        )
    images_listed = sum(1 for f in tree.files if has_extension(f, extensions))
    ctx.log.info("%s: read as %s", tree.display, labels.format)
    metrics: dict[str, Any] = {
        "found": found,
        "files": len(tree.files),
        "hidden_files": tree.hidden,
        "ignored_files": len(tree.files) - images_listed,
        "exif_rotated": rotated,
        "labels_moved_with_exif": stored_frame,
        "image_warnings": warned,
        **dict(itertools.islice(sorted(labels.notes.items()), 20)),
    }
    return StageResult(output=out, metrics=metrics, expected=found)


def _until_the_source_fails(
    results: Iterator[dict[str, Any]], stage_name: str
) -> Iterator[dict[str, Any]]:
    """The workers' results; a source that fails for good stops the stage in one line."""
    try:
        yield from results
    except SourceUnavailable as exc:
        raise PixelpipeError(f"{stage_name}: {exc}; nothing was written") from None


def _source_uri(uri: str, root: Path) -> str:
    """Where an image came from: relative to the project when inside it, else as given."""
    path = Path(uri)
    if not path.is_absolute():
        return uri
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
