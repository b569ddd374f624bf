"""Scoring one annotator against a gold set (ground truth), as CVAT's quality reports do.

The confusion matrix has the annotator's labels as rows (CVAT's "DS") and the gold labels
as columns ("GT"), each with an ``unmatched`` entry last: a box or rating the other side
does not have. ``valid`` = matched with the same label; precision = valid / annotator's
count, recall = valid / gold count, accuracy = valid / total where total counts the
matches and the unmatched of both sides; per label, Jaccard = valid / (ds + gt - valid).
Errors are CVAT's: ``missing`` (gold without a match), ``extra`` (annotator's without a
match) and ``mismatching_label`` (matched, label differs). Undefined ratios are ``None``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from pixelpipe.quality.inputs import (
    QualityInputError,
    check_image,
    check_threshold,
    counted,
    raise_problems,
    ratio,
)
from pixelpipe.quality.matching import match_arrays

UNMATCHED = "unmatched"
Cell = tuple[str, str]  # (annotator's label or UNMATCHED, gold label or UNMATCHED)


def confusion_report(cells: Counter[Cell]) -> dict[str, Any]:
    """The CVAT-style summary of a confusion matrix given as counts per cell.

    Args:
        cells: ``(annotator's label, gold label)`` -> count, with ``"unmatched"`` on the
            side that has nothing.

    Returns:
        ``precision``, ``recall``, ``accuracy``, the counts behind them, ``confusion``
        (``labels`` with ``"unmatched"`` last, ``rows`` = annotator's labels), ``per_class``
        (valid, ds, gt, precision, recall, jaccard) and ``errors``.
    """
    labels = sorted({label for cell in cells for label in cell if label != UNMATCHED})
    axis = [*labels, UNMATCHED]
    where = {label: index for index, label in enumerate(axis)}
    rows = np.zeros((len(axis), len(axis)), dtype=np.int64)
    for (ds, gt), count in cells.items():
        rows[where[ds], where[gt]] += count
    valid_per = np.diag(rows)[:-1]
    ds_per = rows[:-1].sum(axis=1)
    gt_per = rows[:, :-1].sum(axis=0)
    valid, ds_count, gt_count = int(valid_per.sum()), int(ds_per.sum()), int(gt_per.sum())
    total = int(rows.sum())
    per_class = {
        label: {
            "valid": int(valid_per[i]),
            "ds": int(ds_per[i]),
            "gt": int(gt_per[i]),
            "precision": ratio(int(valid_per[i]), int(ds_per[i])),
            "recall": ratio(int(valid_per[i]), int(gt_per[i])),
            "jaccard": ratio(int(valid_per[i]), int(ds_per[i] + gt_per[i] - valid_per[i])),
        }
        for i, label in enumerate(labels)
    }
    matched = int(rows[:-1, :-1].sum())
    return {
        "precision": ratio(valid, ds_count),
        "recall": ratio(valid, gt_count),
        "accuracy": ratio(valid, total),
        "valid": valid,
        "ds_count": ds_count,
        "gt_count": gt_count,
        "total": total,
        "confusion": {"labels": axis, "rows": rows.tolist()},
        "per_class": per_class,
        "errors": {
            "missing": int(rows[-1, :-1].sum()),
            "extra": int(rows[:-1, -1].sum()),
            "mismatching_label": matched - valid,
        },
    }


def boxes_against_gold(
    images: Iterable[tuple[Hashable, Any]],
    annotator: str,
    gold: str,
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """Score one annotator's boxes against a gold annotator's, on the images both saw.

    Args:
        images: As :func:`pixelpipe.quality.agreement.box_agreement` takes them:
            ``(image_id, {annotator: (boxes (n, 4), labels)})``.
        annotator: The annotator scored (rows of the confusion matrix).
        gold: The gold annotator (columns); one of the dict keys.
        iou_threshold: Smallest IoU of a matched pair.

    Returns:
        A JSON-ready dict: ``images`` (compared), ``iou_mean`` over matched pairs and
        everything :func:`confusion_report` gives.

    Raises:
        QualityInputError: Listing every bad image (repeated id, bad boxes), or when
            ``annotator`` and ``gold`` are the same name.
    """
    threshold = check_threshold(iou_threshold)
    if annotator == gold:
        raise QualityInputError([f"the annotator and the gold set are both {gold!r}"])
    names = {annotator, gold}
    cells: Counter[Cell] = Counter()
    ids: set[Hashable] = set()
    problems: list[str] = []
    compared = skipped = matched = 0
    iou_sum = 0.0
    for position, entry in enumerate(images):
        try:
            _, checked = check_image(position, entry, names, ids, others=True)
        except QualityInputError as error:
            problems.extend(error.problems)
            continue
        if annotator not in checked or gold not in checked:
            skipped += 1
            continue
        compared += 1
        (ds_boxes, ds_labels), (gt_boxes, gt_labels) = checked[annotator], checked[gold]
        found = match_arrays(ds_boxes, ds_labels, gt_boxes, gt_labels, threshold)
        pairs = found.pairs
        cells.update(
            zip(ds_labels[pairs[:, 0]].tolist(), gt_labels[pairs[:, 1]].tolist(), strict=True)
        )
        cells.update((label, UNMATCHED) for label in ds_labels[found.unmatched_a].tolist())
        cells.update((UNMATCHED, label) for label in gt_labels[found.unmatched_b].tolist())
        matched += int(found.ious.size)
        iou_sum += float(found.ious.sum())
    raise_problems(problems)
    notes = []
    if skipped:
        notes.append(
            f"{counted(skipped, 'image')} not seen by both {annotator} and {gold} "
            f"{'is' if skipped == 1 else 'are'} left out."
        )
    return {
        "annotator": annotator,
        "gold": gold,
        "iou_threshold": threshold,
        "images": compared,
        "iou_mean": ratio(iou_sum, matched),
        **confusion_report(cells),
        "notes": notes,
    }


def labels_against_gold(
    ratings_for_annotator: Sequence[str | None], gold: Sequence[str | None]
) -> dict[str, Any]:
    """Score one annotator's image labels against gold labels, item by item.

    Items without a gold label are left out (nobody knows the answer there). A gold item
    the annotator did not rate counts as ``missing`` (the ``unmatched`` row), so
    ``accuracy`` is the share of gold items where the annotator gave the gold label and
    equals ``recall``; ``precision`` is the share of the annotator's ratings on gold items
    that are right.

    Args:
        ratings_for_annotator: One label or ``None`` per item.
        gold: The gold label or ``None`` per item, in the same order.

    Returns:
        A JSON-ready dict: ``items`` (gold items), ``rated`` (of those, rated by the
        annotator), ``not_in_gold`` (rated items without a gold label) and everything
        :func:`confusion_report` gives.

    Raises:
        QualityInputError: When the lengths differ or a value is neither a label nor None.
    """
    mine, truth = list(ratings_for_annotator), list(gold)
    problems: list[str] = []
    if len(mine) != len(truth):
        problems.append(f"{len(mine)} ratings but {len(truth)} gold labels")
    for side, values in (("rating", mine), ("gold label", truth)):
        problems += [
            f"item {index}: a {side} must be a label or None, got {value!r}"
            for index, value in enumerate(values)
            if value is not None and not isinstance(value, str)
        ]
    raise_problems(problems)
    cells: Counter[Cell] = Counter(
        (UNMATCHED if rating is None else rating, answer)
        for rating, answer in zip(mine, truth, strict=True)
        if answer is not None
    )
    items = sum(1 for answer in truth if answer is not None)
    return {
        "items": items,
        "rated": sum(
            1 for r, a in zip(mine, truth, strict=True) if a is not None and r is not None
        ),
        "not_in_gold": sum(
            1 for r, a in zip(mine, truth, strict=True) if a is None and r is not None
        ),
        **confusion_report(cells),
    }
