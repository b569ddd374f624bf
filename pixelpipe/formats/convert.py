"""One-shot conversion between formats, without a pipeline.

``pixelpipe convert SRC DST --to FORMAT [--from FORMAT]`` reads ``SRC`` (a folder, a
label file, or any fsspec URL) with the same readers as ``ingest`` and writes ``DST``
with the same writers as ``publish``. Every image found goes through the same gate as at
ingest (:func:`pixelpipe.formats.pixels.check_image`: identified by Pillow, within the
pixel limit, its declared size its own): an image that fails is skipped with ingest's
reason (``unreadable``, ``too_large``, ``size_mismatch``...) and never copied. Pixels are
copied as they are (EXIF orientation included: this is not an ingest), so image sizes are
the displayed sizes, as the readers' conventions expect, and labels drawn on the stored
pixels of an EXIF photo are moved to the displayed frame. An image that is not there
still gets its labels written when its size is known from the labels (a VOC ``<size>``, a
COCO ``width``); otherwise it is skipped and reported. ``DST`` is written into a temporary
folder and renamed into place, so it is never half written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
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
from pixelpipe.formats.export import (
    EXPORT_FORMATS,
    ExportOptions,
    class_ids,
    export,
    id_warnings,
)
from pixelpipe.formats.pixels import (
    ImageChecks,
    check_image,
    orient_annotations,
    warnings_line,
)
from pixelpipe.sources import Tree, name_id, open_tree


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
        image_warnings: ``(id, message)`` for images Pillow warned about (broken EXIF...),
            one per image.
    """

    source_format: str
    samples: int = 0
    images_copied: int = 0
    annotations: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)
    image_warnings: list[tuple[str, str]] = field(default_factory=list)


Fetch = Callable[[str], Path]
"""The local path of an image of the tree, downloaded once when the tree is remote."""


def _fetcher(tree: Tree, downloads: Path) -> Fetch:
    fetched: dict[str, Path] = {}

    def fetch(rel: str) -> Path:
        local = tree.access.local_path(rel)
        if local is not None:
            return local
        if rel not in fetched:
            path = downloads / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with tree.access.open(rel) as stream, path.open("wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
            fetched[rel] = path
        return fetched[rel]

    return fetch


def _skip(report: Report, sid: str, reason: str, detail: str) -> None:
    report.skipped.append((name_id(sid), reason, name_id(detail)))


def to_samples(
    tree: Tree,
    labels: LabelSet,
    report: Report,
    extensions: tuple[str, ...],
    checks: ImageChecks,
    fetch: Fetch,
) -> list[Sample]:
    """Samples in pixels from what a reader found; what cannot be placed goes to ``report``.

    Args:
        tree: The source.
        labels: What its reader found.
        report: Where skipped items and Pillow's warnings go.
        extensions: Image file endings.
        checks: The image checks.
        fetch: Gives an image's local path (downloading it from a remote tree).
    """
    folder = id_folder(labels, extensions)
    for removal in labels.removed:
        _skip(report, removal_id(removal, folder, extensions), removal.reason, removal.detail)
    for link, why in tree.links_out.items():
        _skip(report, link, "unsafe_path", f"{tree.shown(link)}: {why}")
    samples = []
    for item in labels.items:
        sid = sample_id(item.image, folder)
        status = tree.status(item.image)
        width, height = item.width, item.height
        annotations = item.annotations
        if status == "unsafe":
            _skip(report, sid, "unsafe_path", f"{tree.shown(item.image)} leads outside")
            continue
        if status == "ok":
            try:
                local = fetch(item.image)
            except FileNotFoundError:
                _skip(report, sid, "missing", f"{tree.shown(item.image)}: gone since listed")
                continue
            except OSError as exc:
                _skip(report, sid, "unreadable", f"{type(exc).__name__}: {exc}")
                continue
            checked = check_image(
                local, checks, (width, height), bool(annotations), item.origin or "the labels"
            )
            if isinstance(checked, tuple):
                _skip(report, sid, *checked)
                continue
            probed = checked.probe
            if probed.warnings:
                report.image_warnings.append((sid, warnings_line(probed.warnings)))
            if item.normalized:
                annotations = to_pixels(annotations, *checked.label_size)
            if checked.frame == "stored":
                annotations = orient_annotations(
                    annotations, probed.orientation, probed.width, probed.height
                )
            width, height = probed.displayed
        elif width is None or height is None:
            _skip(
                report,
                sid,
                "missing",
                f"{tree.shown(item.image)} not found and its size is unknown",
            )
            continue
        elif item.normalized:
            annotations = to_pixels(annotations, width, height)
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
    checks: ImageChecks | None = None,
) -> Report:
    """Convert the dataset at ``source`` into ``to`` format at ``target``.

    Args:
        source: A folder, a label file, or a URL.
        target: The folder to write; must not exist, or be empty, unless ``overwrite``.
        to: One of :data:`~pixelpipe.formats.export.EXPORT_FORMATS`.
        source_format: The format to read, or ``auto``.
        read_options: Reader options (VOC pixel convention, classes...).
        export_options: Writer options (category id policy...).
        follow_symlinks: Follow symlinks that lead outside ``source``.
        overwrite: Replace an existing, non-empty ``target``.
        base: Folder that relative paths are relative to (default: the current one).
        checks: The image checks (pixel limit...); ingest's defaults when not given.

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
    if to in ("coco", "yolo"):
        ids = class_ids(labels.categories, export_options or ExportOptions(), [to])
        report.warnings += id_warnings(ids)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        staged = scratch / "out"
        fetch = _fetcher(tree, scratch / "downloads")
        extensions = tuple(read_options.extensions)
        samples = to_samples(tree, labels, report, extensions, checks or ImageChecks(), fetch)
        report.samples = len(samples)
        report.annotations = sum(len(s.annotations) for s in samples)

        def image_source(sample: Sample) -> Path | None:
            return fetch(sample.image) if sample.image else None

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
