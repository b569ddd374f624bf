"""Overlap of COCO-style ``[x, y, w, h]`` boxes (absolute pixels, origin at the top-left)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Boxes = npt.NDArray[np.float64]


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike | None = None) -> Boxes:
    """Intersection over union of every box of ``a`` with every box of ``b``.

    Args:
        a: ``(n, 4)`` boxes ``[x, y, w, h]``.
        b: ``(m, 4)`` boxes; ``a`` itself when ``None`` (the pairwise matrix of one set).

    Returns:
        ``(n, m)`` IoU in ``[0, 1]``; 0 where the union is empty (two zero-area boxes).
    """
    first = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    second = first if b is None else np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax0, ay0 = first[:, 0], first[:, 1]
    ax1, ay1 = ax0 + first[:, 2], ay0 + first[:, 3]
    bx0, by0 = second[:, 0], second[:, 1]
    bx1, by1 = bx0 + second[:, 2], by0 + second[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(ax0[:, None], bx0[None]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(ay0[:, None], by0[None]), 0, None)
    inter = iw * ih
    union = (first[:, 2] * first[:, 3])[:, None] + (second[:, 2] * second[:, 3])[None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
