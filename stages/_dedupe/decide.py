"""Which copy of a duplicate cluster to keep, and whether the copies' labels disagree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pixelpipe.quality.boxes import iou_matrix

KeepPolicy = Literal["largest", "most_annotations", "first"]

BOX_IOU = 0.5
"""Boxes of two copies match when their IoU, in coordinates relative to the image size,
is at least this."""


@dataclass(frozen=True)
class Member:
    """What the keep policy and the report need to know of one sample.

    Attributes:
        index: Row of the sample in the input manifest.
        id: Sample id.
        source: Where it came from (the ``first`` policy orders by it).
        width: Width in pixels.
        height: Height in pixels.
        annotations: Number of annotations.
    """

    index: int
    id: str
    source: str
    width: int
    height: int
    annotations: int


def keep_order(member: Member, policy: KeepPolicy) -> tuple[Any, ...]:
    """Sort key: the member to keep sorts first. Ties end on source path, then id."""
    pixels = member.width * member.height
    if policy == "largest":
        return (-pixels, -member.annotations, member.source, member.id)
    if policy == "most_annotations":
        return (-member.annotations, -pixels, member.source, member.id)
    return (member.source, member.id)


def _relative(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (x / max(width, 1), y / max(height, 1), w / max(width, 1), h / max(height, 1))


def _names(counts: Counter[int], names: Mapping[int, str]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{n} {names.get(c, str(c))}" for c, n in sorted(counts.items()))


def conflict(
    kept: Sequence[Mapping[str, Any]],
    kept_size: tuple[int, int],
    other: Sequence[Mapping[str, Any]],
    other_size: tuple[int, int],
    names: Mapping[int, str],
    compare_boxes: bool,
) -> str | None:
    """How the removed copy's labels differ from the kept copy's, or ``None``.

    Categories are compared as multisets; boxes (when ``compare_boxes``, i.e. the copies
    are not turned relative to each other) are matched greedily per category by IoU of
    their size-relative coordinates, so a resized copy with scaled boxes agrees.

    Args:
        kept: Annotation rows of the kept sample (``category_id``, ``bbox``).
        kept_size: Its ``(width, height)``.
        other: Annotation rows of the removed sample.
        other_size: Its ``(width, height)``.
        names: Category names by id.
        compare_boxes: Whether box positions are comparable.
    """
    kept_cats = Counter(int(a["category_id"]) for a in kept)
    other_cats = Counter(int(a["category_id"]) for a in other)
    if kept_cats != other_cats:
        return (
            f"labels differ: kept copy has {_names(kept_cats, names)}; "
            f"this copy has {_names(other_cats, names)}"
        )
    if not compare_boxes:
        return None
    unmatched = 0
    for category in sorted(kept_cats):
        mine = [_relative(a["bbox"], *kept_size) for a in kept if a["category_id"] == category]
        theirs = [_relative(a["bbox"], *other_size) for a in other if a["category_id"] == category]
        for box in theirs:
            if not mine:
                unmatched += 1
                continue
            scores = iou_matrix([box], mine)[0]
            scores[np.all(np.asarray(mine) == box, axis=1)] = 1.0  # the same box, even if empty
            best = int(np.argmax(scores))
            if scores[best] < BOX_IOU:
                unmatched += 1
            else:
                mine.pop(best)
    if unmatched:
        return f"boxes differ: {unmatched} box(es) of this copy match no box of the kept copy"
    return None
