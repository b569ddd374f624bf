"""Write samples in any export format, with one class map for every split and format.

Category ids: COCO writes the class map's ids (``preserve``) unless told otherwise;
YOLO needs class indices 0..n-1, so ``auto`` numbers the categories in id order from 0;
VOC, image folders, CVAT and Label Studio write class names; the Hugging Face dataset
numbers its ``ClassLabel`` 0..n-1 in id order. See :func:`pixelpipe.formats.base.id_map`.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pixelpipe.dataset import Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import coco, cvat, hf, imagefolder, labelstudio, voc, yolo
from pixelpipe.formats.base import IdPolicy, PixelConvention, id_map

EXPORT_FORMATS = ("coco", "yolo", "voc", "imagefolder", "hf", "cvat", "labelstudio")
ImageSource = Callable[[Sample], Path | None]
Copied = Callable[[Sample, Path], None]
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}
"""Why a hard link may be refused: another file system, or one without links, a link
count at its limit, a file another user owns (``fs.protected_hardlinks``)."""


@dataclass(frozen=True)
class ExportOptions:
    """How to write.

    Attributes:
        category_ids: ``auto``, ``preserve``, ``zero_based`` or ``one_based``.
        pixel_convention: VOC box convention (``corners`` or ``inclusive``).
        yolo_task: ``detect`` (boxes) or ``segment`` (polygons).
        include_crowd: Write COCO crowd boxes into YOLO labels.
        image_url_prefix: Label Studio: what image URLs start with (a bucket, a web
            server); empty: Label Studio's local files, relative to the export folder.
    """

    category_ids: IdPolicy = "auto"
    pixel_convention: PixelConvention = "corners"
    yolo_task: yolo.YoloTask = "detect"
    include_crowd: bool = False
    image_url_prefix: str = ""


def link_or_copy(source: Path, target: Path) -> None:
    """Put ``source``'s bytes at ``target``: a hard link (no byte copied), else a copy.

    Images in a stage's store are read-only links to the project's object store; an export
    links them once more, so exporting costs no space. A link is refused across file
    systems (and on some), and then the file is copied.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():  # os.link links a symlink itself on Linux, whatever it is told
        source = source.resolve()
    try:
        os.link(source, target)
        return
    except FileExistsError:  # written before into the same folder: replaced
        target.unlink()
        link_or_copy(source, target)
        return
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
    shutil.copyfile(source, target)


def copier(
    image_source: ImageSource, copied: Copied | None = None
) -> Callable[[Sample, Path], bool]:
    """A function that puts a sample's image file at a path (False when it has none).

    The file is hard-linked where possible, else copied (:func:`link_or_copy`).

    Args:
        image_source: The local file holding a sample's image, or ``None``.
        copied: Called with the sample and the path after each image.
    """

    def copy(sample: Sample, target: Path) -> bool:
        source = image_source(sample)
        if source is None or not source.is_file():
            return False
        link_or_copy(source, target)
        if copied is not None:
            copied(sample, target)
        return True

    return copy


def class_ids(
    categories: Sequence[Category], options: ExportOptions, formats: Sequence[str]
) -> dict[str, dict[int, int]]:
    """The id each of ``formats`` writes for each category (class-map id -> written id).

    Raises:
        PixelpipeError: When the id policy cannot hold for one of the formats.
    """
    return {fmt: id_map(categories, options.category_ids, fmt) for fmt in formats}


def id_warnings(ids: dict[str, dict[int, int]]) -> list[str]:
    """Sentences about the ids of :func:`class_ids` that consumers may misread.

    A COCO category id 0 (kept by ``preserve``) is valid COCO, and pycocotools loads it, but
    Datumaro, Detectron2 and torchvision's detection references take category 0 for the
    background.
    """
    if 0 in ids.get("coco", {}).values():
        return [
            "coco: category id 0 is written; several tools (Datumaro, Detectron2, torchvision) "
            "take 0 for the background: category_ids `auto` or `one_based` numbers the "
            "classes from 1"
        ]
    return []


def export(
    fmt: str,
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    image_source: ImageSource,
    options: ExportOptions | None = None,
    copied: Copied | None = None,
) -> dict[str, int]:
    """Write ``samples`` in ``fmt`` into the folder ``out``.

    Args:
        fmt: One of :data:`EXPORT_FORMATS`.
        samples: The samples, in the order wanted (id order keeps outputs stable).
        categories: The class map, shared by every split.
        out: The folder to write (created).
        image_source: The local file holding a sample's image, or ``None`` (labels only).
        options: How to write.
        copied: Called with the sample and the path of each image linked or copied (a step
            records the sha256 it knows, so the runner need not read the file again).

    Returns:
        Counts of what was written, clipped or left out.

    Raises:
        PixelpipeError: For an unknown format, or when the data cannot be written in it.
    """
    options = options or ExportOptions()
    copy = copier(image_source, copied)
    out.mkdir(parents=True, exist_ok=True)
    known = {c.id for c in categories}
    unknown = sorted({a.category_id for s in samples for a in s.annotations} - known)
    if unknown:
        raise PixelpipeError(
            f"annotations use category ids {unknown} that are not in the class map"
        )
    if fmt == "coco":
        return coco.write(
            samples, categories, out, copy, id_map(categories, options.category_ids, "coco")
        )
    if fmt == "yolo":
        return yolo.write(
            samples,
            categories,
            out,
            copy,
            id_map(categories, options.category_ids, "yolo"),
            options.yolo_task,
            options.include_crowd,
        )
    if fmt == "voc":
        return voc.write(samples, categories, out, copy, options.pixel_convention)
    if fmt == "imagefolder":
        return imagefolder.write(samples, categories, out, copy)
    if fmt == "hf":
        return hf.write(samples, categories, out, image_source)
    if fmt == "cvat":
        return cvat.write(samples, categories, out, copy)
    if fmt == "labelstudio":
        return labelstudio.write(samples, categories, out, copy, options.image_url_prefix)
    raise PixelpipeError(f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")
