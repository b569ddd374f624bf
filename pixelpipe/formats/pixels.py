"""Image files: safe probing, EXIF orientation, and moving labels with the pixels.

A camera stores pixels as the sensor saw them and writes an EXIF ``Orientation`` tag
(1-8) saying how to turn them for display; viewers, browsers and labelling tools show
the turned image. pixelpipe applies the orientation once, at ingest: the stored copy is
turned (the tag removed), and labels drawn on the stored grid are turned with it.
:func:`point_map` gives, for each orientation, where a point of the stored image lands
in the displayed one, matching Pillow's :func:`PIL.ImageOps.exif_transpose`.

:func:`check_image` is the one gate every image passes before its pixels are used, in
``ingest`` and in ``pixelpipe convert`` alike: Pillow must identify it, it must be within
the pixel limit (decompression bombs), optionally decode, and the size its labels declare
must be its displayed or stored size. Pillow's warnings about an image (broken EXIF, bad
APNG or MPO headers) are collected with it, never printed.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pixelpipe.dataset import Annotation
from pixelpipe.errors import PixelpipeError
from pixelpipe.pixelio import ORIENTATION_TAG, SWAPS, exif_orientation

DEFAULT_MAX_PIXELS = 89_478_485
"""The default pixel limit: Pillow's own (``Image.MAX_IMAGE_PIXELS``)."""


@dataclass(frozen=True)
class Probe:
    """What opening an image told.

    Attributes:
        width: Stored width in pixels.
        height: Stored height in pixels.
        orientation: EXIF orientation (1 when absent or invalid).
        format: Pillow's format name (``JPEG``, ``PNG``...).
        warnings: What Pillow warned about while reading it (broken EXIF...), each once.
    """

    width: int
    height: int
    orientation: int
    format: str
    warnings: tuple[str, ...] = ()

    @property
    def displayed(self) -> tuple[int, int]:
        """Width and height as a viewer shows the image."""
        if self.orientation in SWAPS:
            return self.height, self.width
        return self.width, self.height


def probe(
    source: Path | IO[bytes], max_pixels: int, decode: bool = False
) -> Probe | tuple[str, str]:
    """Open an image without trusting it.

    Args:
        source: A path or a binary stream.
        max_pixels: More pixels than this is a ``too_large`` image (decompression bombs).
        decode: Also decode it (downscaled when the format allows) to catch truncation.

    Returns:
        A :class:`Probe`, or ``(reason, detail)`` when the file is not a usable image:
        ``unreadable``, ``truncated``, ``too_large`` or ``missing`` (not there when read).
        Any failure of Pillow on the file is ``unreadable``; Pillow's warnings are in
        :attr:`Probe.warnings`, never printed.

    Raises:
        PixelpipeError: When reading a remote stream fails for good (the source, not
            the image: see :mod:`pixelpipe.fileaccess`).
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with pillow_warnings() as said, Image.open(source) as image:
            width, height = image.size
            if width <= 0 or height <= 0:
                return "unreadable", f"the image is {width}x{height} pixels"
            if width * height > max_pixels:
                return "too_large", f"{width}x{height} pixels is over max_pixels={max_pixels}"
            orientation = exif_orientation(image)
            if decode:
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
            fmt = image.format or ""
        return Probe(width, height, orientation, fmt, tuple(said))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own check (some formats, ICO, decode while opening): it names twice the
        # limit, so the detail names the pixels and the limit the user set.
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        return "too_large", (
            f"{pixels.group(1)} pixels is over max_pixels={max_pixels}" if pixels else str(exc)
        )
    except UnidentifiedImageError:
        return "unreadable", "not an image file Pillow can identify"
    except FileNotFoundError:
        return "missing", "not found when read: a link to nothing, or deleted since the listing"
    except PixelpipeError:
        raise
    except Exception as exc:  # Pillow raises many kinds on hostile files
        reason = "truncated" if "truncated" in str(exc) else "unreadable"
        # an OSError's strerror, without the file's absolute path
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return reason, f"{type(exc).__name__}: {text}"


@contextlib.contextmanager
def pillow_warnings() -> Iterator[list[str]]:
    """Collect the warnings Pillow gives inside the block, each message once, in order.

    A decompression-bomb warning is raised as an error instead (nothing over the limit is
    decoded). Nothing reaches ``stderr``.
    """
    said: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield said
        finally:
            for warning in caught:
                message = re.sub(r"\s+", " ", str(warning.message)).strip()
                if message and message not in said:
                    said.append(message)


def warnings_line(said: Sequence[str], shown: int = 3) -> str:
    """Pillow's warnings about one image on one line: the first ``shown``, then a count."""
    line = "; ".join(said[:shown])
    return line + (f" (and {len(said) - shown} more)" if len(said) > shown else "")


@dataclass(frozen=True)
class ImageChecks:
    """The checks every image passes before its pixels are used (ingest and convert).

    Attributes:
        max_pixels: More pixels than this is ``too_large``, refused before decoding.
        decode: Also decode the image, to find truncated files (``truncated``).
        label_frame: For EXIF photos: labels drawn ``displayed``, on the ``stored``
            pixels, or ``auto`` (decided from the size the labels declare).
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    decode: bool = False
    label_frame: Literal["auto", "displayed", "stored"] = "auto"


@dataclass(frozen=True)
class Checked:
    """An image that passed :func:`check_image`.

    Attributes:
        probe: What opening it told (sizes, orientation, Pillow's warnings).
        frame: The frame its labels are in: ``displayed`` or ``stored``.
    """

    probe: Probe
    frame: Literal["displayed", "stored"]

    @property
    def label_size(self) -> tuple[int, int]:
        """Width and height in the labels' frame (what YOLO fractions are fractions of)."""
        if self.frame == "stored":
            return self.probe.width, self.probe.height
        return self.probe.displayed


def check_image(
    source: Path | IO[bytes],
    checks: ImageChecks,
    declared: tuple[int | None, int | None] = (None, None),
    labelled: bool = False,
    origin: str = "the labels",
) -> Checked | tuple[str, str]:
    """Open an image without trusting it, and decide the frame of its labels.

    Args:
        source: A local path or a binary stream.
        checks: The limits and options.
        declared: The width and height the labels give (COCO, VOC), if any.
        labelled: Whether the image has labels whose place depends on that size.
        origin: The label file, for the ``size_mismatch`` detail.

    Returns:
        :class:`Checked`, or ``(reason, detail)`` for a removal: ``unreadable``,
        ``truncated``, ``too_large``, ``missing`` (a broken link, or a file gone since it
        was listed) or ``size_mismatch`` (see :func:`label_frame`).

    Raises:
        PixelpipeError: When a remote source fails for good (not this image's fault).
    """
    probed = probe(source, checks.max_pixels, checks.decode)
    if isinstance(probed, tuple):
        return probed
    frame = label_frame(probed, declared, labelled, checks.label_frame, origin)
    if isinstance(frame, tuple):
        return frame
    return Checked(probed, frame)


def label_frame(
    probed: Probe,
    declared: tuple[int | None, int | None],
    labelled: bool,
    setting: str,
    origin: str,
) -> Literal["displayed", "stored"] | tuple[str, str]:
    """``stored`` or ``displayed``: the frame the labels are in, or a ``size_mismatch``.

    A declared size that is neither the displayed nor the stored one means the labels
    were drawn on another version of the image: their boxes cannot be trusted, so the
    sample is removed, unless it has no labels (then the file's size is simply used).
    """
    stored = (probed.width, probed.height)
    displayed = probed.displayed
    if declared[0] is None or declared[1] is None or not labelled:
        # No declared size, or no label whose place depends on it: the file's size wins.
        return "stored" if setting == "stored" else "displayed"
    if setting == "auto":
        if declared == displayed:
            return "displayed"
        if declared == stored:
            return "stored"
    elif setting == "stored" and declared == stored:
        return "stored"
    elif setting == "displayed" and declared == displayed:
        return "displayed"
    shown = f"{displayed[0]}x{displayed[1]}"
    if probed.orientation != 1:
        shown += f" as displayed, {stored[0]}x{stored[1]} as stored (EXIF {probed.orientation})"
    return "size_mismatch", f"{origin} says {declared[0]}x{declared[1]}, the image is {shown}"


def point_map(
    orientation: int, width: int, height: int
) -> Callable[[float, float], tuple[float, float]]:
    """Where a point ``(x, y)`` of a stored ``width`` x ``height`` image is once displayed."""
    w, h = float(width), float(height)
    maps: dict[int, Callable[[float, float], tuple[float, float]]] = {
        1: lambda x, y: (x, y),
        2: lambda x, y: (w - x, y),
        3: lambda x, y: (w - x, h - y),
        4: lambda x, y: (x, h - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (h - y, x),
        7: lambda x, y: (h - y, w - x),
        8: lambda x, y: (y, w - x),
    }
    return maps.get(orientation, maps[1])


def orient_mask(mask: np.ndarray[Any, Any], orientation: int) -> np.ndarray[Any, Any]:
    """A stored-frame mask (rows, columns) turned like its image."""
    turns: dict[int, Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]] = {
        2: lambda m: m[:, ::-1],
        3: lambda m: m[::-1, ::-1],
        4: lambda m: m[::-1, :],
        5: lambda m: m.T,
        6: lambda m: np.rot90(m, k=-1),
        7: lambda m: m[::-1, ::-1].T,
        8: lambda m: np.rot90(m, k=1),
    }
    turn = turns.get(orientation)
    return np.ascontiguousarray(turn(mask)) if turn else mask


def orient_annotations(
    annotations: list[Annotation], orientation: int, width: int, height: int
) -> list[Annotation]:
    """Labels drawn on the stored image, moved to the displayed image.

    Args:
        annotations: Pixel annotations in the stored frame.
        orientation: The EXIF orientation.
        width: Stored width.
        height: Stored height.
    """
    if orientation not in range(2, 9):
        return annotations
    move = point_map(orientation, width, height)
    out = []
    for ann in annotations:
        x, y, w, h = ann.bbox
        corners = [move(x, y), move(x + w, y + h)]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        polygons = None
        if ann.polygons:
            polygons = []
            for part in ann.polygons:
                moved = [move(part[i], part[i + 1]) for i in range(0, len(part) - 1, 2)]
                polygons.append([v for point in moved for v in point])
        rle = ann.rle
        if rle is not None:
            from pycocotools import mask as mask_utils

            decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
            turned = np.asfortranarray(orient_mask(decoded, orientation))
            encoded = mask_utils.encode(turned)
            rle = {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}
        out.append(
            Annotation(
                category_id=ann.category_id,
                bbox=(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)),
                polygons=polygons,
                rle=rle,
                iscrowd=ann.iscrowd,
                area=ann.area,
                score=ann.score,
                annotator=ann.annotator,
                attributes=dict(ann.attributes),
            )
        )
    return out


def upright(source: Path | IO[bytes], quality: int = 95) -> tuple[bytes, str]:
    """Re-encode an image with its EXIF orientation applied and the tag removed.

    JPEG (and MPO) is written as JPEG at ``quality`` with 4:4:4 chroma; PNG, TIFF and
    other formats losslessly in their own format; WebP at ``quality``. The other EXIF
    fields and the ICC profile are kept.

    Returns:
        The encoded bytes and the file extension to store them under.
    """
    with Image.open(source) as image:
        fmt = (image.format or "PNG").upper()
        icc = image.info.get("icc_profile")
        turned = ImageOps.exif_transpose(image)
        exif = turned.getexif()
        exif.pop(ORIENTATION_TAG, None)
        buffer = io.BytesIO()
        options: dict[str, Any] = {"exif": exif.tobytes()}
        if icc:
            options["icc_profile"] = icc
        if fmt in ("JPEG", "MPO"):
            image_out = turned if turned.mode in ("RGB", "L", "CMYK") else turned.convert("RGB")
            image_out.save(buffer, "JPEG", quality=quality, subsampling=0, **options)
            return buffer.getvalue(), ".jpg"
        if fmt == "WEBP":
            turned.save(buffer, "WEBP", quality=quality, **options)
            return buffer.getvalue(), ".webp"
        if fmt == "TIFF":
            turned.save(buffer, "TIFF", compression="tiff_deflate", **options)
            return buffer.getvalue(), ".tif"
        turned.save(buffer, "PNG", **options)
        return buffer.getvalue(), ".png"
