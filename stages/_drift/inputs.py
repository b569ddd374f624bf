"""What a manifest gives the drift tests (:class:`DriftInputs`), read in Arrow batches.

One pass over the ``annotations`` column, flattened a batch at a time (no Python object per
box): instances per class *name* (the class map turns ids into names; an id the map lacks
is named ``#<id> (not in the class map)``), boxes per image, and each box's size
(``sqrt(w * h)``, in pixels) and aspect (``w / h``, NaN for a box of no height, which the
tests drop). Whole-image class labels (``attributes`` marking ``image_label``) count as
class instances, not as boxes, as in ``publish``'s statistics. Every annotation counts,
whoever made it (annotators, models, reviewers).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pixelpipe import Category
from pixelpipe.formats.imagefolder import IMAGE_LABEL
from pixelpipe.quality.drift import DriftInputs

BATCH_ROWS = 65_536
"""Manifest rows flattened at a time."""


def unknown_class(category_id: int) -> str:
    """The name a class id missing from the class map is counted under."""
    return f"#{category_id} (not in the class map)"


def _image_labels(attributes: pa.Array) -> np.ndarray:
    """True for the annotations whose attributes mark a whole-image class label."""
    hits = pc.fill_null(pc.match_substring(attributes, IMAGE_LABEL), False)
    flags = np.zeros(len(attributes), dtype=bool)
    texts = attributes.to_pylist()
    for index in np.flatnonzero(hits.to_numpy(zero_copy_only=False)):  # only these are parsed
        parsed = json.loads(texts[index])
        flags[index] = isinstance(parsed, dict) and bool(parsed.get(IMAGE_LABEL))
    return flags


def drift_inputs(
    table: pa.Table,
    categories: Iterable[Category],
    properties: Mapping[str, np.ndarray] | None = None,
) -> DriftInputs:
    """The drift tests' inputs of one manifest.

    Args:
        table: The manifest (``samples.parquet``), or any table with its ``annotations``.
        categories: The class map (ids to names).
        properties: Image property name -> one value per manifest row (NaN where the
            image could not be read); ``None`` or empty: no image properties.

    Returns:
        Classes by name (sorted), boxes per image in row order, box sizes and aspects.
    """
    names = {c.id: c.name for c in categories}
    ids: Counter[int] = Counter()
    per_image: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    sizes: list[np.ndarray] = [np.zeros(0)]
    aspects: list[np.ndarray] = [np.zeros(0)]
    for batch in table.select(["annotations"]).to_batches(max_chunksize=BATCH_ROWS):
        rows = batch.num_rows
        if not rows:
            continue
        column = batch.column(0)
        flat = pc.list_flatten(column)
        if not len(flat):
            per_image.append(np.zeros(rows, dtype=np.int64))
            continue
        parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
        category = pc.fill_null(flat.field("category_id"), -1).to_numpy(zero_copy_only=False)
        found, counts = np.unique(category, return_counts=True)
        ids.update(dict(zip(found.tolist(), counts.tolist(), strict=True)))
        boxes = ~_image_labels(flat.field("attributes"))
        per_image.append(np.bincount(parents[boxes], minlength=rows).astype(np.int64))
        bbox = flat.field("bbox").filter(pa.array(boxes))
        values = np.asarray(pc.list_flatten(bbox).to_numpy(zero_copy_only=False), dtype=float)
        width, height = values.reshape(-1, 4)[:, 2], values.reshape(-1, 4)[:, 3]
        sizes.append(np.sqrt(np.clip(width * height, 0.0, None)))
        tall = height > 0
        aspects.append(np.where(tall, width / np.where(tall, height, 1.0), np.nan))
    classes: dict[str, int] = {}
    for category_id, count in ids.items():
        name = names.get(category_id, unknown_class(category_id))
        classes[name] = classes.get(name, 0) + count
    return DriftInputs(
        classes=dict(sorted(classes.items())),
        boxes_per_image=np.concatenate(per_image).astype(np.float64),
        box_size=np.concatenate(sizes),
        box_aspect=np.concatenate(aspects),
        properties={k: np.asarray(v, dtype=np.float64) for k, v in (properties or {}).items()},
    )
