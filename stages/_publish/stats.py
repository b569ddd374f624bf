"""What a published dataset holds, per split: the rows of publish's plots and its metrics.

One pass over the manifest in Arrow batches (annotations flattened, no Python object per
box) counts images and boxes per split, instances per class and split, and histograms of
box size (the square root of the box area, in pixels) and aspect (width over height).
Every row is written, zeros included, in a fixed order (class-map order, then split
order, then bin order), so two versions' plots line up row for row in ``dvc plots diff``.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pixelpipe import Category
from pixelpipe.formats.base import UNASSIGNED, split_order
from pixelpipe.formats.imagefolder import IMAGE_LABEL

SIZE_EDGES = (8, 16, 32, 64, 128, 256, 512)
"""Bin edges of the box size, ``sqrt(w * h)`` in pixels (32 and 96 are COCO's small and
large; powers of two show more)."""
ASPECT_EDGES = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Bin edges of the box aspect, width over height."""
BATCH_ROWS = 65_536


def _labels(edges: tuple[float, ...], unit: str) -> list[str]:
    texts = [f"{e:g}" for e in edges]
    middle = [f"{a}-{b}{unit}" for a, b in itertools.pairwise(texts)]
    return [f"< {texts[0]}{unit}", *middle, f">= {texts[-1]}{unit}"]


SIZE_BINS = _labels(SIZE_EDGES, " px")
ASPECT_BINS = _labels(ASPECT_EDGES, "")


@dataclass
class Stats:
    """Counts of a manifest.

    Attributes:
        images: Images per split.
        boxes: Boxes (objects, whole-image labels excluded) per split.
        image_labels: Whole-image class labels per split.
        instances: Labels (boxes and whole-image labels) per (category id, split).
        sizes: Boxes per (size bin index, split).
        aspects: Boxes per (aspect bin index, split).
    """

    images: Counter[str] = field(default_factory=Counter)
    boxes: Counter[str] = field(default_factory=Counter)
    image_labels: Counter[str] = field(default_factory=Counter)
    instances: Counter[tuple[int, str]] = field(default_factory=Counter)
    sizes: Counter[tuple[int, str]] = field(default_factory=Counter)
    aspects: Counter[tuple[int, str]] = field(default_factory=Counter)

    def splits(self) -> list[str]:
        """The splits that have images: train, val, test, then the others by name."""
        return split_order(self.images)


def _image_labels(attributes: pa.Array) -> np.ndarray:
    """True for the annotations whose attributes mark a whole-image label."""
    hits = pc.fill_null(pc.match_substring(attributes, IMAGE_LABEL), False).to_numpy(
        zero_copy_only=False
    )
    flags = np.zeros(len(attributes), dtype=bool)
    texts = attributes.to_pylist()
    for index in np.flatnonzero(hits):  # only the few that name it are parsed
        flags[index] = bool(json.loads(texts[index]).get(IMAGE_LABEL))
    return flags


def _count(counter: Counter[tuple[int, str]], keys: np.ndarray, splits: np.ndarray) -> None:
    pairs = Counter(zip(keys.tolist(), splits.tolist(), strict=True))
    counter.update(pairs)


def collect(table: pa.Table) -> Stats:
    """Count a manifest, a batch at a time.

    Args:
        table: The manifest (``samples.parquet``).
    """
    stats = Stats()
    for batch in table.select(["split", "annotations"]).to_batches(max_chunksize=BATCH_ROWS):
        if not batch.num_rows:
            continue
        splits = np.asarray(
            pc.fill_null(batch.column(0), UNASSIGNED).to_numpy(zero_copy_only=False), dtype=object
        )
        stats.images.update(Counter(splits.tolist()))
        column = batch.column(1)
        flat = pc.list_flatten(column)
        if not len(flat):
            continue
        of = splits[pc.list_parent_indices(column).to_numpy()]
        categories = flat.field("category_id").to_numpy(zero_copy_only=False)
        _count(stats.instances, categories, of)
        whole = _image_labels(flat.field("attributes"))
        stats.image_labels.update(Counter(of[whole].tolist()))
        boxes = np.asarray(flat.field("bbox").flatten().to_numpy(), dtype=float).reshape(-1, 4)
        boxes, of = boxes[~whole], of[~whole]
        stats.boxes.update(Counter(of.tolist()))
        width, height = boxes[:, 2], boxes[:, 3]
        size = np.sqrt(np.clip(width * height, 0.0, None))
        _count(stats.sizes, np.digitize(size, SIZE_EDGES), of)
        flat_or_thin = height > 0
        aspect = np.where(flat_or_thin, width / np.where(flat_or_thin, height, 1.0), np.inf)
        _count(stats.aspects, np.digitize(aspect, ASPECT_EDGES), of)
    return stats


def instances_rows(stats: Stats, categories: list[Category]) -> list[dict[str, Any]]:
    """Rows of the ``instances`` plot: one per class and split, zeros included."""
    return [
        {
            "class_split": f"{c.name} / {split}",
            "class": c.name,
            "split": split,
            "instances": stats.instances[(c.id, split)],
        }
        for c in sorted(categories, key=lambda c: c.id)
        for split in stats.splits()
    ]


def images_rows(stats: Stats) -> list[dict[str, Any]]:
    """Rows of the ``images`` plot: images and boxes per split."""
    return [
        {"split": split, "images": stats.images[split], "boxes": stats.boxes[split]}
        for split in stats.splits()
    ]


def histogram_rows(
    counts: Counter[tuple[int, str]], bins: list[str], name: str, stats: Stats
) -> list[dict[str, Any]]:
    """Rows of a histogram plot: one per bin and split, zeros included.

    Args:
        counts: Boxes per (bin index, split).
        bins: The bins' labels, in order.
        name: The field holding the bin's label (``size``, ``aspect``).
        stats: Gives the splits.
    """
    return [
        {
            f"{name}_split": f"{label} / {split}",
            name: label,
            "split": split,
            "boxes": counts[(i, split)],
        }
        for i, label in enumerate(bins)
        for split in stats.splits()
    ]


def metrics(stats: Stats) -> dict[str, Any]:
    """Numbers for ``reports/<stage>.json``: totals, and images and boxes per split."""
    return {
        "images": sum(stats.images.values()),
        "boxes": sum(stats.boxes.values()),
        "image_labels": sum(stats.image_labels.values()),
        "splits": {
            split: {
                "images": stats.images[split],
                "boxes": stats.boxes[split],
                "image_labels": stats.image_labels[split],
            }
            for split in stats.splits()
        },
    }
