"""What VOC fixes for reading and writing alike: folder names, flags, box corners.

``pixel_convention`` says what ``xmin ymin xmax ymax`` mean: ``corners``, continuous
corner coordinates (CVAT, labelImg, Roboflow, Datumaro), or ``inclusive``, the official
devkit's 1-based inclusive pixel indices. :func:`to_bbox` and :func:`from_bbox` convert
between them and pixelpipe's ``[x, y, w, h]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pixelpipe.formats.base import PixelConvention

ANNOTATIONS = "Annotations"
IMAGES = "JPEGImages"
SETS = "ImageSets/Main"
LABELMAP = "labelmap.txt"
# The yes/no elements of an <object>, kept as attributes.
FLAGS = ("difficult", "truncated", "occluded")


def to_bbox(
    corners: tuple[float, float, float, float], convention: PixelConvention
) -> tuple[float, float, float, float]:
    """VOC corners to pixelpipe's ``[x, y, w, h]``."""
    x1, y1, x2, y2 = corners
    if convention == "inclusive":
        return x1 - 1.0, y1 - 1.0, x2 - x1 + 1.0, y2 - y1 + 1.0
    return x1, y1, x2 - x1, y2 - y1


def from_bbox(
    bbox: Sequence[float], convention: PixelConvention
) -> tuple[float, float, float, float]:
    """Turn a pixelpipe ``[x, y, w, h]`` into VOC corners."""
    x, y, w, h = (float(v) for v in bbox)
    if convention == "inclusive":
        return x + 1.0, y + 1.0, x + w, y + h
    return x, y, x + w, y + h
