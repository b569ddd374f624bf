"""Image files: safe probing, EXIF orientation, and moving labels with the pixels.

A camera stores pixels as the sensor saw them and writes an EXIF ``Orientation`` tag
(1-8) saying how to turn them for display; viewers, browsers and labelling tools show
the turned image. pixelpipe applies the orientation once, at ingest: the stored copy is
turned (the tag removed), and labels drawn on the stored grid are turned with it.
:func:`point_map` gives, for each orientation, where a point of the stored image lands
in the displayed one, matching Pillow's :func:`PIL.ImageOps.exif_transpose`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pixelpipe.dataset import Annotation

ORIENTATION_TAG = 0x0112
# Orientations that swap width and height.
SWAPS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class Probe:
    """What opening an image told.

    Attributes:
        width: Stored width in pixels.
        height: Stored height in pixels.
        orientation: EXIF orientation (1 when absent or invalid).
        format: Pillow's format name (``JPEG``, ``PNG``...).
    """

    width: int
    height: int
    orientation: int
    format: str

    @property
    def displayed(self) -> tuple[int, int]:
        """Width and height as a viewer shows the image."""
        if self.orientation in SWAPS:
            return self.height, self.width
        return self.width, self.height


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # broken EXIF blocks: Pillow raises many kinds
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


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
        ``unreadable``, ``truncated`` or ``too_large``.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width <= 0 or height <= 0:
                    return "unreadable", f"the image is {width}x{height} pixels"
                if width * height > max_pixels:
                    return "too_large", f"{width}x{height} pixels is over max_pixels={max_pixels}"
                orientation = _orientation(image)
                if decode:
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()
                return Probe(width, height, orientation, image.format or "")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return "too_large", str(exc)
    except UnidentifiedImageError:
        return "unreadable", "not an image file Pillow can identify"
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError) as exc:
        reason = "truncated" if "truncated" in str(exc) else "unreadable"
        return reason, f"{type(exc).__name__}: {exc}"


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
