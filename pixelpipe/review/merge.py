"""One consensus label set from several annotators, and the review list of what it could not decide.

:func:`consensus` runs :func:`pixelpipe.quality.consensus.merge_boxes` and ``merge_labels``
on every image: clusters of boxes with at most one box per annotator, kept when enough of
the annotators who saw the image drew it (``quorum``), labelled by vote, the box fused.
Each kept box becomes an :class:`~pixelpipe.dataset.Annotation` with ``annotator:
consensus``, ``score`` the share of annotators who drew it and the contributing annotators
in its attributes. A cluster below quorum or with a tied vote goes to the review list with
its reason; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pixelpipe.dataset import Annotation
from pixelpipe.formats.imagefolder import IMAGE_LABEL
from pixelpipe.quality.consensus import merge_boxes, merge_labels
from pixelpipe.review.gather import Gathered, ImageLabels
from pixelpipe.review.measure import NO_LABEL, tag_value, user_errors

CONSENSUS = "consensus"
"""The ``annotator`` of every consensus label."""
Fusion = Literal["mean", "median", "wbf"]


@dataclass
class Merged:
    """The consensus of every image.

    Attributes:
        labels: Per image id, its consensus annotations (boxes in the image's frame).
        review: One entry per undecided cluster or image label, with its reason.
        metrics: Counts: images, boxes in and out, review entries by reason.
    """

    labels: dict[str, list[Annotation]] = field(default_factory=dict)
    review: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def consensus(
    gathered: Gathered,
    class_ids: dict[str, int],
    quorum: float = 0.5,
    iou_threshold: float = 0.5,
    fusion: Fusion = "mean",
) -> Merged:
    """Merge every image's labels.

    Args:
        gathered: The annotators' labels.
        class_ids: Class name to the id the output uses.
        quorum: Share of the annotators who saw an image that must agree (``ceil``).
        iou_threshold: Smallest IoU between every two boxes of a cluster.
        fusion: How a cluster's box is made: ``mean``, ``median`` or ``wbf`` (weighted by
            the boxes' scores, for predictions).

    Returns:
        The consensus labels, the review list and counts.
    """
    with user_errors("consensus"):
        return _consensus(gathered, class_ids, quorum, iou_threshold, fusion)


def _consensus(
    gathered: Gathered,
    class_ids: dict[str, int],
    quorum: float,
    iou_threshold: float,
    fusion: Fusion,
) -> Merged:
    merged = Merged()
    reasons: dict[str, int] = {}
    boxes_in = boxes_out = labels_out = 0
    for one in gathered.images:
        out: list[Annotation] = []
        per = one.box_input()
        boxes_in += sum(len(labels) for _, labels in per.values())
        if any(len(labels) for _, labels in per.values()):
            scores = _scores(one)
            kept, undecided = merge_boxes(
                per, one.seen, quorum, iou_threshold, fusion=fusion, scores=scores
            )
            for box in kept:
                out.append(
                    Annotation(
                        category_id=class_ids[box.label],
                        bbox=box.bbox,
                        score=box.score,
                        annotator=CONSENSUS,
                        attributes={"annotators": list(box.annotators), "iou_mean": box.iou_mean},
                    )
                )
            boxes_out += len(kept)
            for entry in undecided:
                reasons[entry.reason] = reasons.get(entry.reason, 0) + 1
                merged.review.append(
                    {
                        "image": one.id,
                        "what": "box",
                        "reason": entry.reason,
                        "detail": entry.detail,
                        "bbox": list(entry.bbox) if entry.bbox is not None else None,
                        "votes": dict(sorted(entry.votes.items())),
                    }
                )
        if one.tags:
            votes = {a: v for a in one.seen if (v := tag_value(one, a)) not in (None, NO_LABEL)}
            label, undecided_label = merge_labels(votes, one.seen, quorum)
            if label is not None:
                for name in label.split("+"):
                    out.append(_image_label(one, class_ids[name], sorted(votes)))
                labels_out += 1
            if undecided_label is not None:
                reasons[undecided_label.reason] = reasons.get(undecided_label.reason, 0) + 1
                merged.review.append(
                    {
                        "image": one.id,
                        "what": "image_label",
                        "reason": undecided_label.reason,
                        "detail": undecided_label.detail,
                        "bbox": None,
                        "votes": dict(sorted(undecided_label.votes.items())),
                    }
                )
        merged.labels[one.id] = out
    merged.metrics = {
        "images": len(gathered.images),
        "annotators": len(gathered.annotators),
        "boxes_in": boxes_in,
        "boxes_out": boxes_out,
        "image_labels_out": labels_out,
        "review": len(merged.review),
        "review_by_reason": dict(sorted(reasons.items())),
    }
    return merged


def _scores(one: ImageLabels) -> dict[str, Any] | None:
    """Per annotator, its boxes' scores (predictions), or ``None`` when no box has one."""
    found: dict[str, Any] = {}
    for name, anns in one.annotations.items():
        boxes = [a for a in anns if not a.attributes.get(IMAGE_LABEL)]
        if any(a.score is not None for a in boxes):
            found[name] = np.array(
                [a.score if a.score is not None else 1.0 for a in boxes], dtype=np.float64
            )
    return found or None


def _image_label(one: ImageLabels, category_id: int, voters: list[str]) -> Annotation:
    """A whole-image class label in the image's frame (pixels when its size is known)."""
    width = one.width if one.width else 1.0
    height = one.height if one.height else 1.0
    return Annotation(
        category_id=category_id,
        bbox=(0.0, 0.0, float(width), float(height)),
        annotator=CONSENSUS,
        attributes={IMAGE_LABEL: True, "annotators": voters},
    )
