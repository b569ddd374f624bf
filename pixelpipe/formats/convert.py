"""One-shot conversion between formats, without a pipeline.

``pixelpipe convert SRC DST --to FORMAT [--from FORMAT]`` reads ``SRC`` (a folder, a
label file, or any fsspec URL) with the same readers as ``ingest`` and writes ``DST``
with the same writers as ``publish``. Pixels are copied as they are (EXIF orientation
included: this is not an ingest), so image sizes are the displayed sizes, as the
readers' conventions expect. An image that is not there still gets its labels written
when its size is known from the labels (a VOC ``<size>``, a COCO ``width``); otherwise
it is skipped and reported. ``DST`` is written into a temporary folder and renamed into
place, so it is never half written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pixelpipe.dataset import Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import detect
from pixelpipe.formats.base import (
    LabelSet,
    ReadOptions,
    id_folder,
    removal_id,
    sample_id,
    to_pixels,
)
from pixelpipe.formats.export import EXPORT_FORMATS, ExportOptions, export
from pixelpipe.formats.pixels import probe
from pixelpipe.sources import Tree, open_tree

MAX_PIXELS = 89_478_485


@dataclass
class Report:
    """What a conversion did.

    Attributes:
        source_format: The format read (detected or given).
        samples: Images written (labels, and pixels when found).
        images_copied: Image files copied.
        annotations: Annotations read.
        skipped: ``(id, reason, detail)`` for everything not converted.
        counts: The writer's counts (clipped boxes...).
        warnings: Sentences from the reader.
        categories: The class map.
    """

    source_format: str
    samples: int = 0
    images_copied: int = 0
    annotations: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)


def _size(tree: Tree, rel: str) -> tuple[int, int] | tuple[str, str]:
    """The displayed size of an image in the tree, or ``(reason, detail)``."""
    local = tree.access.local_path(rel)
    try:
        if local is not None:
            result = probe(local, MAX_PIXELS)
        else:
            with tree.access.open(rel) as stream:
                result = probe(stream, MAX_PIXELS)
    except OSError as exc:
        return "unreadable", f"{type(exc).__name__}: {exc}"
    if isinstance(result, tuple):
        return result
    return result.displayed


def to_samples(
    tree: Tree, labels: LabelSet, report: Report, extensions: tuple[str, ...]
) -> list[Sample]:
    """Samples in pixels from what a reader found; what cannot be placed goes to ``report``."""
    folder = id_folder(labels, extensions)
    for removal in labels.removed:
        report.skipped.append(
            (removal_id(removal, folder, extensions), removal.reason, removal.detail)
        )
    for link, why in tree.links_out.items():
        report.skipped.append((link, "unsafe_path", f"{tree.shown(link)}: {why}"))
    samples = []
    for item in labels.items:
        sid = sample_id(item.image, folder)
        status = tree.status(item.image)
        width, height = item.width, item.height
        if status == "unsafe":
            report.skipped.append((sid, "unsafe_path", f"{tree.shown(item.image)} leads outside"))
            continue
        if status == "ok" and (width is None or height is None or item.normalized):
            size = _size(tree, item.image)
            if isinstance(size[0], str):
                report.skipped.append((sid, str(size[0]), str(size[1])))
                continue
            width, height = int(size[0]), int(size[1])
        if width is None or height is None:
            report.skipped.append(
                (sid, "missing", f"{tree.shown(item.image)} not found and its size is unknown")
            )
            continue
        annotations = (
            to_pixels(item.annotations, width, height) if item.normalized else item.annotations
        )
        samples.append(
            Sample(
                id=sid,
                image=item.image if status == "ok" else "",
                sha256="",
                width=width,
                height=height,
                source=tree.uri(item.image),
                split=item.split,
                annotations=annotations,
            )
        )
    return sorted(samples, key=lambda s: s.id)


def convert(
    source: str,
    target: Path,
    to: str,
    source_format: str = "auto",
    *,
    read_options: ReadOptions | None = None,
    export_options: ExportOptions | None = None,
    follow_symlinks: bool = False,
    overwrite: bool = False,
    base: Path | None = None,
) -> Report:
    """Convert the dataset at ``source`` into ``to`` format at ``target``.

    Args:
        source: A folder, a label file, or a URL.
        target: The folder to write; must not exist, or be empty, unless ``overwrite``.
        to: ``coco``, ``yolo``, ``voc`` or ``imagefolder``.
        source_format: The format to read, or ``auto``.
        read_options: Reader options (VOC pixel convention, classes...).
        export_options: Writer options (category id policy...).
        follow_symlinks: Follow symlinks that lead outside ``source``.
        overwrite: Replace an existing, non-empty ``target``.
        base: Folder that relative paths are relative to (default: the current one).

    Returns:
        What was converted and what was skipped, with reasons.

    Raises:
        PixelpipeError: For an unknown format, an ambiguous source, malformed labels, or
            a non-empty target without ``overwrite``.
    """
    if to not in EXPORT_FORMATS:
        raise PixelpipeError(f"unknown target format {to!r}; known: {', '.join(EXPORT_FORMATS)}")
    base = base or Path.cwd()
    target = target if target.is_absolute() else base / target
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise PixelpipeError(f"{target} exists and is not empty; pass --overwrite to replace it")
    read_options = read_options or ReadOptions()
    tree = open_tree(source, base, follow_symlinks=follow_symlinks)
    fmt = detect.detect(tree) if source_format == "auto" else source_format
    labels = detect.read(tree, fmt, read_options)
    report = Report(source_format=fmt, warnings=list(labels.warnings), categories=labels.categories)
    samples = to_samples(tree, labels, report, tuple(read_options.extensions))
    report.samples = len(samples)
    report.annotations = sum(len(s.annotations) for s in samples)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        downloads = scratch / "downloads"
        staged = scratch / "out"

        def image_source(sample: Sample) -> Path | None:
            if not sample.image:
                return None
            local = tree.access.local_path(sample.image)
            if local is not None:
                return local
            path = downloads / sample.image
            path.parent.mkdir(parents=True, exist_ok=True)
            with tree.access.open(sample.image) as stream, path.open("wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
            return path

        report.counts = export(to, samples, labels.categories, staged, image_source, export_options)
        report.images_copied = report.counts.get("images", 0)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(staged, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staged, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report
