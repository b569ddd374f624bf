"""Instance masks for augmentation: COCO polygons and RLE to pixel masks and back.

A segmented annotation is rasterized once per image (pycocotools, as the COCO API does),
moved by the recipe with the image (albumentations' ``masks`` target, nearest-neighbour
interpolation), then written back in the annotation's own representation: polygons from
the outer contours (OpenCV, simplified to within half a pixel), or a compressed RLE.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Mask = npt.NDArray[np.uint8]
SIMPLIFY_PX = 0.5
"""Contours are simplified (Douglas-Peucker) to within this many pixels of the mask edge."""


def rasterize(annotation: dict[str, Any], height: int, width: int) -> Mask | None:
    """The binary mask of an annotation row, or ``None`` when it has no usable mask.

    Args:
        annotation: A manifest annotation row (``polygons`` and ``rle`` keys).
        height: Image height.
        width: Image width.
    """
    from pycocotools import mask as mask_utils

    polygons = [p for p in annotation.get("polygons") or [] if len(p) >= 6]
    rle = annotation.get("rle")
    if polygons:
        parts = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
        decoded = mask_utils.decode(mask_utils.merge(parts))
    elif rle is not None:
        size = [int(v) for v in rle.get("size") or []]
        if size != [height, width]:
            return None
        decoded = mask_utils.decode({"size": size, "counts": str(rle["counts"]).encode("ascii")})
    else:
        return None
    return np.ascontiguousarray(decoded, dtype=np.uint8)


def to_polygons(mask: Mask) -> list[list[float]]:
    """Outer contours of a mask as COCO polygons (at least 3 points each).

    A mask too thin for any 3-point contour becomes the rectangle of its pixels.
    """
    import cv2

    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    simple = [cv2.approxPolyDP(c, SIMPLIFY_PX, True) for c in contours]
    polygons = [[float(v) for v in contour.reshape(-1)] for contour in simple if len(contour) >= 3]
    if polygons:
        return polygons
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def to_rle(mask: Mask) -> dict[str, Any]:
    """A mask as a compressed COCO RLE ``{"size": [h, w], "counts": str}``."""
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    counts = encoded["counts"]
    text = counts.decode("ascii") if isinstance(counts, bytes) else str(counts)
    return {"size": [int(v) for v in encoded["size"]], "counts": text}
