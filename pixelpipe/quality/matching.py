"""One-to-one box matching: the Hungarian algorithm in two passes, as CVAT's ``match_segments``.

The first pass pairs boxes of the same label, the second pairs what is left across labels
(the label mismatches). Each pass is ``scipy.optimize.linear_sum_assignment`` maximising
the summed similarity (IoU) of the pairs it keeps, where a pair under the threshold, or of
zero similarity, or with a zero-area box, is forbidden and never returned. The same inputs
give the same pairs. :func:`match_similarity` works on any similarity matrix (consensus
uses it on box-to-cluster overlaps); :func:`match_boxes` is the IoU case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from pixelpipe.quality.boxes import iou_matrix
from pixelpipe.quality.inputs import Labels, as_boxes, check_threshold, zero_area

Indices = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BoxMatch:
    """The pairs of a one-to-one matching between two sets ``a`` and ``b``.

    Attributes:
        pairs: ``(k, 2)`` index into ``a``, index into ``b``, sorted by the index into ``a``.
        ious: ``(k,)`` the similarity (IoU) of each pair, at least the threshold.
        same_label: ``(k,)`` whether the pair has the same label (False: a label mismatch).
        unmatched_a: Indices of ``a`` in no pair, ascending.
        unmatched_b: Indices of ``b`` in no pair, ascending.
    """

    pairs: Indices
    ious: Floats
    same_label: Mask
    unmatched_a: Indices
    unmatched_b: Indices

    @property
    def matched(self) -> int:
        """Pairs with the same label."""
        return int(self.same_label.sum())

    @property
    def label_mismatch(self) -> int:
        """Pairs whose labels differ."""
        return int(self.same_label.size - self.same_label.sum())


def _assign(similarity: Floats, allowed: Mask) -> tuple[Indices, Indices]:
    """Rows and columns of a matching of allowed pairs with the largest summed similarity.

    A forbidden pair costs as much as leaving both unmatched, so the optimum of the
    rectangular assignment restricted to its allowed pairs is the optimum over all
    matchings of allowed pairs; the forbidden pairs it fills in are then dropped.
    """
    rows = np.flatnonzero(allowed.any(axis=1))
    cols = np.flatnonzero(allowed.any(axis=0))
    if rows.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    sub_allowed = allowed[np.ix_(rows, cols)]
    cost = np.where(sub_allowed, -similarity[np.ix_(rows, cols)], 0.0)
    r, c = linear_sum_assignment(cost)
    keep = sub_allowed[r, c]
    return rows[r[keep]].astype(np.int64), cols[c[keep]].astype(np.int64)


def match_similarity(
    similarity: npt.ArrayLike,
    same_label: npt.ArrayLike,
    threshold: float = 0.5,
    usable_a: npt.ArrayLike | None = None,
    usable_b: npt.ArrayLike | None = None,
) -> BoxMatch:
    """Match the rows and columns of a similarity matrix one to one, same label first.

    Args:
        similarity: ``(n, m)`` similarity in ``[0, 1]`` (IoU).
        same_label: ``(n, m)`` whether row and column have the same label.
        threshold: Smallest similarity of a pair; pairs of similarity 0 never match.
        usable_a: ``(n,)`` rows that may match at all (False for a zero-area box).
        usable_b: ``(m,)`` columns that may match at all.

    Returns:
        The pairs: same-label pairs from the first pass, then label mismatches among the
        leftovers from the second.

    Raises:
        QualityInputError: When the threshold is not in ``[0, 1]``.
    """
    limit = check_threshold(threshold)
    sim = np.asarray(similarity, dtype=np.float64)
    same = np.asarray(same_label, dtype=np.bool_)
    n, m = sim.shape
    allowed = (sim >= limit) & (sim > 0) & np.isfinite(sim)
    if usable_a is not None:
        allowed &= np.asarray(usable_a, dtype=np.bool_).reshape(n, 1)
    if usable_b is not None:
        allowed &= np.asarray(usable_b, dtype=np.bool_).reshape(1, m)
    if allowed.sum(axis=0).max(initial=0) <= 1 and allowed.sum(axis=1).max(initial=0) <= 1:
        # No box has two candidates: every allowed pair is in the optimum of both passes.
        rows, cols = np.nonzero(allowed)
    else:
        rows, cols = _two_passes(sim, allowed, same)
    left_a = np.ones(n, dtype=np.bool_)
    left_b = np.ones(m, dtype=np.bool_)
    left_a[rows] = False
    left_b[cols] = False
    return BoxMatch(
        pairs=np.column_stack([rows, cols]).astype(np.int64).reshape(-1, 2),
        ious=sim[rows, cols].astype(np.float64),
        same_label=same[rows, cols].astype(np.bool_),
        unmatched_a=np.flatnonzero(left_a).astype(np.int64),
        unmatched_b=np.flatnonzero(left_b).astype(np.int64),
    )


def _two_passes(sim: Floats, allowed: Mask, same: Mask) -> tuple[Indices, Indices]:
    """Same-label pairs first, then the leftovers across labels; pairs sorted by row."""
    rows, cols = _assign(sim, allowed & same)
    second = allowed.copy()
    second[rows, :] = False
    second[:, cols] = False
    rows2, cols2 = _assign(sim, second)
    all_rows = np.concatenate([rows, rows2])
    all_cols = np.concatenate([cols, cols2])
    order = np.argsort(all_rows, kind="stable")
    return all_rows[order], all_cols[order]


def match_arrays(
    boxes_a: Floats, labels_a: Labels, boxes_b: Floats, labels_b: Labels, threshold: float
) -> BoxMatch:
    """:func:`match_boxes` on arrays already checked by :func:`pixelpipe.quality.inputs.as_boxes`.

    Args:
        boxes_a: ``(n, 4)`` float boxes.
        labels_a: ``(n,)`` labels.
        boxes_b: ``(m, 4)`` float boxes.
        labels_b: ``(m,)`` labels.
        threshold: Smallest IoU of a pair.

    Returns:
        The matching.
    """
    return match_similarity(
        iou_matrix(boxes_a, boxes_b),
        labels_a[:, None] == labels_b[None, :],
        threshold,
        ~zero_area(boxes_a),
        ~zero_area(boxes_b),
    )


def match_boxes(
    boxes_a: npt.ArrayLike,
    labels_a: Sequence[str],
    boxes_b: npt.ArrayLike,
    labels_b: Sequence[str],
    iou_threshold: float = 0.5,
) -> BoxMatch:
    """Match two annotators' boxes on one image one to one (Hungarian, same label first).

    Args:
        boxes_a: ``(n, 4)`` ``[x, y, w, h]`` boxes of the first annotator.
        labels_a: Their ``n`` class names.
        boxes_b: ``(m, 4)`` boxes of the second annotator.
        labels_b: Their ``m`` class names.
        iou_threshold: Smallest IoU of a pair (a pair at exactly the threshold matches).

    Returns:
        The pairs (same label first, then label mismatches among the leftovers) and the
        unmatched boxes of each side. Zero-area boxes are never matched.

    Raises:
        QualityInputError: When a shape, value, label or the threshold is bad.
    """
    a, la = as_boxes(boxes_a, labels_a, "boxes_a")
    b, lb = as_boxes(boxes_b, labels_b, "boxes_b")
    return match_arrays(a, la, b, lb, check_threshold(iou_threshold))
