"""Label issues: rank images by how likely their labels are wrong, from a model's predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    PixelpipeError,
    Plot,
    Problem,
    StageContext,
    StageParams,
    StageResult,
    stage,
)
from pixelpipe.quality.inputs import QualityInputError
from pixelpipe.quality.label_errors import AP_SCALE_FACTOR, REASONS, THRESHOLD_FACTOR, Item
from pixelpipe.quality.label_errors import find_issues as cleanlab_issues
from stages._label_issues.report import flagged_entry, histogram, render
from stages._label_issues.select import Roles, check_roles, gather, label_sets

QUALITY_COLUMN = "label_quality"
"""Manifest column: the image's label quality (1 clean, lower more likely wrong), or null."""
ISSUE_COLUMN = "label_issue"
"""Manifest column: ``overlooked``, ``badly_located``, ``swapped``, or null."""
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
PLOTS = {"reasons": Plot(x="images", y="reason", title="images flagged, by reason")}


class Params(StageParams):
    """Params of the ``label_issues`` stage."""

    model: str | None = None
    """The annotator of the predictions (ingest's ``predictions: [{model: ...}]``);
    ``null``: every box with a score (it must then come from one annotator)."""
    labels: list[str] = []
    """The annotators whose labels are checked, each separately; empty: every box without
    a score."""
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """``null``: cleanlab's ``find_label_issues`` rule, a box is an issue when its score is
    at most 0.8 x 0.25 x the AP (IoU 0.5:0.95) of its class. A number: an image is flagged
    when its label quality is at most it (cleanlab's ``issues_from_scores``, default 0.1)."""
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    """Predictions below this confidence are left out (cleanlab wants them all: keep 0
    unless the file holds thousands of near-zero boxes per image)."""
    worst: int = Field(default=24, ge=0)
    """How many of the flagged images the report page shows, worst first."""


@stage("label_issues", params=Params, plots=PLOTS)
def label_issues(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Find likely label errors with a model's predictions; the dataset passes through.

    For each image with predictions, each label annotator's boxes are scored against them
    with cleanlab's object-detection label quality (ObjectLab): *overlooked* (a confident
    prediction, 0.95 or more, where no label box is), *badly located* (a label box that the
    prediction of its class overlaps poorly) and *swapped* (a label box a confident
    prediction of another class covers). The image's ``label_quality`` is in ``[0, 1]``
    (1 clean; the lowest of its label sets) and ``label_issue`` the worst reason of a
    flagged label set, both null when the image has no predictions or no labels (an
    annotator whom ``annotated_by`` lists for the image but who drew nothing there counts
    as labels: a confident prediction there is overlooked). Image-level class labels are
    not boxes and are left out. The predictions should come from a model that did not train
    on these images (cross-validation), else it repeats the labels' errors.

    ``report.json`` lists every flagged image with its scores, reasons and boxes;
    ``report.html`` shows the worst ``worst`` with the labels and the predictions drawn
    over the photo. The rule and its per-class cuts are in ``pixelpipe.quality.label_errors``.

    ```yaml
    # pipelines/review.yaml
    stages:
      issues:
        kind: label_issues
        inputs: labels        # an ingest with `predictions: [{path: ..., model: detector}]`
    # params
    issues:
      model: detector         # null: every box with a score
      labels: []              # empty: every box without a score
      threshold: null         # null: cleanlab's per-class rule; or e.g. 0.1
      min_score: 0.0
      worst: 24
    ```
    """
    (dataset,) = inputs
    roles = Roles(params.model, tuple(params.labels), params.min_score)
    gathered = gather(dataset.samples(), roles)
    check_roles(gathered, roles, ctx.stage)
    if gathered.images and not gathered.scored:
        ctx.log.warning(
            "%s: no box has a score, so no label is checked; ingest a model's predictions "
            "beside the labels (ingest's `predictions:`)",
            ctx.stage,
        )
    sets = label_sets(gathered)
    items = [
        Item(
            one.boxes.bboxes,
            one.boxes.classes,
            one.image.predictions.bboxes,
            one.image.predictions.classes,
            one.image.predictions.scores,
            name=f"image '{one.image.id}'"
            + (f", annotator '{one.annotator}'" if one.annotator is not None else ""),
        )
        for one in sets
    ]
    try:
        findings = cleanlab_issues(items, params.threshold)
    except QualityInputError as exc:
        shown = _shown(dataset.path / "samples.parquet", ctx.root)
        raise PixelpipeError([Problem(p, file=shown) for p in exc.problems]) from None

    rows = len(gathered.images)
    quality: list[float | None] = [None] * rows
    issue: list[str | None] = [None] * rows
    worst_flagged: dict[int, float] = {}
    reasons_of: dict[int, set[str]] = {}
    names = {c.id: c.name for c in dataset.categories}
    entries = []
    boxes_flagged = 0
    for one, found in zip(sets, findings.items, strict=True):
        row = one.image.row
        current = quality[row]
        quality[row] = found.score if current is None else min(current, found.score)
        if not found.flagged:
            continue
        if row not in worst_flagged or found.score < worst_flagged[row]:
            worst_flagged[row] = found.score
            issue[row] = found.reason
        reasons_of.setdefault(row, set()).update(found.reasons)
        boxes_flagged += sum(1 for r in found.label_reasons if r)
        boxes_flagged += int(found.prediction_flagged.sum())
        entries.append(flagged_entry(one, found, names))
    entries.sort(
        key=lambda e: (e["score"], e["id"], e["annotator"] is not None, e["annotator"] or "")
    )

    with_predictions = sum(1 for image in gathered.images if image.predictions.bboxes)
    scored = [q for q in quality if q is not None]
    by_reason = {r: sum(1 for found in reasons_of.values() if r in found) for r in REASONS}
    counts: dict[str, Any] = {
        "images": rows,
        "scored": len(scored),
        "flagged": len(reasons_of),
        "no_predictions": rows - with_predictions,
        "unlabelled": with_predictions - len(scored),
        "by_reason": by_reason,
        "boxes_flagged": boxes_flagged,
        "label_sets": len(sets),
        "label_sets_flagged": len(entries),
    }
    report = {
        "stage": ctx.stage,
        "model": params.model,
        "labels": list(params.labels),
        "threshold": params.threshold,
        "min_score": params.min_score,
        "rule": _rule(params.threshold),
        "counts": counts,
        "class_cuts": _cuts(findings.classes, findings.cuts, names),
        "histogram": histogram(scored),
        "flagged": entries,
    }
    (ctx.output_dir / REPORT_JSON).write_text(
        json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )

    def opener(image: str) -> Path | None:
        path = ctx.root / image
        return path if image and path.is_file() else None

    (ctx.output_dir / REPORT_HTML).write_text(
        render(report, opener, params.worst), encoding="utf-8"
    )
    ctx.log.info(
        "%s: %d of %d images scored, %d flagged (%s)",
        ctx.stage,
        len(scored),
        rows,
        len(reasons_of),
        ", ".join(f"{r}: {n}" for r, n in by_reason.items()),
    )

    table = dataset.table
    for column in (QUALITY_COLUMN, ISSUE_COLUMN):
        if column in table.column_names:
            table = table.drop_columns(column)
    table = table.append_column(QUALITY_COLUMN, pa.array(quality, pa.float64()))
    table = table.append_column(ISSUE_COLUMN, pa.array(issue, pa.string()))
    out = DatasetBuilder(dataset.categories)
    out.add_table(table)
    metrics = {**counts, "rule": "threshold" if params.threshold is not None else "per_class"}
    plots = {"reasons": [{"reason": r, "images": n} for r, n in by_reason.items()]}
    return StageResult(output=out, metrics=metrics, plots=plots)


def _rule(threshold: float | None) -> str:
    if threshold is not None:
        return (
            f"an image is flagged when its label quality is at most {threshold} "
            "(cleanlab issues_from_scores); its boxes scoring at most that are the reasons"
        )
    return (
        "a box is flagged when its overlooked, badly located or swapped score is at most "
        f"{THRESHOLD_FACTOR['overlooked']} x {AP_SCALE_FACTOR} x the AP (IoU 0.5:0.95) of its "
        "class (cleanlab find_label_issues)"
    )


def _cuts(classes: list[int], cuts: Any, names: dict[int, str]) -> list[dict[str, Any]]:
    """Each class's AP and box-score limit, by category id (the number rule has none)."""
    if cuts is None:
        return []
    return [
        {
            "id": category,
            "name": names.get(category, str(category)),
            "ap": round(cut / AP_SCALE_FACTOR, 6),
            "cut": round(cut * THRESHOLD_FACTOR["overlooked"], 6),
        }
        for category, cut in zip(classes, cuts.tolist(), strict=True)
    ]


def _shown(path: Path, root: Path) -> str:
    """A path relative to the project when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
