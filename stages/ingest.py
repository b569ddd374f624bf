"""Ingest: read images (and their COCO labels) from a folder into the dataset contract."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from PIL import Image, UnidentifiedImageError

from pixelpipe import (
    Category,
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
    stage,
)
from pixelpipe.formats import coco

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


class Params(StageParams):
    """Params of the ``ingest`` stage."""

    source: Annotated[str, Dependency()] = "data/raw/demo"
    """Folder to read, relative to the project root or absolute. A DVC dependency."""
    format: Literal["coco", "images"] = "coco"
    """``coco``: images plus COCO instances JSON; ``images``: unlabelled images."""
    annotations: list[str] = []
    """COCO files relative to ``source``; empty: ``annotations.json`` and ``annotations/*.json``."""
    images: str = "images"
    """For ``coco``: the images folder, relative to ``source``; ``file_name`` is relative to it."""
    extensions: list[str] = list(IMAGE_EXTENSIONS)
    """File endings that are images; other files are counted as ignored, never read."""
    max_pixels: int = 89_478_485
    """Images with more pixels are removed as ``too_large`` before decoding (bomb guard)."""
    decode: bool = False
    """Fully decode every image to catch truncated files here (``validate`` also does this)."""
    chunk_size: int = 64
    """Images per work item sent to a worker."""


def _probe(path: Path, max_pixels: int, decode: bool) -> tuple[int, int] | tuple[str, str]:
    """``(width, height)``, or ``(reason, detail)`` when the file is not a usable image."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return "too_large", f"{width}x{height} pixels is over max_pixels={max_pixels}"
                if decode:
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return "too_large", str(exc)
    except UnidentifiedImageError:
        return "unreadable", "not an image file Pillow can identify"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = "truncated" if "truncated" in str(exc) else "unreadable"
        return reason, f"{type(exc).__name__}: {exc}"
    return width, height


def _ingest_chunk(
    store: ImageStore, max_pixels: int, decode: bool, items: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Probe and store each ``(id, path)``; runs in a worker."""
    results: list[dict[str, Any]] = []
    for sample_id, path in items:
        probed = _probe(Path(path), max_pixels, decode)
        if isinstance(probed[0], str):
            results.append({"id": sample_id, "reason": probed[0], "detail": probed[1]})
            continue
        try:
            image, sha = store.put_file(Path(path))
        except OSError as exc:
            results.append({"id": sample_id, "reason": "unreadable", "detail": str(exc)})
            continue
        results.append(
            {
                "id": sample_id,
                "image": image,
                "sha256": sha,
                "width": probed[0],
                "height": probed[1],
            }
        )
    return results


def _safe_relative(name: str) -> str | None:
    """``name`` as a clean relative posix path, or ``None`` if it escapes its folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path.as_posix()


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _image_files(folder: Path, extensions: tuple[str, ...]) -> tuple[dict[str, Path], int]:
    """Image files under ``folder`` by relative posix path, and the count of other files."""
    found: dict[str, Path] = {}
    ignored = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in extensions:
                ignored += 1
                continue
            found[path.relative_to(folder).as_posix()] = path
    return found, ignored


def _annotation_files(source: Path, params: Params) -> list[Path]:
    if params.annotations:
        return [source / name for name in params.annotations]
    found = [source / "annotations.json"] if (source / "annotations.json").is_file() else []
    found += sorted((source / "annotations").glob("*.json"))
    return found


@stage("ingest", params=Params, inputs=0)
def ingest(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Read images and their COCO labels into a dataset; unusable files are removed with a reason.

    Images are copied once into the stage output, content-addressed by SHA-256; width and
    height come from the file. Reasons for removal: ``unreadable``, ``truncated`` (with
    ``decode``), ``too_large``, ``missing`` (listed in COCO, not on disk), ``unlisted`` (on
    disk, not in any COCO file), ``unsafe_path`` (a name that escapes the images folder).

    ```yaml
    # pipelines/default.yaml
    stages:
      ingest:
        kind: ingest
    # params.yaml
    ingest:
      source: data/raw/demo     # or an absolute path
      format: coco              # or: images
      annotations: []           # default: annotations.json, annotations/*.json
      images: images
    ```
    """
    source = ctx.resolve(params.source)
    if not source.is_dir():
        raise PixelpipeError(
            Problem(
                f"source folder not found: {params.source}",
                file="params.yaml",
                key=f"{ctx.stage}.source",
            )
        )
    extensions = tuple(e.lower() for e in params.extensions)
    out = DatasetBuilder()
    listed: dict[str, tuple[Path, list[Any]]] = {}
    ignored = unknown_category = 0
    if params.format == "coco":
        folder = source / params.images
        files = _annotation_files(source, params)
        if not files:
            raise PixelpipeError(
                Problem(
                    f"no COCO file in {params.source} (looked for annotations.json and "
                    "annotations/*.json); set `annotations:` or use `format: images`",
                    file="params.yaml",
                    key=f"{ctx.stage}.annotations",
                )
            )
        categories: dict[int, Category] = {}
        for file in files:
            shown = os.path.relpath(file, ctx.root) if _inside(file, ctx.root) else str(file)
            parsed = coco.load(file, shown)
            for cat in parsed.categories:
                if categories.setdefault(cat.id, cat).name != cat.name:
                    raise PixelpipeError(
                        Problem(
                            f"category id {cat.id} is '{cat.name}' here but "
                            f"'{categories[cat.id].name}' in an earlier file",
                            file=shown,
                        )
                    )
            unknown_category += parsed.unknown_category
            for image in parsed.images:
                rel = _safe_relative(image.file_name)
                if rel is None or not _inside(folder / rel, folder):
                    out.remove(
                        image.file_name,
                        "unsafe_path",
                        f"{shown}: file_name escapes the images folder",
                        source=image.file_name,
                    )
                    continue
                anns = parsed.annotations.get(image.id, [])
                if rel in listed:
                    listed[rel][1].extend(anns)
                else:
                    listed[rel] = (folder / rel, anns)
        out.categories = sorted(categories.values(), key=lambda c: c.id)
        on_disk, ignored = _image_files(folder, extensions) if folder.is_dir() else ({}, 0)
        for rel, path in on_disk.items():
            if rel not in listed:
                out.remove(
                    rel, "unlisted", "image file is in no COCO annotation file", source=str(path)
                )
        for rel, (path, _) in list(listed.items()):
            if not path.is_file():
                out.remove(
                    rel, "missing", "listed in the COCO file but not found", source=str(path)
                )
                del listed[rel]
    else:
        on_disk, ignored = _image_files(source, extensions)
        listed = {rel: (path, []) for rel, path in on_disk.items()}
    found = len(listed) + len(out.removed_table())
    work = sorted((rel, str(path)) for rel, (path, _) in listed.items())
    chunk = functools.partial(_ingest_chunk, ctx.images, params.max_pixels, params.decode)
    with ctx.progress(len(work), "reading images") as advance:
        results = ctx.executor.map_chunks(chunk, work, params.chunk_size, advance)
        for result in results:
            rel = result["id"]
            path, annotations = listed[rel]
            if "reason" in result:
                out.remove(rel, result["reason"], result["detail"], source=str(path))
                continue
            out.add(
                Sample(
                    id=rel,
                    image=result["image"],
                    sha256=result["sha256"],
                    width=result["width"],
                    height=result["height"],
                    source=_source_uri(path, ctx.root),
                    annotations=annotations,
                )
            )
    if unknown_category:
        ctx.log.warning(
            "%d annotations name a category id that is not in the class map", unknown_category
        )
    return StageResult(
        output=out,
        metrics={
            "found": found,
            "ignored_files": ignored,
            "annotations_unknown_category": unknown_category,
        },
        expected=found,
    )


def _source_uri(path: Path, root: Path) -> str:
    """Where an image came from: relative to the project when inside it, else absolute."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
