"""Confidence bands for a model's labels, and what a reviewer changed in them.

:func:`bands` puts each box in ``accept`` (score >= accept), ``review`` (review <= score <
accept) or ``discard`` (below review), with per-class thresholds. :func:`audited` picks a
share of accepted images for review anyway, by a hash of (seed, image id), so an image's
draw never depends on the others (adding images changes no earlier draw). :func:`changes`
compares the boxes sent to review with the boxes that came back: kept as they were,
moved, relabelled, deleted, added, by one-to-one matching (:mod:`.matching`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from pixelpipe.quality.matching import match_boxes

ACCEPT, REVIEW, DISCARD = "accept", "review", "discard"
CHANGES = ("unchanged", "moved", "relabelled", "deleted", "added")
UNCHANGED_PX = 1e-6
"""Largest corner move (pixels) that still counts as unchanged: percent <-> pixel rounding."""


def bands(
    scores: npt.ArrayLike,
    labels: Sequence[str],
    accept: float,
    review: float,
    per_class: Mapping[str, tuple[float, float]] | None = None,
) -> list[str]:
    """The band of each box.

    Args:
        scores: ``(n,)`` confidences in [0, 1].
        labels: ``(n,)`` class names.
        accept: Smallest score accepted without review.
        review: Smallest score sent to review (below: discarded).
        per_class: ``(accept, review)`` of classes that differ.

    Returns:
        ``accept``, ``review`` or ``discard`` per box.
    """
    per_class = per_class or {}
    out = []
    for score, label in zip(np.asarray(scores, dtype=np.float64).tolist(), labels, strict=True):
        high, low = per_class.get(label, (accept, review))
        out.append(ACCEPT if score >= high else REVIEW if score >= low else DISCARD)
    return out


def audited(image_id: str, seed: int, share: float) -> bool:
    """True when an accepted image is drawn for the audit (a share ``share`` of them)."""
    digest = hashlib.sha256(f"{seed}\0{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def changes(
    sent: tuple[npt.ArrayLike, Sequence[str]],
    back: tuple[npt.ArrayLike, Sequence[str]],
    iou_threshold: float = 0.5,
) -> dict[str, int]:
    """What a reviewer did to the boxes of one image.

    Boxes are matched one to one (Hungarian, same class first, then across classes); a
    matched box is ``unchanged`` when no corner moved more than :data:`UNCHANGED_PX` and
    the class is the same, ``moved`` when only the box moved, ``relabelled`` when the class
    changed; a sent box with no match was ``deleted``, a box back with no match ``added``.

    Args:
        sent: The boxes sent ``(n, 4)`` and their classes.
        back: The boxes that came back and their classes.
        iou_threshold: Smallest IoU at which two boxes are the same object.

    Returns:
        A count per kind of change (:data:`CHANGES`).
    """
    boxes_a = np.asarray(sent[0], dtype=np.float64).reshape(-1, 4)
    boxes_b = np.asarray(back[0], dtype=np.float64).reshape(-1, 4)
    found = match_boxes(boxes_a, list(sent[1]), boxes_b, list(back[1]), iou_threshold)
    counts = dict.fromkeys(CHANGES, 0)
    for (i, j), same in zip(found.pairs.tolist(), found.same_label.tolist(), strict=True):
        if not same:
            counts["relabelled"] += 1
            continue
        corners_a = np.concatenate([boxes_a[i, :2], boxes_a[i, :2] + boxes_a[i, 2:]])
        corners_b = np.concatenate([boxes_b[j, :2], boxes_b[j, :2] + boxes_b[j, 2:]])
        moved = float(np.abs(corners_a - corners_b).max()) > UNCHANGED_PX
        counts["moved" if moved else "unchanged"] += 1
    counts["deleted"] = len(found.unmatched_a)
    counts["added"] = len(found.unmatched_b)
    return counts
