"""The manifest's predictions as arrays: who is labelled, each image's uncertainty and class.

An annotation with a ``score`` is a prediction (``annotator`` = the model); one without is a
label made by a person. An image is *unlabelled* when it has no annotation without a score.
The annotations are read column-wise (Arrow compute over the nested list), never as one
Python object per annotation, so the cost is a few arrays the size of the annotations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pixelpipe import PixelpipeError, Problem, did_you_mean
from pixelpipe.quality.uncertainty import box_uncertainty, per_image_max

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
NO_CLASS = -1
"""``top_class`` of an image without a prediction."""
_LISTED = 20


@dataclass(frozen=True)
class Scores:
    """What the predictions say about each manifest row.

    Attributes:
        labelled: Per row, whether a person labelled it (an annotation without a score).
        predicted: Per row, how many predictions of the chosen model it has (at or above
            ``min_score``).
        uncertainty: Per row, the largest uncertainty of its predictions; NaN where it has
            none.
        top_class: Per row, the category id of its highest-scoring prediction (ties: the
            smallest id); :data:`NO_CLASS` where it has none.
        used: Per annotation (flattened in row order), whether it is one of those predictions.
    """

    labelled: B
    predicted: I64
    uncertainty: F64
    top_class: I64
    used: B


def _numpy(values: pa.ChunkedArray | pa.Array, fill: object) -> npt.NDArray[np.generic]:
    return np.asarray(pc.fill_null(values, fill).to_numpy(zero_copy_only=False))


def score_rows(
    table: pa.Table,
    *,
    model: str | None,
    min_score: float,
    classes: int,
    measure: str,
    stage: str,
    shown_as: str,
) -> Scores:
    """Score every row of ``table`` by its predictions.

    Args:
        table: The manifest.
        model: Only this annotator's predictions; ``None``: every annotation with a score.
        min_score: Predictions scored below this are ignored.
        classes: Number of classes in the class map (``K`` of the expansion).
        measure: ``least_confidence``, ``margin`` or ``entropy``.
        stage: The stage's name, for the params key of a problem.
        shown_as: The manifest's path as the user knows it, for a problem.

    Returns:
        The scores.

    Raises:
        PixelpipeError: When ``model`` made no prediction in the manifest, or a prediction's
            score is not a number in [0, 1] (every such prediction listed, up to 20).
    """
    rows = table.num_rows
    annotations = table.column("annotations")
    flat = pc.list_flatten(annotations)
    parent = np.asarray(pc.list_parent_indices(annotations).to_numpy(), dtype=np.int64)
    raw_score = pc.struct_field(flat, "score")
    scored = ~_numpy(pc.is_null(raw_score), False).astype(bool)
    score = np.asarray(_numpy(raw_score, 0.0), dtype=np.float64)
    category = np.asarray(_numpy(pc.struct_field(flat, "category_id"), NO_CLASS), dtype=np.int64)
    annotator = pc.struct_field(flat, "annotator")

    labelled = np.zeros(rows, dtype=bool)
    labelled[parent[~scored]] = True
    mine = scored.copy()
    if model is not None:
        mine &= _numpy(pc.equal(annotator, model), False).astype(bool)
        if not mine.any():
            found = pc.unique(pc.filter(annotator, pa.array(scored))).to_pylist()
            names = sorted(str(n) for n in found if n is not None)
            raise PixelpipeError(
                Problem(
                    f"no prediction by '{model}' in the input"
                    + (did_you_mean(model, names) or f"; models: {', '.join(names) or 'none'}"),
                    file="params.yaml",
                    key=f"{stage}.model",
                )
            )
    bad = np.flatnonzero(mine & ~((score >= 0.0) & (score <= 1.0)))
    if bad.size:
        ids = table.column("id")
        shown = [
            Problem(
                f"score {float(score[i])!r} of a prediction by "
                f"'{annotator[int(i)].as_py()}' on '{ids[int(parent[i])].as_py()}' "
                "is not a number in [0, 1]",
                file=shown_as,
            )
            for i in bad[:_LISTED].tolist()
        ]
        if bad.size > _LISTED:
            shown.append(Problem(f"... and {bad.size - _LISTED} more", file=shown_as))
        raise PixelpipeError(shown)
    used = mine & (score >= min_score) & ~labelled[parent]
    on = parent[used]
    values = box_uncertainty(score[used], classes, measure)
    uncertainty = per_image_max(values, on, rows)
    predicted = np.bincount(on, minlength=rows).astype(np.int64)
    top_class = np.full(rows, NO_CLASS, dtype=np.int64)
    if on.size:
        order = np.lexsort((category[used], -score[used], on))
        first = np.ones(order.size, dtype=bool)
        first[1:] = on[order][1:] != on[order][:-1]
        top_class[on[order][first]] = category[used][order][first]
    return Scores(labelled, predicted, uncertainty, top_class, used)
