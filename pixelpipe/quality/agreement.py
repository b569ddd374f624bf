"""Box agreement between annotators: matched pairs, F1, IoU, Krippendorff's alpha, worst images.

Input: ``(image_id, {annotator: (boxes (n, 4), labels)})`` per image. An annotator absent
from an image's dict did not see it and is left out there; one present with no boxes saw
it and drew nothing, so every box of the others there counts against agreement. Each pair
of annotators is compared on the images both saw, by the one-to-one matching of
:mod:`pixelpipe.quality.matching`; alpha is nominal over clusters of boxes from
:mod:`pixelpipe.quality.consensus` (each annotator's value is its label in the cluster,
"no box" when it saw the image and drew none there, missing when it did not see it).

Images are checked one by one and matched a chunk at a time in array operations
(:mod:`pixelpipe.quality.tallies`, :mod:`pixelpipe.quality.batch`); the report is built from
running totals, so memory does not grow with the number of boxes (only the image ids are
kept, to refuse duplicates). On an image only two annotators saw, the clusters are that
pair's matching, which is what :func:`pixelpipe.quality.consensus.cluster_boxes` finds for
two annotators.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pixelpipe.quality.credit import Credit, CreditTable
from pixelpipe.quality.inputs import (
    QualityInputError,
    check_annotators,
    check_image,
    check_threshold,
    counted,
    number,
    plain_id,
    raise_problems,
    ratio,
)
from pixelpipe.quality.reliability import nominal_alpha
from pixelpipe.quality.tallies import Checked, Totals, add_chunk

PerAnnotator = Mapping[str, tuple[npt.ArrayLike, Sequence[str]]]
ImageEntry = tuple[Hashable, PerAnnotator]
CHUNK_IMAGES = 4096  # images matched together in one array operation
CHUNK_PAIRS = 1_000_000  # candidate box pairs in one chunk (bounds its memory)


def _chunks(
    images: Iterable[Any], names: set[str], problems: list[str]
) -> Iterator[tuple[list[Hashable], list[Checked]]]:
    """Checked images in chunks; problems are collected, not raised, to report them all."""
    seen_ids: set[Hashable] = set()
    ids: list[Hashable] = []
    entries: list[Checked] = []
    pairs = 0
    for position, entry in enumerate(images):
        try:
            image_id, checked = check_image(position, entry, names, seen_ids)
        except QualityInputError as error:
            problems.extend(error.problems)
            continue
        ids.append(image_id)
        entries.append(checked)
        counts = sorted(boxes.shape[0] for boxes, _ in checked.values())
        pairs += sum(x * y for i, x in enumerate(counts) for y in counts[i + 1 :])
        if len(ids) >= CHUNK_IMAGES or pairs >= CHUNK_PAIRS:
            yield ids, entries
            ids, entries, pairs = [], [], 0
    if ids:
        yield ids, entries


def _alpha(totals: Totals) -> tuple[float | None, str | None, int]:
    if not totals.units:
        return None, "no image has boxes from two annotators who both saw it", 0
    rows = list(totals.units)
    codes = np.array(rows, dtype=np.int64)
    values = len(totals.codes) + 1
    counts = np.zeros((codes.shape[0], values), dtype=np.int64)
    for column in range(codes.shape[1]):
        seen = codes[:, column] >= 0
        np.add.at(counts, (np.flatnonzero(seen), codes[seen, column]), 1)
    times = np.array([totals.units[row] for row in rows], dtype=np.int64)
    alpha, reason = nominal_alpha(counts, times)
    return number(alpha), reason, int(times.sum())


def _notes(totals: Totals) -> list[str]:
    notes: list[str] = []
    names = totals.names
    if totals.partial:
        seen = ", ".join(f"{n} {totals.annotators[n].images}" for n in names)
        notes.append(
            f"{counted(totals.partial, 'image')} {'was' if totals.partial == 1 else 'were'} "
            f"seen by only some of the annotators (images seen: {seen}); each pair is "
            "compared on the images both saw."
        )
    if totals.single:
        notes.append(
            f"{counted(totals.single, 'image')} {'was' if totals.single == 1 else 'were'} "
            "seen by one annotator only and compared with nobody."
        )
    if totals.unseen:
        notes.append(
            f"{counted(totals.unseen, 'image')} {'was' if totals.unseen == 1 else 'were'} "
            "seen by none of the annotators compared."
        )
    for name in names:
        tally = totals.annotators[name]
        if not tally.images:
            notes.append(f"Annotator {name} saw no image.")
        elif not tally.boxes:
            notes.append(
                f"Annotator {name} drew no box on the {counted(tally.images, 'image')} it saw; "
                "every box of the others there counts against agreement."
            )
    zero = {name: totals.annotators[name].zero_area for name in names}
    if any(zero.values()):
        parts = ", ".join(f"{name} {count}" for name, count in zero.items() if count)
        total = sum(zero.values())
        notes.append(
            f"{counted(total, 'box', 'boxes')} {'has' if total == 1 else 'have'} zero area "
            f"({parts}); {'it never matches' if total == 1 else 'they never match'}."
        )
    for label, code in sorted(totals.codes.items()):
        users = np.flatnonzero(totals.class_users[code])
        if users.size == 1:
            count = counted(int(totals.class_boxes[code]), "box", "boxes")
            notes.append(f"Only {names[int(users[0])]} used the label {label} ({count}).")
    return notes


def _report(totals: Totals, threshold: float, worst: int) -> dict[str, Any]:
    names = totals.names
    pair_tallies = list(totals.pairs.values())
    matched = sum(p.matched for p in pair_tallies)
    boxes = sum(p.boxes_a + p.boxes_b for p in pair_tallies)
    compared = any(p.images for p in pair_tallies)
    matrix: dict[str, dict[str, float | None]] = {a: {b: None for b in names} for a in names}
    for (j, k), pair in totals.pairs.items():
        matrix[names[j]][names[k]] = matrix[names[k]][names[j]] = pair.f1()
    for name in names:
        matrix[name][name] = 1.0
    alpha, reason, units = _alpha(totals)
    rows = heapq.nsmallest(max(worst, 0), totals.worst, key=lambda row: row[:3])
    annotators: dict[str, dict[str, Any]] = {}
    for name in names:
        tally = totals.annotators[name]
        f1 = ratio(2 * tally.matched, tally.pair_boxes) if tally.pair_boxes else None
        annotators[name] = {
            "images": tally.images,
            "boxes": tally.boxes,
            "zero_area": tally.zero_area,
            "f1_with_others": 1.0 if tally.pair_images and not tally.pair_boxes else f1,
        }
    report: dict[str, Any] = {
        "iou_threshold": threshold,
        "images": totals.images,
        "items": totals.compared,
        "box_iou_mean": ratio(
            sum(p.iou_sum for p in pair_tallies), sum(p.iou_count for p in pair_tallies)
        ),
        "box_f1": (2 * matched / boxes if boxes else 1.0) if compared else None,
        "pairs": {f"{names[j]}|{names[k]}": t.report() for (j, k), t in totals.pairs.items()},
        "matrix": matrix,
        "krippendorff_alpha": alpha,
        "krippendorff_alpha_reason": reason,
        "krippendorff_units": units,
        "per_class": {
            label: {
                "boxes": int(totals.class_boxes[code]),
                "f1": ratio(
                    2 * int(totals.class_matches[code]), int(totals.class_pair_boxes[code])
                ),
                "iou_mean": ratio(float(totals.class_iou[code]), int(totals.class_matches[code])),
            }
            for label, code in sorted(totals.codes.items())
        },
        "annotators": annotators,
        "worst_images": [
            {"id": plain_id(row[3]), "score": row[0], "boxes": row[4]} for row in rows
        ],
        "notes": _notes(totals),
    }
    if totals.credit is not None:
        _add_credit(report, totals)
    return report


def _add_credit(report: dict[str, Any], totals: Totals) -> None:
    """The mean credit of the matched pairs, overall and per pair (with a hierarchy)."""
    tallies = totals.pairs.items()
    report["hierarchical_agreement"] = ratio(
        sum(t.credit_sum for _, t in tallies), sum(t.iou_count for _, t in tallies)
    )
    for (j, k), tally in tallies:
        entry = report["pairs"][f"{totals.names[j]}|{totals.names[k]}"]
        entry["hierarchical_agreement"] = ratio(tally.credit_sum, tally.iou_count)


def box_agreement(
    images: Iterable[ImageEntry],
    annotators: Sequence[str],
    iou_threshold: float = 0.5,
    worst: int = 20,
    credit: Credit | None = None,
) -> dict[str, Any]:
    """Agreement of several annotators' boxes over many images.

    Args:
        images: ``(image_id, {annotator: (boxes (n, 4) [x, y, w, h], n labels)})`` per
            image; an annotator absent from the dict did not see the image.
        annotators: The annotators to compare, in the order pairs are named (``"a|b"``).
        iou_threshold: Smallest IoU of a matched pair.
        worst: How many of the lowest-scoring images to list.
        credit: With a class hierarchy, the partial credit of two differing labels
            (:mod:`pixelpipe.quality.credit`): adds ``hierarchical_agreement``, the mean
            credit of the matched pairs (1 for the same label), overall and per pair.

    Returns:
        A JSON-ready dict: ``items`` (images seen by two or more), ``box_iou_mean``,
        ``box_f1`` (micro over pairs), ``pairs`` (counts, precision = b judged against a,
        recall, F1, IoU per pair), ``matrix`` (annotator x annotator F1), nominal
        ``krippendorff_alpha`` over box clusters (with its reason when undefined),
        ``per_class`` (boxes drawn; F1 = 2 x same-label matches of the class / boxes of the
        class on both sides, over pairs; mean IoU of those matches), ``annotators``
        (images, boxes, zero-area boxes, micro F1 over its pairs), ``worst_images``
        (lowest mean pair F1 on the image, 1.0 for a pair who both drew nothing; ties by
        id) and ``notes`` on the input. Undefined numbers are ``None``, never NaN.

    Raises:
        QualityInputError: Listing every bad image: a repeated id, an annotator not in
            ``annotators``, boxes of the wrong shape or labels of the wrong count; also when
            fewer than two annotators are given or a parameter is out of range.
    """
    names = check_annotators(annotators)
    threshold = check_threshold(iou_threshold)
    if len(names) < 2:
        raise QualityInputError([f"box agreement needs two or more annotators, got {names}"])
    if isinstance(worst, bool) or not isinstance(worst, int) or worst < 0:
        raise QualityInputError([f"worst must be a count of images, got {worst!r}"])
    totals = Totals.start(names)
    totals.credit = CreditTable(credit) if credit is not None else None
    problems: list[str] = []
    for ids, entries in _chunks(images, set(names), problems):
        if not problems:
            add_chunk(totals, ids, entries, threshold, worst)
    raise_problems(problems)
    return _report(totals, threshold, worst)
