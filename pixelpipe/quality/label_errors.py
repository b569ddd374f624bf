"""Likely label errors of object detection, from a model's predictions: cleanlab's ObjectLab.

An *item* is one set of human boxes on an image and a model's predictions of that image
(COCO ``[x, y, w, h]`` pixels, category ids). :func:`to_cleanlab` converts items to
cleanlab's formats (labels ``{'bboxes': (L, 4) xyxy, 'labels': (L,)}``; predictions ``K``
arrays ``(M, 5)`` of ``x1, y1, x2, y2, prob``, one per class, classes ``0..K-1`` in category
id order); :func:`find_issues` scores them with ``cleanlab.object_detection.rank``:

- *overlooked*, per prediction (``compute_overlooked_box_scores``): one with ``prob >=
  0.95`` overlapping no label box scores its similarity to the nearest label box of its
  class (at most 0.1), or ``min_similarity x (1 - prob)`` when there is none; others NaN;
- *badly located*, per label box (``compute_badloc_box_scores``): the best similarity to a
  prediction of its class with ``prob > 0.5`` that overlaps it (1 when none);
- *swapped*, per label box (``compute_swap_box_scores``): ``1 -`` the similarity to the
  nearest prediction of another class with ``prob > 0.95`` (1 when none); a label box that
  nearly coincides (IoU >= 0.95) with a label of another class scores the minimum.

Similarity is ``0.9 IoU + 0.1 exp(-0.1 d)``, ``d`` the centres' distance in pixels;
``min_similarity`` its smallest non-zero value over every item. Each subtype is pooled per
item by softmin (temperature 0.1) and the label quality is their geometric mean, weights
1/3 (as ``get_label_quality_scores``): 1 is clean, near 0 likely wrong.

Flags (``threshold=None``) follow cleanlab's ``object_detection.filter.find_label_issues``:
a box is an issue when its score is at most ``0.8 x 0.25 x AP`` of its class (the
prediction's for overlooked, the label's otherwise), AP averaged over IoU 0.50:0.05:0.95
(:func:`class_thresholds`); an item is flagged when any box is. The cut is at most 0.2 (AP
1): a label box overlapping its prediction by IoU below about 0.2 is badly located, one a
confident other-class prediction covers at IoU above about 0.8 is swapped. With a number
``threshold``, an item is flagged when its label quality is at most it (cleanlab's
``issues_from_scores``, default 0.1), for its boxes scoring at most it.

AP and similarities are computed here in cleanlab's arithmetic (its private AP helper
starts a process pool per IoU threshold, its similarities are Python loops); the tests
check the flags equal ``find_label_issues`` and the scores ``get_label_quality_scores``.
Predictions should be out-of-sample (cross-validated). Scores depend on all items together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pixelpipe.quality.inputs import QualityInputError, raise_problems

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

OVERLOOKED = "overlooked"
BADLY_LOCATED = "badly_located"
SWAPPED = "swapped"
REASONS = (OVERLOOKED, BADLY_LOCATED, SWAPPED)
"""The issue kinds, in the order ties between them are broken."""

# cleanlab's defaults (cleanlab/internal/constants.py; the tests check they still agree).
ALPHA = 0.9
"""Weight of IoU against the centre-distance term in the similarity of two boxes."""
EUC_FACTOR = 0.1
"""The distance term is ``exp(-EUC_FACTOR x distance in pixels)``."""
EPSILON = 1e-6
"""Smallest union area in cleanlab's IoU (no division by zero)."""
LOW_PROBABILITY_THRESHOLD = 0.5
"""Predictions above this confidence are considered for badly located boxes."""
HIGH_PROBABILITY_THRESHOLD = 0.95
"""Predictions at or above this confidence count for overlooked objects, above it for swaps."""
TEMPERATURE = 0.1
"""Softmin temperature pooling an item's box scores of one subtype."""
TINY_VALUE = 1e-100
"""Added before the logarithm of the geometric mean."""
WEIGHTS = {OVERLOOKED: 1 / 3, BADLY_LOCATED: 1 / 3, SWAPPED: 1 / 3}
"""Weights of the three subtypes in an item's label quality."""
AP_SCALE_FACTOR = 0.25
"""A class's AP times this is its box-score cut, before the factor of each subtype."""
THRESHOLD_FACTOR = {OVERLOOKED: 0.8, BADLY_LOCATED: 0.8, SWAPPED: 0.8}
"""Factor of the class cut per subtype: a box is an issue at score <= factor x cut."""
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10, endpoint=True)
"""IoU thresholds of the per-class AP, averaged (COCO's 0.50:0.05:0.95)."""


@dataclass(frozen=True)
class Item:
    """One set of human boxes on an image and a model's predictions of it.

    Attributes:
        labels: ``(L, 4)`` human boxes ``[x, y, w, h]`` in pixels (``L`` may be 0).
        label_classes: ``(L,)`` their category ids.
        predictions: ``(M, 4)`` predicted boxes ``[x, y, w, h]``.
        prediction_classes: ``(M,)`` their category ids.
        prediction_scores: ``(M,)`` their confidences in ``[0, 1]``.
        name: Where the item comes from (``image 'a.jpg', annotator 'ann'``), for messages.
    """

    labels: npt.ArrayLike
    label_classes: npt.ArrayLike
    predictions: npt.ArrayLike
    prediction_classes: npt.ArrayLike
    prediction_scores: npt.ArrayLike
    name: str = ""


@dataclass(frozen=True)
class Cleanlab:
    """Items in cleanlab's formats (:func:`to_cleanlab`).

    Attributes:
        labels: Per item ``{'bboxes': (L, 4) xyxy, 'labels': (L,) class index}``.
        predictions: Per item ``K`` arrays ``(M_k, 5)`` of ``x1, y1, x2, y2, prob``.
        classes: The category id of each class index.
        order: Per item, the input position of each prediction in cleanlab's (class) order.
    """

    labels: list[dict[str, Any]]
    predictions: list[list[F64]]
    classes: list[int]
    order: list[I64]


@dataclass(frozen=True)
class ItemIssues:
    """What cleanlab found in one item.

    Attributes:
        score: Label quality in ``[0, 1]``: 1 clean, lower more likely wrong.
        overlooked: The item's pooled overlooked score (1 when no prediction counts).
        badly_located: The pooled badly located score.
        swapped: The pooled swapped score.
        flagged: Whether the item is a likely label error.
        reasons: The issue kinds found, most severe (lowest pooled score) first.
        label_badly_located: ``(L,)`` badly located score of each label box.
        label_swapped: ``(L,)`` swapped score of each label box.
        label_reasons: Per label box, the issue kinds it is flagged for (empty: fine).
        prediction_overlooked: ``(M,)`` overlooked score of each prediction (NaN: not one).
        prediction_flagged: ``(M,)`` whether the prediction is an overlooked object.
    """

    score: float
    overlooked: float
    badly_located: float
    swapped: float
    flagged: bool
    reasons: tuple[str, ...]
    label_badly_located: F64
    label_swapped: F64
    label_reasons: tuple[tuple[str, ...], ...]
    prediction_overlooked: F64
    prediction_flagged: Bools

    @property
    def reason(self) -> str | None:
        """The most severe issue kind (``None``: not flagged)."""
        return self.reasons[0] if self.reasons else None


@dataclass(frozen=True)
class Findings:
    """What :func:`find_issues` returns.

    Attributes:
        items: One :class:`ItemIssues` per item, in order.
        classes: The category ids, in cleanlab's class order.
        cuts: Each class's ``0.25 x AP``, in that order (``None``: a number threshold).
    """

    items: list[ItemIssues]
    classes: list[int]
    cuts: F32 | None


def _checked(item: Item, index: int) -> tuple[F64, I64, F64, I64, F64, list[str]]:
    """An item's arrays, and every problem found with them."""
    where = item.name or f"item #{index}"
    problems: list[str] = []

    def boxes(value: npt.ArrayLike, what: str) -> F64 | None:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(f"{where}: {what} are not numbers")
            return None
        array = array.reshape(0, 4) if array.size == 0 else array
        if array.ndim != 2 or array.shape[1] != 4:
            problems.append(f"{where}: {what} must be (n, 4) [x, y, w, h], got {array.shape}")
            return None
        bad = ~np.isfinite(array).all(axis=1) | (array[:, 2] < 0) | (array[:, 3] < 0)
        if bad.any():
            problems.append(
                f"{where}: {int(bad.sum())} {what} have a value that is not a finite number "
                "or a negative width or height"
            )
        return array

    def ids(value: npt.ArrayLike, found: F64 | None, what: str) -> I64:
        count = 0 if found is None else len(found)
        array = np.asarray(value, dtype=object).reshape(-1)
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in array):
            problems.append(f"{where}: {what} must be integer category ids")
        elif found is not None and array.size != count:
            problems.append(f"{where}: {count} boxes but {array.size} {what}")
        else:
            return array.astype(np.int64).reshape(-1)
        return np.zeros(count, dtype=np.int64)

    found_labels = boxes(item.labels, "label boxes")
    label_classes = ids(item.label_classes, found_labels, "label classes")
    found_predictions = boxes(item.predictions, "predicted boxes")
    prediction_classes = ids(item.prediction_classes, found_predictions, "prediction classes")
    labels = np.zeros((0, 4)) if found_labels is None else found_labels
    predictions = np.zeros((0, 4)) if found_predictions is None else found_predictions
    try:
        scores = np.asarray(item.prediction_scores, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        scores = np.full(len(predictions), np.nan)
    if scores.size != len(predictions):
        problems.append(f"{where}: {len(predictions)} predictions but {scores.size} scores")
        scores = np.ones(len(predictions))
    elif not (np.isfinite(scores) & (scores >= 0) & (scores <= 1)).all():
        problems.append(f"{where}: a prediction's score is not a number in [0, 1]")
    return labels, label_classes, predictions, prediction_classes, scores, problems


def _xyxy(boxes: F64) -> F64:
    """``[x, y, w, h]`` to ``[x1, y1, x2, y2]``."""
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def to_cleanlab(items: Sequence[Item]) -> Cleanlab:
    """Convert items to cleanlab's label and prediction formats.

    Args:
        items: The items; class ids may be any integers.

    Returns:
        The labels and predictions, classes numbered ``0..K-1`` in the order of the sorted
        category ids found in either (an empty ``(0, 5)`` array for a class an item lacks).

    Raises:
        QualityInputError: Listing every bad item (shapes, non-finite or negative sizes,
            scores outside ``[0, 1]``).
    """
    problems: list[str] = []
    checked: list[tuple[F64, I64, F64, I64, F64]] = []
    for number, item in enumerate(items):
        boxes, label_classes, predicted, predicted_classes, scores, found = _checked(item, number)
        problems += found
        checked.append((boxes, label_classes, predicted, predicted_classes, scores))
    raise_problems(problems)
    classes = sorted({int(c) for a in checked for c in (*a[1].tolist(), *a[3].tolist())})
    lookup = {c: i for i, c in enumerate(classes)}
    labels: list[dict[str, Any]] = []
    predictions: list[list[F64]] = []
    orders: list[I64] = []
    for boxes, label_classes, predicted, predicted_classes, scores in checked:
        labels.append(
            {
                "bboxes": _xyxy(boxes),
                "labels": np.array([lookup[int(c)] for c in label_classes], dtype=np.int64),
            }
        )
        which = np.array([lookup[int(c)] for c in predicted_classes], dtype=np.int64)
        rows = np.column_stack([_xyxy(predicted), scores])
        predictions.append([rows[which == k] for k in range(len(classes))])
        orders.append(np.argsort(which, kind="stable").astype(np.int64))
    return Cleanlab(labels, predictions, classes, orders)


def _iou(first: F64, second: F64) -> F64:
    """IoU of every pair of xyxy boxes, as ``cleanlab...rank._get_iou`` computes it."""
    left = np.maximum(first[:, None, 0], second[None, :, 0])
    top = np.maximum(first[:, None, 1], second[None, :, 1])
    right = np.minimum(first[:, None, 2], second[None, :, 2])
    bottom = np.minimum(first[:, None, 3], second[None, :, 3])
    inter = (right - left) * (bottom - top)
    area_a = (first[:, 2] - first[:, 0]) * (first[:, 3] - first[:, 1])
    area_b = (second[:, 2] - second[:, 0]) * (second[:, 3] - second[:, 1])
    union = np.maximum(area_a[:, None] + area_b[None, :] - inter, EPSILON)
    apart = (right < left) | (bottom < top)
    return np.where(apart, 0.0, inter / union)


def _similarity(labels: F64, predicted: F64) -> tuple[F64, F64]:
    """``(IoU, similarity)`` of every label box with every predicted box, as cleanlab."""
    iou = _iou(labels, predicted)
    centre_l = (labels[:, :2] + labels[:, 2:]) / 2
    centre_p = (predicted[:, :2] + predicted[:, 2:]) / 2
    delta = centre_l[:, None, :] - centre_p[None, :, :]
    distance = np.sqrt(delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1])
    dist_matrix = 1 - np.exp(-distance * EUC_FACTOR)
    return iou, iou * ALPHA + (1 - ALPHA) * (1 - dist_matrix)


def _auxiliary(data: Cleanlab) -> list[dict[str, Any]]:
    """The ``auxiliary_inputs`` of cleanlab's scores: boxes, classes, similarity."""
    out: list[dict[str, Any]] = []
    for label, prediction in zip(data.labels, data.predictions, strict=True):
        rows = np.concatenate([np.zeros((0, 5)), *prediction])
        classes = np.repeat(
            np.arange(len(prediction), dtype=np.int64), [len(p) for p in prediction]
        )
        iou, similarity = _similarity(label["bboxes"], rows[:, :4])
        out.append(
            {
                "pred_labels": classes,
                "pred_label_probs": rows[:, 4],
                "pred_bboxes": rows[:, :4],
                "lab_labels": label["labels"],
                "lab_bboxes": label["bboxes"],
                "similarity_matrix": similarity,
                "iou_matrix": iou,
            }
        )
    smallest = 1.0
    for entry in out:
        nonzero = entry["similarity_matrix"][np.nonzero(entry["similarity_matrix"])]
        smallest = min(smallest, float(np.min(nonzero)) if nonzero.size else 1.0)
    for entry in out:
        entry["min_possible_similarity"] = smallest
    return out


def _average_precision(recall: F64, precision: F32) -> np.float32:
    """All-point interpolated AP, in cleanlab's arithmetic (``_calculate_average_precision``)."""
    rec = np.concatenate([[0.0], recall, [1.0]])
    prec = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
    index = np.where(rec[1:] != rec[:-1])[0]
    return np.float32(np.sum((rec[index + 1] - rec[index]) * prec[index + 1]))


def _matching_inputs(
    labels: Sequence[dict[str, Any]], predictions: Sequence[list[F64]], count: int
) -> list[tuple[F64, I64, I64, F64]]:
    """Per class: each prediction's best IoU with a label box of its class (-1: none).

    With it, that box's dataset-wide id, the prediction's place in its item's confidence
    order (cleanlab's ``argsort``, ties broken as it does) and its confidence.
    """
    parts: list[list[tuple[F64, I64, I64, F64]]] = [[] for _ in range(count)]
    seen, done = 0, [0] * count
    for label, prediction in zip(labels, predictions, strict=True):
        lab = label["labels"]
        for k, rows in enumerate(prediction):
            iou = np.where(lab[None, :] == k, _iou(rows[:, :4], label["bboxes"]), -1.0)
            best = iou.max(axis=1) if lab.size else np.full(len(rows), -1.0)
            which = iou.argmax(axis=1) if lab.size else np.zeros(len(rows), np.int64)
            order = np.argsort(-rows[:, 4]).astype(np.int64) + done[k]
            parts[k].append((best, which + seen, order, rows[:, 4]))
            done[k] += len(rows)
        seen += len(lab)
    empty = (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    return [
        tuple(np.concatenate([e[i] for e in (empty, *part)]) for i in range(4))  # type: ignore[misc]
        for part in parts
    ]


def class_thresholds(labels: Sequence[dict[str, Any]], predictions: Sequence[list[F64]]) -> F32:
    """Each class's cut before the subtype factor: ``0.25 x`` its mean AP over IoU 0.5:0.95.

    The same figure as cleanlab's ``object_detection.filter._get_per_class_ap`` (greedy
    matching in confidence order per item, all-point AP in float32), without its process
    pool and per-item loops.

    Args:
        labels: cleanlab labels (:attr:`Cleanlab.labels`).
        predictions: cleanlab predictions (:attr:`Cleanlab.predictions`).

    Returns:
        ``(K,)`` float32 cuts (float32 as cleanlab computes them, so flags agree exactly).
    """
    count = len(predictions[0]) if len(predictions) else 0
    truths = np.zeros(count, dtype=np.int64)
    for label in labels:
        truths += np.bincount(label["labels"], minlength=count)[:count]
    out = np.zeros(count, dtype=np.float32)
    eps = np.finfo(np.float32).eps
    for k, (best, box, order, confidence) in enumerate(
        _matching_inputs(labels, predictions, count)
    ):
        ranked = np.argsort(-confidence)
        per_threshold = []
        for threshold in IOU_THRESHOLDS:
            # in each item's confidence order, the first prediction reaching a box takes it
            reaching = order[best[order] >= threshold]
            _, first = np.unique(box[reaching], return_index=True)
            tp = np.zeros(len(best), dtype=np.float32)
            tp[reaching[first]] = 1.0
            fp = (np.float32(1) - tp).astype(np.float32)
            tp_sum = np.cumsum(tp[ranked], dtype=np.float32)
            fp_sum = np.cumsum(fp[ranked], dtype=np.float32)
            recall = tp_sum / np.maximum(np.array([truths[k]]), eps)
            precision = tp_sum / np.maximum(tp_sum + fp_sum, eps)
            per_threshold.append(np.array([_average_precision(recall, precision)], np.float32))
        out[k] = np.mean(per_threshold) * AP_SCALE_FACTOR
    return out


def find_issues(items: Sequence[Item], threshold: float | None = None) -> Findings:
    """Score every item with cleanlab and flag its likely label errors with their kind.

    Args:
        items: The items (each should have a prediction: without one nothing is checked).
        threshold: ``None``: cleanlab's ``find_label_issues`` rule (per-class cuts); a
            number in ``[0, 1]``: flag the items whose label quality is at most it, for the
            boxes whose score is at most it.

    Returns:
        The issues of each item, and the per-class cuts.

    Raises:
        QualityInputError: Listing every bad item, or a threshold outside ``[0, 1]``.
    """
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 1  # NaN fails this too
    ):
        raise QualityInputError([f"threshold must be a number in [0, 1], got {threshold!r}"])
    data = to_cleanlab(items)
    if not items:
        return Findings([], [], None)
    from cleanlab.object_detection import rank

    aux = _auxiliary(data)
    box_scores = {
        OVERLOOKED: rank.compute_overlooked_box_scores(
            alpha=ALPHA, high_probability_threshold=HIGH_PROBABILITY_THRESHOLD, auxiliary_inputs=aux
        ),
        BADLY_LOCATED: rank.compute_badloc_box_scores(
            alpha=ALPHA, low_probability_threshold=LOW_PROBABILITY_THRESHOLD, auxiliary_inputs=aux
        ),
        SWAPPED: rank.compute_swap_box_scores(
            alpha=ALPHA,
            high_probability_threshold=HIGH_PROBABILITY_THRESHOLD,
            overlapping_label_check=True,
            auxiliary_inputs=aux,
        ),
    }
    pooled = {
        name: rank.pool_box_scores_per_image(list(scores), temperature=TEMPERATURE)
        for name, scores in box_scores.items()
    }
    quality = np.exp(
        WEIGHTS[OVERLOOKED] * np.log(TINY_VALUE + pooled[OVERLOOKED])
        + WEIGHTS[BADLY_LOCATED] * np.log(TINY_VALUE + pooled[BADLY_LOCATED])
        + WEIGHTS[SWAPPED] * np.log(TINY_VALUE + pooled[SWAPPED])
    )
    cuts = class_thresholds(data.labels, data.predictions) if threshold is None else None
    chosen = (
        set()
        if threshold is None
        else set(rank.issues_from_scores(quality, threshold=threshold).tolist())
    )
    results = []
    for index, entry in enumerate(aux):
        scores = {name: np.asarray(box_scores[name][index], np.float64) for name in REASONS}
        hits = {}
        for name in REASONS:
            classes = entry["pred_labels"] if name == OVERLOOKED else entry["lab_labels"]
            limits = (
                cuts[classes] * THRESHOLD_FACTOR[name]
                if cuts is not None
                else np.full(len(classes), float(threshold or 0) if index in chosen else -1.0)
            )
            hits[name] = np.asarray(np.nan_to_num(scores[name], nan=1.0) <= limits, np.bool_)
        subtype = {name: float(pooled[name][index]) for name in REASONS}
        reasons = sorted(
            (name for name in REASONS if hits[name].any()),
            key=lambda name: (subtype[name], REASONS.index(name)),
        )
        if index in chosen and not reasons:  # a number threshold met by rounding alone
            reasons = [min(REASONS, key=lambda name: subtype[name])]
        into = data.order[index]  # cleanlab's order -> input order, for the predictions
        overlooked, overlooked_hit = np.full(len(into), np.nan), np.zeros(len(into), np.bool_)
        overlooked[into], overlooked_hit[into] = scores[OVERLOOKED], hits[OVERLOOKED]
        results.append(
            ItemIssues(
                score=float(quality[index]),
                overlooked=subtype[OVERLOOKED],
                badly_located=subtype[BADLY_LOCATED],
                swapped=subtype[SWAPPED],
                flagged=bool(reasons),
                reasons=tuple(reasons),
                label_badly_located=scores[BADLY_LOCATED],
                label_swapped=scores[SWAPPED],
                label_reasons=tuple(
                    tuple(n for n, hit in ((BADLY_LOCATED, b), (SWAPPED, w)) if hit)
                    for b, w in zip(hits[BADLY_LOCATED], hits[SWAPPED], strict=True)
                ),
                prediction_overlooked=overlooked,
                prediction_flagged=overlooked_hit,
            )
        )
    return Findings(results, data.classes, cuts)
