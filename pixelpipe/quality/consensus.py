"""Consensus of several annotators: clusters of boxes, quorum, label vote, fused box, review list.

A cluster holds at most one box per annotator (the rule Weighted Boxes Fusion needs,
ZFTurbo/Weighted-Boxes-Fusion#25, and Datumaro's ``IntersectMerge`` keeps): annotators are
taken in sorted order and each one's boxes are matched to the clusters so far by the
two-pass Hungarian matching of :mod:`pixelpipe.quality.matching`, where a box's overlap with
a cluster is its smallest IoU with any member (so every member is within the threshold of
every other) and "same label" means some member has the box's label. Unmatched boxes open
new clusters. Quorum is CVAT's: ``ceil(quorum * annotators who saw the image)``. A cluster
below it, or whose label vote ties for first place, goes to the review list with the
votes; nothing is decided silently.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from pixelpipe.quality.boxes import iou_matrix
from pixelpipe.quality.inputs import (
    Boxes,
    Labels,
    QualityInputError,
    as_boxes,
    check_threshold,
    counted,
    raise_problems,
    zero_area,
)
from pixelpipe.quality.matching import match_similarity

Fusion = Literal["mean", "median", "wbf"]
BBox = tuple[float, float, float, float]
FUSIONS = ("mean", "median", "wbf")
_EPSILON = 1e-9  # 0.7 * 10 is 7.000000000000001 in floats: its quorum is 7, not 8


@dataclass(frozen=True)
class Cluster:
    """Boxes of several annotators taken to be one object.

    Attributes:
        members: Annotator -> index of its box (at most one box per annotator).
    """

    members: dict[str, int]


@dataclass(frozen=True)
class ConsensusBox:
    """One object the annotators agree on.

    Attributes:
        bbox: The fused ``[x, y, w, h]`` box.
        label: The label most members voted for.
        score: Share of the annotators who saw the image that drew it.
        annotators: The members, sorted.
        iou_mean: Mean IoU of the members' boxes with the fused box.
        votes: Annotator -> the label it gave.
    """

    bbox: BBox
    label: str
    score: float
    annotators: tuple[str, ...]
    iou_mean: float
    votes: dict[str, str]


@dataclass(frozen=True)
class ReviewItem:
    """Something a person has to decide.

    Attributes:
        bbox: Mean box of the members, ``None`` for an image label.
        votes: Annotator -> the label it gave.
        reason: ``below_quorum`` or ``tie``.
        detail: One sentence saying why.
    """

    bbox: BBox | None
    votes: dict[str, str]
    reason: str
    detail: str


def needed_votes(quorum: float, seen: int) -> int:
    """CVAT's quorum: ``ceil(quorum * seen)`` and at least 1 (5 annotators at 0.7 need 4).

    Args:
        quorum: Share of the annotators in ``(0, 1]``.
        seen: How many annotators saw the image.

    Returns:
        The smallest number of votes that reaches the quorum.

    Raises:
        QualityInputError: When ``quorum`` is not in ``(0, 1]``.
    """
    if isinstance(quorum, bool) or not isinstance(quorum, int | float) or not 0 < quorum <= 1:
        raise QualityInputError([f"quorum must be a share in (0, 1], got {quorum!r}"])
    return max(1, math.ceil(quorum * seen - _EPSILON))


def _seen(seen: Sequence[str]) -> list[str]:
    if isinstance(seen, str):
        raise QualityInputError(["seen must be a list of annotator names, not one string"])
    return list(seen)


def _check(
    per_annotator: Mapping[str, tuple[npt.ArrayLike, Sequence[str]]],
) -> dict[str, tuple[Boxes, Labels]]:
    checked: dict[str, tuple[Boxes, Labels]] = {}
    problems: list[str] = []
    for name in sorted(per_annotator, key=str):
        entry = per_annotator[name]
        if not isinstance(name, str):
            problems.append(f"annotator name {name!r} is not a string")
            continue
        try:
            boxes, labels = entry
            checked[name] = as_boxes(boxes, labels, f"annotator {name!r}")
        except QualityInputError as error:
            problems.extend(error.problems)
        except (TypeError, ValueError):
            problems.append(f"annotator {name!r}: expected a pair (boxes, labels)")
    raise_problems(problems)
    return checked


def cluster_arrays(checked: Mapping[str, tuple[Boxes, Labels]], threshold: float) -> list[Cluster]:
    """:func:`cluster_boxes` on arrays already checked, for callers that loop over images.

    Args:
        checked: Annotator -> ``(boxes (n, 4) float, labels (n,) str)``.
        threshold: Smallest IoU between any two members of a cluster.

    Returns:
        The clusters in the order they were opened.
    """
    members: list[dict[str, int]] = []
    member_boxes = np.zeros((0, 4), dtype=np.float64)
    member_labels = np.zeros(0, dtype=np.str_)
    member_cluster = np.zeros(0, dtype=np.int64)
    for name in sorted(checked):
        boxes, labels = checked[name]
        if boxes.shape[0] == 0:
            continue
        joined = np.full(boxes.shape[0], -1, dtype=np.int64)
        if members:
            order = np.argsort(member_cluster, kind="stable")
            starts = np.searchsorted(member_cluster[order], np.arange(len(members)))
            overlap = np.minimum.reduceat(iou_matrix(boxes, member_boxes[order]), starts, axis=1)
            same_pairs = labels[:, None] == member_labels[order][None, :]
            same = np.logical_or.reduceat(same_pairs, starts, axis=1)
            found = match_similarity(overlap, same, threshold, ~zero_area(boxes))
            joined[found.pairs[:, 0]] = found.pairs[:, 1]
        assigned = joined.copy()
        opened = np.flatnonzero(joined < 0)
        assigned[opened] = np.arange(len(members), len(members) + opened.size)
        for box, cluster in enumerate(assigned.tolist()):
            if cluster == len(members):
                members.append({})
            members[cluster][name] = box
        member_boxes = np.concatenate([member_boxes, boxes])
        member_labels = np.concatenate([member_labels, labels])
        member_cluster = np.concatenate([member_cluster, assigned])
    return [Cluster(members=m) for m in members]


def cluster_boxes(
    per_annotator: Mapping[str, tuple[npt.ArrayLike, Sequence[str]]], iou_threshold: float = 0.5
) -> list[Cluster]:
    """Group the boxes of several annotators on one image, at most one box per annotator.

    Args:
        per_annotator: Annotator -> ``(boxes (n, 4) [x, y, w, h], n labels)``.
        iou_threshold: Smallest IoU between any two members of a cluster.

    Returns:
        The clusters in the order they were opened (annotators in sorted order, boxes in
        input order). A zero-area box is a cluster of its own.

    Raises:
        QualityInputError: When a shape, value, label or the threshold is bad.
    """
    return cluster_arrays(_check(per_annotator), check_threshold(iou_threshold))


def _corners(boxes: Boxes) -> Boxes:
    return np.column_stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]])


def _as_bbox(corners: npt.NDArray[np.float64]) -> BBox:
    x0, y0, x1, y1 = (float(v) for v in corners)
    return (x0, y0, x1 - x0, y1 - y0)


def _fuse(boxes: Boxes, weights: npt.NDArray[np.float64], fusion: Fusion) -> BBox:
    corners = _corners(boxes)
    if fusion == "median":
        return _as_bbox(np.median(corners, axis=0))
    if fusion == "wbf" and weights.sum() > 0:
        return _as_bbox((corners * weights[:, None]).sum(axis=0) / weights.sum())
    return _as_bbox(corners.mean(axis=0))


def _tally(votes: Mapping[str, str]) -> tuple[list[str], int, str]:
    """The labels tied for first place, their vote count and the votes as text."""
    counts = Counter(votes.values())
    top = max(counts.values())
    leaders = sorted(label for label, count in counts.items() if count == top)
    text = ", ".join(f"{label} {count}" for label, count in sorted(counts.items()))
    return leaders, top, text


def _check_scores(
    scores: Mapping[str, npt.ArrayLike] | None, checked: Mapping[str, tuple[Boxes, Labels]]
) -> dict[str, npt.NDArray[np.float64]]:
    weights = {name: np.ones(boxes.shape[0]) for name, (boxes, _) in checked.items()}
    problems: list[str] = []
    for name, values in (scores or {}).items():
        if name not in checked:
            problems.append(f"scores given for annotator {name!r}, who has no boxes here")
            continue
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if array.size != weights[name].size:
            problems.append(
                f"annotator {name!r}: {counted(array.size, 'score')} for "
                f"{counted(weights[name].size, 'box', 'boxes')}"
            )
        elif not (np.isfinite(array) & (array >= 0)).all():
            problems.append(f"annotator {name!r}: scores must be finite and not negative")
        else:
            weights[name] = array
    raise_problems(problems)
    return weights


def merge_boxes(
    per_annotator: Mapping[str, tuple[npt.ArrayLike, Sequence[str]]],
    seen: Sequence[str],
    quorum: float = 0.5,
    iou_threshold: float = 0.5,
    fusion: Fusion = "mean",
    scores: Mapping[str, npt.ArrayLike] | None = None,
) -> tuple[list[ConsensusBox], list[ReviewItem]]:
    """Merge several annotators' boxes on one image into consensus boxes and a review list.

    Args:
        per_annotator: Annotator -> ``(boxes (n, 4) [x, y, w, h], n labels)``.
        seen: Every annotator who saw the image, including those who drew nothing.
        quorum: Share of ``seen`` that must have drawn a box (CVAT: ``ceil(quorum * seen)``).
        iou_threshold: Smallest IoU between any two members of a cluster.
        fusion: ``mean`` or ``median`` of the corners of the boxes that voted for the
            winning label, or ``wbf``: their score-weighted mean (Weighted Boxes Fusion with
            one box per annotator; all scores 0 falls back to the plain mean).
        scores: Annotator -> ``(n,)`` score of each box, for ``wbf`` (1 when absent).

    Returns:
        ``(consensus boxes, review items)``, each sorted by box position then label.
        A cluster drawn by fewer than the quorum is reviewed as ``below_quorum``; one whose
        vote ties for first place as ``tie``. ``score`` is members / ``len(seen)``.

    Raises:
        QualityInputError: When an input is bad, an annotator with boxes is not in
            ``seen``, or ``quorum``, ``fusion`` or a score is out of range.
    """
    checked = _check(per_annotator)
    seen_names = _seen(seen)
    problems = [
        f"annotator {name!r} has boxes but is not among the annotators who saw the image"
        for name in checked
        if name not in seen_names
    ]
    if fusion not in FUSIONS:
        problems.append(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    raise_problems(problems)
    needed = needed_votes(quorum, len(set(seen_names)))
    weights = _check_scores(scores, checked)
    clusters = cluster_arrays(checked, check_threshold(iou_threshold))
    merged: list[ConsensusBox] = []
    review: list[ReviewItem] = []
    for cluster in clusters:
        names = sorted(cluster.members)
        boxes = np.stack([checked[n][0][cluster.members[n]] for n in names])
        votes = {n: str(checked[n][1][cluster.members[n]]) for n in names}
        leaders, _, text = _tally(votes)
        mean_box = _fuse(boxes, np.ones(len(names)), "mean")
        if len(names) < needed:
            detail = f"{len(names)} of {len(set(seen_names))} annotators drew it, {needed} needed"
            review.append(ReviewItem(mean_box, votes, "below_quorum", f"{detail} ({text})"))
            continue
        if len(leaders) > 1:
            detail = f"the vote ties between {', '.join(leaders)} ({text})"
            review.append(ReviewItem(mean_box, votes, "tie", detail))
            continue
        voters = [k for k, n in enumerate(names) if votes[n] == leaders[0]]
        score_of = np.array([weights[names[k]][cluster.members[names[k]]] for k in voters])
        fused = _fuse(boxes[voters], score_of, fusion)
        overlap = iou_matrix(boxes, np.array([fused]))[:, 0]
        merged.append(
            ConsensusBox(
                bbox=fused,
                label=leaders[0],
                score=len(names) / len(set(seen_names)),
                annotators=tuple(names),
                iou_mean=float(overlap.mean()),
                votes=votes,
            )
        )
    merged.sort(key=lambda c: (c.bbox, c.label, c.annotators))
    review.sort(key=lambda r: (r.bbox or (0.0, 0.0, 0.0, 0.0), r.reason, sorted(r.votes.items())))
    return merged, review


def merge_labels(
    votes: Mapping[str, str], seen: Sequence[str], quorum: float = 0.5
) -> tuple[str | None, ReviewItem | None]:
    """Decide an image-level label by majority with a quorum (CVAT's rule for tags).

    Args:
        votes: Annotator -> the label it gave (annotators who gave none are left out).
        seen: Every annotator who saw the image.
        quorum: Share of ``seen`` the winning label needs (``ceil(quorum * seen)`` votes).

    Returns:
        ``(label, None)`` when one label leads and has the quorum; otherwise
        ``(None, review item)``: ``below_quorum`` (including no vote at all) or ``tie``.
        ``(None, None)`` when nobody saw the image.

    Raises:
        QualityInputError: When a vote is not a string, a voter is not in ``seen`` or the
            quorum is out of range.
    """
    seen_names = set(_seen(seen))
    problems = [
        f"annotator {name!r} voted but is not among the annotators who saw the image"
        for name in sorted(votes)
        if name not in seen_names
    ]
    problems += [
        f"annotator {name!r}: the label must be a string, got {label!r}"
        for name, label in sorted(votes.items())
        if not isinstance(label, str)
    ]
    raise_problems(problems)
    needed = needed_votes(quorum, len(seen_names))
    if not seen_names:
        return None, None
    ballot = {name: votes[name] for name in sorted(votes)}
    if not ballot:
        detail = f"none of {len(seen_names)} annotators labelled it, {needed} votes needed"
        return None, ReviewItem(None, ballot, "below_quorum", detail)
    leaders, top, text = _tally(ballot)
    if top < needed:
        detail = f"the leading label has {top} of {len(seen_names)} votes, {needed} needed ({text})"
        return None, ReviewItem(None, ballot, "below_quorum", detail)
    if len(leaders) > 1:
        detail = f"the vote ties between {', '.join(leaders)} ({text})"
        return None, ReviewItem(None, ballot, "tie", detail)
    return leaders[0], None
