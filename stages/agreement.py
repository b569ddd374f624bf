"""Agreement: how far the annotators of the same images agree, and each one against gold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    Dependency,
    PixelpipeError,
    Plot,
    Problem,
    StageContext,
    StageParams,
    StageResult,
    stage,
)
from pixelpipe.review.measure import agreement as measure
from pixelpipe.review.report import render
from pixelpipe.taxonomy import Taxonomy, load
from pixelpipe.taxonomy import check as check_taxonomy
from stages._review.common import gather, metrics_of, opener, plots_of, select

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
PLOTS = {
    "annotators": Plot(x="agreement", y="annotator", title="agreement of each annotator"),
    "classes": Plot(x="agreement", y="class", title="agreement per class"),
}


class Params(StageParams):
    """Params of the ``agreement`` stage."""

    iou: float = Field(default=0.5, gt=0.0, le=1.0)
    """Smallest IoU at which two annotators' boxes are the same object."""
    annotators: list[str] = []
    """The annotators to compare; empty: every annotator in the manifest."""
    gold: str | None = None
    """An annotator whose labels are the gold set: every other is scored against it
    (precision, recall, accuracy, confusion matrix) and it is left out of the agreement."""
    worst: int = Field(default=20, ge=0)
    """How many of the lowest-agreement images the report shows."""
    fail_below: float | None = Field(default=None, ge=-1.0, le=1.0)
    """Fail the stage when Krippendorff's alpha is below this (``null``: never fail)."""
    taxonomy: Annotated[str, Dependency(check=check_taxonomy)] = ""
    """A class hierarchy (``configs/taxonomy/<name>.yaml``): matched boxes and image labels
    of differing classes earn partial credit, reported as ``hierarchical_agreement``;
    empty: none."""


@stage("agreement", params=Params, plots=PLOTS)
def agreement(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Measure agreement between annotators; the dataset passes through unchanged.

    Reads every annotation's ``annotator`` (and the ``annotated_by`` column ingest writes:
    an annotator who saw an image and drew nothing counts against agreement; one who never
    saw it does not). Image-level class labels: percent agreement, Cohen's kappa per pair and
    their mean, Fleiss' kappa (when every image has the same number of annotators),
    Krippendorff's alpha (nominal; missing ratings allowed). Boxes: one-to-one Hungarian
    matching per annotator pair at ``iou`` (same class first, then across classes to find
    label mismatches): mean IoU, precision, recall and F1 per pair and per class, and the
    kappas and alpha over clusters of boxes with "no box" as a value. With ``gold``, each
    annotator's precision, recall, accuracy and confusion matrix against it (CVAT's
    definitions). Writes ``report.json`` (the figures, as ``pixelpipe agreement --json``)
    and ``report.html`` (the annotator x annotator matrix, per-class figures, the worst
    images with every annotator's boxes in its own colour). ``fail_below`` makes a low
    alpha fail the stage, so CI stops before training on labels nobody agrees on. With a
    ``taxonomy``, matched pairs of differing classes earn partial credit (the depth of their
    lowest common ancestor over the deeper depth: ``sedan`` and ``suv`` under ``car`` under
    ``vehicle`` earn 2/3), reported as ``hierarchical_agreement`` beside the figures.

    ```yaml
    # pipelines/review.yaml
    stages:
      agreement:
        kind: agreement
        inputs: labels
    # params
    agreement:
      iou: 0.5
      annotators: []      # empty: all
      gold: null          # e.g. expert
      worst: 20
      fail_below: null    # e.g. 0.6
      taxonomy: ""        # e.g. configs/taxonomy/vehicles.yaml
    ```
    """
    (dataset,) = inputs
    tree = _taxonomy(params.taxonomy, ctx.root)  # a bad file stops the stage before the work
    everything = gather(dataset)
    gathered = select(everything, params.annotators, ctx, "annotators")
    truth = None
    if params.gold is not None:
        truth = select(everything, [params.gold], ctx, "gold")
        gathered = gathered.without(params.gold)
    result = measure(gathered, params.iou, truth, params.worst, tree)
    (ctx.output_dir / REPORT_JSON).write_text(
        json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (ctx.output_dir / REPORT_HTML).write_text(
        render(f"Agreement: {ctx.stage}", result, gathered, None, opener(ctx)), encoding="utf-8"
    )
    for note in result["notes"]:
        ctx.log.warning("%s: %s", ctx.stage, note)
    alpha = result["krippendorff_alpha"]
    if params.fail_below is not None and (alpha is None or alpha < params.fail_below):
        raise PixelpipeError(
            Problem(
                f"Krippendorff's alpha is {'undefined' if alpha is None else f'{alpha:.3f}'}, "
                f"below {params.fail_below}; to see the worst images: pixelpipe agreement "
                f"{_shown(dataset.path, ctx.root)} --report agreement.html",
                file="params.yaml",
                key=f"{ctx.stage}.fail_below",
            )
        )
    out = DatasetBuilder(dataset.categories)
    out.add_table(dataset.table)
    metrics = metrics_of(result)
    if result.get("hierarchical_agreement") is not None:
        metrics["hierarchical_agreement"] = result["hierarchical_agreement"]
    return StageResult(output=out, metrics=metrics, plots=plots_of(result))


def _taxonomy(path: str, root: Path) -> Taxonomy | None:
    """The ``taxonomy`` param's file, loaded (relative to the project), or ``None``."""
    if not path:
        return None
    file = Path(path).expanduser()
    return load(file if file.is_absolute() else root / file, path)


def _shown(path: Path, root: Path) -> str:
    """A path relative to the project when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
