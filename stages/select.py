"""Select: the unlabelled images a model is least sure about, as a Label Studio batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from pixelpipe import (
    Category,
    Dataset,
    DatasetBuilder,
    PixelpipeError,
    Plot,
    Problem,
    Sample,
    StageContext,
    StageParams,
    StageResult,
    did_you_mean,
    stage,
)
from pixelpipe.dataset import SAMPLES_FILE
from stages._select.batch import BATCH_FILE, tasks, write
from stages._select.diversity import group_rows
from stages._select.pick import pick, ranking
from stages._select.scores import NO_CLASS, Scores, score_rows

UNCERTAINTY_COLUMN = "uncertainty"
"""Manifest column: the image's uncertainty, null when it was not a candidate."""
SELECTED_COLUMN = "selected"
"""Manifest column: whether the image is in the batch."""
NO_PREDICTION = "no_prediction"
"""The class of an image without a prediction, in the metrics."""
EMPTY_UNCERTAINTY = 1.0
PLOTS = {"classes": Plot(x="images", y="class", title="selected images per predicted class")}


class Params(StageParams):
    """Params of the ``select`` stage."""

    budget: int = Field(default=100, ge=0)
    """Most images in the batch."""
    measure: Literal["least_confidence", "margin", "entropy"] = "least_confidence"
    """How unsure a box is, from its score ``p`` expanded over the ``K`` classes of the
    class map to ``p`` and ``(1 - p) / (K - 1)`` each (Lightly's expansion), on a 0 (sure)
    to 1 (uniform) scale: ``least_confidence`` ``(1 - p) / (1 - 1/K)``, ``margin``
    ``1 - (p - (1 - p) / (K - 1))``, ``entropy`` in bits over ``log2 K``. From one score per
    box all three order images the same way (the first two even agree in value)."""
    model: str | None = None
    """The annotator (model name) whose predictions are scored; ``null``: every
    annotation with a score."""
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    """Predictions scored below this are ignored (a detector's score threshold)."""
    include_empty: bool = True
    """Unlabelled images without a prediction (the model found nothing to be sure of)
    are candidates with uncertainty 1, ranked first; ``false``: they are left out."""
    per_class: dict[str, int] = {}
    """Most images per class, by the class of each image's highest-scoring prediction,
    e.g. ``{person: 20}``; classes not named are limited by ``budget`` alone."""
    near_distance: int | None = Field(default=10, ge=0)
    """Images whose perceptual hashes are within this many bits form one group
    (transitively), and a batch takes at most one image of a group. The hash is
    dedupe's column when present, else a 64-bit pHash computed here (cached).
    ``null``: no near-duplicate groups (identical files still form one)."""
    hash_column: str | None = None
    """Manifest column holding the hashes (fixed-size bytes); default: the first of
    ``phash``, ``dhash``, ``ahash``, ``whash`` present, else computed."""
    group_column: str | None = None
    """A manifest column whose equal values also form one group (a video, a scene)."""
    seed: int = 0
    """Seed of the hash of the sample id that breaks ties between equal uncertainties."""
    image_prefix: str = ""
    """What the tasks' image URLs start with, before the image's path in the project
    (a bucket or web server); empty: Label Studio's local files,
    ``/data/local-files/?d=<path>``, served with the project as document root. An image
    whose manifest path is already a URL is used as it is."""

    @field_validator("per_class")
    @classmethod
    def _quotas(cls, value: dict[str, int]) -> dict[str, int]:
        for name, limit in value.items():
            if limit < 0:
                raise ValueError(f"the quota of '{name}' must not be negative, got {limit}")
        return value


def _quota_ids(per_class: dict[str, int], categories: list[Category], stage: str) -> dict[int, int]:
    """The quotas by category id; a class the class map lacks is a params error."""
    ids: dict[str, int] = {}
    for category in sorted(categories, key=lambda c: c.id):
        ids.setdefault(category.name, category.id)
    unknown = [n for n in per_class if n not in ids]
    if unknown:
        raise PixelpipeError(
            [
                Problem(
                    f"no class '{n}' in the class map" + did_you_mean(n, ids),
                    file="params.yaml",
                    key=f"{stage}.per_class.{n}",
                )
                for n in unknown
            ]
        )
    return {ids[n]: limit for n, limit in per_class.items()}


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _columns(
    table: pa.Table, uncertainty: np.ndarray, candidate: np.ndarray, selected: np.ndarray
) -> pa.Table:
    """The manifest with the two columns (replacing those of an earlier select)."""
    for name in (UNCERTAINTY_COLUMN, SELECTED_COLUMN):
        if name in table.column_names:
            table = table.drop_columns(name)
    column = pa.array(uncertainty, pa.float64(), mask=~candidate)
    table = table.append_column(UNCERTAINTY_COLUMN, column)
    return table.append_column(SELECTED_COLUMN, pa.array(selected, pa.bool_()))


def _batch(
    table: pa.Table, chosen: np.ndarray, scores: Scores, uncertainty: np.ndarray
) -> list[tuple[Sample, list[Any], float]]:
    """The chosen rows as samples, each with the predictions that scored it."""
    lengths = np.asarray(
        pc.fill_null(pc.list_value_length(table.column("annotations")), 0).to_numpy(),
        dtype=np.int64,
    )
    starts = np.cumsum(lengths) - lengths
    part = table.take(pa.array(chosen, pa.int64())).to_pylist()
    out: list[tuple[Sample, list[Any], float]] = []
    for row, values in zip(chosen.tolist(), part, strict=True):
        sample = Sample.from_row(values)
        used = scores.used[starts[row] : starts[row] + lengths[row]].tolist()
        mine = [a for a, keep in zip(sample.annotations, used, strict=True) if keep]
        out.append((sample, mine, float(uncertainty[row])))
    return out


@stage("select", params=Params, plots=PLOTS)
def select(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Pick the unlabelled images a model is least sure about, as a Label Studio batch.

    An image is unlabelled when none of its annotations lacks a ``score`` (people's labels
    have none); the predictions of ``model`` (annotations with a score) say how sure the
    model is. Each box's score ``p`` is expanded to ``p`` for its class and
    ``(1 - p) / (K - 1)`` for each of the other ``K - 1`` classes of the class map (as
    Lightly does; ``K`` is at least 2, and a score below ``1/K`` counts as ``1/K``), and
    its uncertainty measured by ``measure`` on a 0 to 1 scale; an image takes the largest
    of its boxes (Lightly's max over boxes). An unlabelled image without a prediction has
    uncertainty 1 with ``include_empty`` (the model found nothing to be sure of), else it
    is no candidate. Candidates are ranked most uncertain first, ties by a hash of
    (``seed``, id), and taken down the ranking unless an image of the same group was taken
    (same file, hashes within ``near_distance`` bits, equal ``group_column`` values) or
    the quota of its class (its highest-scoring prediction's) is full, until ``budget``
    images are taken.

    The dataset passes through unchanged but for two manifest columns: ``uncertainty``
    (null for labelled images and non-candidates) and ``selected``. The batch is written
    as Label Studio tasks, most uncertain first, to ``batch/labelstudio.json``: each with
    the image's URL (see ``image_prefix``), ``pixelpipe_id``, ``pixelpipe_sha256``,
    ``pixelpipe_uncertainty`` and ``pixelpipe_rank`` in ``data``, and one prediction with
    the scoring boxes in percent (a ``score`` each) and the task's ``score``
    ``1 - uncertainty`` (Label Studio shows the lowest score first). Metrics: candidates,
    selected, and both per predicted class.

    ```yaml
    # pipelines/model-loop.yaml
    stages:
      select:
        kind: select
        inputs: ingest            # images with a model's predictions beside people's labels
    # params
    select:
      budget: 100
      measure: least_confidence   # margin, entropy
      model: null                 # e.g. detector-v3
      min_score: 0.0
      include_empty: true
      per_class: {}               # e.g. {person: 20}
      near_distance: 10           # bits of a 64-bit pHash; null: off
      hash_column: null           # default: dedupe's column, else computed
      group_column: null          # e.g. video
      seed: 0
      image_prefix: ""              # e.g. s3://bucket/project/
    ```
    """
    (dataset,) = inputs
    table = dataset.table
    count = table.num_rows
    names = {c.id: c.name for c in dataset.categories}
    quotas = _quota_ids(params.per_class, dataset.categories, ctx.stage)
    scores = score_rows(
        table,
        model=params.model,
        min_score=params.min_score,
        classes=len(dataset.categories),
        measure=params.measure,
        stage=ctx.stage,
        shown_as=_shown(dataset.path / SAMPLES_FILE, ctx.root),
    )
    unlabelled = ~scores.labelled
    predicted = scores.predicted > 0
    empty = unlabelled & ~predicted
    uncertainty = scores.uncertainty.copy()
    uncertainty[empty] = EMPTY_UNCERTAINTY
    candidate = unlabelled & (predicted | params.include_empty)
    rows = np.flatnonzero(candidate).astype(np.int64)
    if not predicted.any() and unlabelled.any():
        ctx.log.warning(
            "%s: no unlabelled image has a prediction%s: %s",
            ctx.stage,
            f" by '{params.model}'" if params.model else "",
            "images are picked by the seeded hash alone"
            if params.include_empty
            else "nothing to select",
        )
    grouped = group_rows(
        table,
        rows,
        near_distance=params.near_distance,
        hash_column=params.hash_column,
        group_column=params.group_column,
        ctx=ctx,
    )
    if grouped.unhashed:
        ctx.log.warning(
            "%s: %d candidates have no perceptual hash (%s): grouped by the other reasons only",
            ctx.stage,
            grouped.unhashed,
            grouped.hash_source,
        )
    ids: list[str] = table.column("id").take(pa.array(rows, pa.int64())).to_pylist()
    order = ranking(uncertainty[rows], ids, params.seed)
    picked = pick(order, grouped.of_row[rows], scores.top_class[rows], quotas, params.budget)
    chosen = rows[picked.chosen]
    selected = np.zeros(count, dtype=bool)
    selected[chosen] = True

    made = tasks(
        _batch(table, chosen, scores, uncertainty),
        names,
        model=params.model,
        image_prefix=params.image_prefix,
    )
    write(ctx.output_dir / BATCH_FILE, made)
    out = DatasetBuilder(dataset.categories)
    out.add_table(_columns(table, uncertainty, candidate, selected))

    def per_class(where: np.ndarray) -> dict[str, int]:
        found: dict[str, int] = {}
        for c in scores.top_class[where].tolist():
            name = NO_PREDICTION if c == NO_CLASS else names.get(c, f"id {c}")
            found[name] = found.get(name, 0) + 1
        return dict(sorted(found.items()))

    chosen_u = uncertainty[chosen]
    metrics: dict[str, Any] = {
        "images": count,
        "labelled": int(scores.labelled.sum()),
        "unlabelled": int(unlabelled.sum()),
        "without_prediction": int(empty.sum()),
        "candidates": int(rows.size),
        "groups": int(np.unique(grouped.of_row[rows]).size),
        "selected": int(chosen.size),
        "budget": params.budget,
        "skipped_same_group": picked.same_group,
        "skipped_over_quota": picked.over_quota,
        "uncertainty_selected_min": round(float(chosen_u.min()), 6) if chosen.size else None,
        "uncertainty_selected_mean": round(float(chosen_u.mean()), 6) if chosen.size else None,
        "candidates_per_class": per_class(rows),
        "selected_per_class": per_class(chosen),
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    ctx.log.info(
        "%s: %d of %d candidates selected into %s",
        ctx.stage,
        chosen.size,
        rows.size,
        BATCH_FILE,
    )
    plot = [{"class": k, "images": v} for k, v in metrics["selected_per_class"].items()]
    return StageResult(output=out, metrics=metrics, plots={"classes": plot})
