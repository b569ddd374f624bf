"""Running totals of box agreement, added a chunk of images at a time with array operations.

:func:`add_chunk` takes a few thousand checked images, concatenates each annotator's boxes,
matches every pair of annotators over all of them at once (:func:`match_many`) and adds
the counts to :class:`Totals`: per pair, per class, per annotator, the image scores for
the worst-images list and the units of Krippendorff's alpha. Memory holds one chunk and
totals whose size depends on the annotators and classes, not on the images.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pixelpipe.quality.batch import ManyMatch, match_many, take_ranges
from pixelpipe.quality.consensus import cluster_arrays
from pixelpipe.quality.credit import CreditTable
from pixelpipe.quality.inputs import Boxes, Labels, id_key, ratio, zero_area
from pixelpipe.quality.matching import Indices

NO_BOX = 0  # alpha value of an annotator who saw the image but has no box in the cluster
Checked = Mapping[str, tuple[Boxes, Labels]]
WorstRow = tuple[float, tuple[int, int, str], int, Any, dict[str, int]]


@dataclass
class PairTally:
    """Running totals of one annotator pair over the images both saw."""

    images: int = 0
    boxes_a: int = 0
    boxes_b: int = 0
    matched: int = 0
    label_mismatch: int = 0
    iou_sum: float = 0.0
    iou_count: int = 0
    credit_sum: float = 0.0  # with a hierarchy: the credit of the matched pairs

    def f1(self) -> float | None:
        """2 x same-label matches / boxes of both; 1.0 if both drew nothing; None if unseen."""
        if not self.images:
            return None
        total = self.boxes_a + self.boxes_b
        return 2 * self.matched / total if total else 1.0

    def report(self) -> dict[str, Any]:
        """The pair's JSON entry (precision: ``b`` judged against ``a``)."""
        pairs = self.matched + self.label_mismatch
        return {
            "images": self.images,
            "boxes_a": self.boxes_a,
            "boxes_b": self.boxes_b,
            "matched": self.matched,
            "label_mismatch": self.label_mismatch,
            "unmatched_a": self.boxes_a - pairs,
            "unmatched_b": self.boxes_b - pairs,
            "precision": ratio(self.matched, self.boxes_b),
            "recall": ratio(self.matched, self.boxes_a),
            "f1": self.f1(),
            "iou_mean": ratio(self.iou_sum, self.iou_count),
        }


@dataclass
class AnnotatorTally:
    """Running totals of one annotator."""

    images: int = 0
    boxes: int = 0
    zero_area: int = 0
    pair_images: int = 0
    pair_boxes: int = 0
    matched: int = 0


def _zeros(dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.zeros(0, dtype=dtype)


@dataclass
class Totals:
    """Everything counted so far. Per-class arrays are indexed by ``codes[label]``."""

    names: list[str]
    pairs: dict[tuple[int, int], PairTally]
    annotators: dict[str, AnnotatorTally]
    codes: dict[str, int] = field(default_factory=dict)
    class_boxes: npt.NDArray[np.int64] = field(default_factory=lambda: _zeros(np.int64))
    class_pair_boxes: npt.NDArray[np.int64] = field(default_factory=lambda: _zeros(np.int64))
    class_matches: npt.NDArray[np.int64] = field(default_factory=lambda: _zeros(np.int64))
    class_iou: npt.NDArray[np.float64] = field(default_factory=lambda: _zeros(np.float64))
    class_users: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    units: Counter[tuple[int, ...]] = field(default_factory=Counter)
    images: int = 0
    compared: int = 0
    single: int = 0
    unseen: int = 0
    partial: int = 0
    worst: list[WorstRow] = field(default_factory=list)
    credit: CreditTable | None = None  # with a hierarchy: the partial credit of two labels

    @classmethod
    def start(cls, names: list[str]) -> Totals:
        """Empty totals for these annotators."""
        return cls(
            names=names,
            pairs={pair: PairTally() for pair in itertools.combinations(range(len(names)), 2)},
            annotators={name: AnnotatorTally() for name in names},
            class_users=np.zeros((0, len(names)), dtype=np.int64),
        )

    def encode(self, labels: list[str]) -> Indices:
        """Codes of these labels, new labels getting the next codes (in the order given)."""
        for label in labels:
            if label not in self.codes:
                self.codes[label] = len(self.codes)
        size = len(self.codes)
        grow = size - self.class_boxes.size
        if grow > 0:
            self.class_boxes = np.pad(self.class_boxes, (0, grow))
            self.class_pair_boxes = np.pad(self.class_pair_boxes, (0, grow))
            self.class_matches = np.pad(self.class_matches, (0, grow))
            self.class_iou = np.pad(self.class_iou, (0, grow))
            self.class_users = np.pad(self.class_users, ((0, grow), (0, 0)))
        return np.array([self.codes[label] for label in labels], dtype=np.int64)


@dataclass
class Side:
    """One annotator's boxes over a chunk of images, concatenated."""

    seen: npt.NDArray[np.bool_]
    offsets: Indices
    boxes: Boxes
    codes: Indices


def _sides(totals: Totals, entries: list[Checked]) -> list[Side]:
    empty_boxes = np.zeros((0, 4), dtype=np.float64)
    empty_labels = np.zeros(0, dtype=np.str_)
    gathered = []
    for name in totals.names:
        parts = [entry.get(name) for entry in entries]
        seen = np.array([part is not None for part in parts], dtype=np.bool_)
        box_parts = [empty_boxes if part is None else part[0] for part in parts]
        label_parts = [empty_labels if part is None else part[1] for part in parts]
        counts = np.array([b.shape[0] for b in box_parts], dtype=np.int64)
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        gathered.append((seen, offsets, np.concatenate(box_parts), np.concatenate(label_parts)))
    every = np.concatenate([labels for *_, labels in gathered])
    kinds, inverse = np.unique(every, return_inverse=True)
    # first appearance order, so codes do not depend on how the images were chunked
    firsts = np.full(kinds.size, every.size, dtype=np.int64)
    np.minimum.at(firsts, inverse.reshape(-1), np.arange(every.size))
    order = np.argsort(firsts, kind="stable")
    code_of = np.zeros(kinds.size, dtype=np.int64)
    code_of[order] = totals.encode([str(k) for k in kinds[order].tolist()])
    codes = code_of[inverse.reshape(-1)]
    sides = []
    start = 0
    for seen, offsets, boxes, labels in gathered:
        sides.append(Side(seen, offsets, boxes, codes[start : start + labels.size]))
        start += labels.size
    return sides


def _count_annotators(totals: Totals, sides: list[Side]) -> None:
    size = len(totals.codes)
    for index, (name, side) in enumerate(zip(totals.names, sides, strict=True)):
        tally = totals.annotators[name]
        tally.images += int(side.seen.sum())
        tally.boxes += int(side.boxes.shape[0])
        tally.zero_area += int(zero_area(side.boxes).sum())
        per_class = np.bincount(side.codes, minlength=size)
        totals.class_boxes += per_class
        totals.class_users[:, index] += per_class


@dataclass(frozen=True)
class PairChunk:
    """One annotator pair's matching over the images of a chunk both saw."""

    pair: tuple[int, int]
    images: Indices  # chunk positions of the images both saw
    codes_a: Indices  # label codes of the first annotator's boxes on those images
    codes_b: Indices
    per_image_a: Indices  # boxes per image
    per_image_b: Indices
    found: ManyMatch  # pairs index into codes_a / codes_b, images into ``images``

    @classmethod
    def match(cls, pair: tuple[int, int], a: Side, b: Side, threshold: float) -> PairChunk | None:
        """Match the pair on the images both saw; None when there are none."""
        images = np.flatnonzero(a.seen & b.seen)
        if not images.size:
            return None
        sub_a, off_a = take_ranges(a.offsets, images)
        sub_b, off_b = take_ranges(b.offsets, images)
        found = match_many(
            a.boxes[sub_a], a.codes[sub_a], off_a, b.boxes[sub_b], b.codes[sub_b], off_b, threshold
        )
        return cls(
            pair, images, a.codes[sub_a], b.codes[sub_b], np.diff(off_a), np.diff(off_b), found
        )


def _count_pair(totals: Totals, chunk: PairChunk) -> npt.NDArray[np.float64]:
    """Add one pair's matching to the totals; return the pair's F1 on each image."""
    found, same = chunk.found, chunk.found.same_label
    tally = totals.pairs[chunk.pair]
    tally.images += int(chunk.images.size)
    tally.boxes_a += int(chunk.codes_a.size)
    tally.boxes_b += int(chunk.codes_b.size)
    tally.matched += int(same.sum())
    tally.label_mismatch += int(same.size - same.sum())
    tally.iou_sum += float(found.ious.sum())
    tally.iou_count += int(found.ious.size)
    if totals.credit is not None:
        labels = sorted(totals.codes, key=totals.codes.__getitem__)
        tally.credit_sum += totals.credit.total(
            chunk.codes_a[found.pairs[:, 0]], chunk.codes_b[found.pairs[:, 1]], labels
        )
    for index in chunk.pair:
        person = totals.annotators[totals.names[index]]
        person.pair_images += int(chunk.images.size)
        person.pair_boxes += int(chunk.codes_a.size + chunk.codes_b.size)
        person.matched += int(same.sum())
    size = len(totals.codes)
    totals.class_pair_boxes += np.bincount(chunk.codes_a, minlength=size)
    totals.class_pair_boxes += np.bincount(chunk.codes_b, minlength=size)
    agreed = chunk.codes_a[found.pairs[same, 0]]
    totals.class_matches += np.bincount(agreed, minlength=size)
    totals.class_iou += np.bincount(agreed, weights=found.ious[same], minlength=size)
    matched = np.bincount(found.image[same], minlength=chunk.images.size)
    boxes = chunk.per_image_a + chunk.per_image_b
    return np.where(boxes > 0, 2 * matched / np.maximum(boxes, 1), 1.0)


def _pair_units(totals: Totals, chunk: PairChunk, two: npt.NDArray[np.bool_]) -> None:
    """Alpha units of the pair's images that no other annotator saw (``two``)."""
    found = chunk.found
    in_two_a = np.repeat(two, chunk.per_image_a)
    in_two_b = np.repeat(two, chunk.per_image_b)
    paired_a = np.zeros(chunk.codes_a.size, dtype=np.bool_)
    paired_b = np.zeros(chunk.codes_b.size, dtype=np.bool_)
    paired_a[found.pairs[:, 0]] = True
    paired_b[found.pairs[:, 1]] = True
    keep = two[found.image]
    codes_a, codes_b = chunk.codes_a + 1, chunk.codes_b + 1  # 0 is NO_BOX
    lone_a = codes_a[in_two_a & ~paired_a]
    lone_b = codes_b[in_two_b & ~paired_b]
    column_a = np.concatenate([codes_a[found.pairs[keep, 0]], lone_a, np.full(lone_b.size, NO_BOX)])
    column_b = np.concatenate([codes_b[found.pairs[keep, 1]], np.full(lone_a.size, NO_BOX), lone_b])
    if not column_a.size:
        return
    rows = np.full((column_a.size, len(totals.names)), -1, dtype=np.int64)
    rows[:, chunk.pair[0]], rows[:, chunk.pair[1]] = column_a, column_b
    kinds, times = np.unique(rows, axis=0, return_counts=True)
    totals.units.update(dict(zip(map(tuple, kinds.tolist()), times.tolist(), strict=True)))


def _cluster_units(totals: Totals, checked: Checked, threshold: float) -> None:
    """Alpha units of one image seen by three or more annotators, from its box clusters."""
    base = [NO_BOX if name in checked else -1 for name in totals.names]
    position = {name: index for index, name in enumerate(totals.names)}
    for cluster in cluster_arrays(checked, threshold):
        row = list(base)
        for name, box in cluster.members.items():
            row[position[name]] = totals.codes[str(checked[name][1][box])] + 1
        totals.units[tuple(row)] += 1


def _worst(
    totals: Totals,
    ids: list[Hashable],
    entries: list[Checked],
    scores: npt.NDArray[np.float64],
    compared: Indices,
    worst: int,
) -> None:
    """Keep the ``worst`` lowest image scores so far (ties by id, then input order)."""
    if not worst or not compared.size:
        return
    chunk_scores = scores[compared]
    if compared.size > worst:
        cutoff = np.partition(chunk_scores, worst - 1)[worst - 1]
        compared = compared[chunk_scores <= cutoff]
    rows: list[WorstRow] = [
        (
            float(scores[i]),
            id_key(ids[i]),
            totals.images + i,
            ids[i],
            {
                name: int(entries[i][name][0].shape[0])
                for name in totals.names
                if name in entries[i]
            },
        )
        for i in compared.tolist()
    ]
    totals.worst = heapq.nsmallest(worst, totals.worst + rows, key=lambda row: row[:3])


def add_chunk(
    totals: Totals, ids: list[Hashable], entries: list[Checked], threshold: float, worst: int
) -> None:
    """Add a chunk of checked images to the totals.

    Args:
        totals: The running totals, updated in place.
        ids: The images' ids.
        entries: Per image, annotator -> ``(boxes, labels)`` for the annotators who saw it.
        threshold: Smallest IoU of a matched pair.
        worst: How many of the lowest-scoring images to keep.
    """
    sides = _sides(totals, entries)
    _count_annotators(totals, sides)
    seen = np.column_stack([side.seen for side in sides])
    seen_by = seen.sum(axis=1)
    totals.partial += int((seen_by < len(sides)).sum())
    totals.single += int((seen_by == 1).sum())
    totals.unseen += int((seen_by == 0).sum())
    totals.compared += int((seen_by >= 2).sum())
    score_sum = np.zeros(len(entries))
    for pair in totals.pairs:
        chunk = PairChunk.match(pair, sides[pair[0]], sides[pair[1]], threshold)
        if chunk is not None:
            score_sum[chunk.images] += _count_pair(totals, chunk)
            _pair_units(totals, chunk, seen_by[chunk.images] == 2)
    for index in np.flatnonzero(seen_by >= 3).tolist():
        _cluster_units(totals, entries[index], threshold)
    pairs_on = seen_by * (seen_by - 1) // 2
    scores = score_sum / np.maximum(pairs_on, 1)
    _worst(totals, ids, entries, scores, np.flatnonzero(seen_by >= 2), worst)
    totals.images += len(entries)
