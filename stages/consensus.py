"""Consensus: one label set from several annotators; what they could not settle goes to review."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

from pydantic import Field

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    Plot,
    StageContext,
    StageParams,
    StageResult,
    stage,
)
from pixelpipe.review.measure import agreement as measure
from pixelpipe.review.merge import CONSENSUS
from pixelpipe.review.merge import consensus as merge
from pixelpipe.review.report import render
from stages._review.common import gather, metrics_of, opener, select

REVIEW_JSON = "review.json"
REPORT_HTML = "report.html"
PLOTS = {"review": Plot(x="count", y="reason", title="clusters sent to review, by reason")}


class Params(StageParams):
    """Params of the ``consensus`` stage."""

    quorum: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of the annotators who saw an image that must have drawn a box (rounded up, at
    least one), as CVAT's consensus: 3 annotators at 0.5 need 2, 5 at 0.7 need 4."""
    iou: float = Field(default=0.5, gt=0.0, le=1.0)
    """Smallest IoU between every two boxes of a cluster."""
    fusion: Literal["mean", "median", "wbf"] = "mean"
    """How a cluster's box is made from its members' boxes: ``mean``, ``median``, or
    ``wbf`` (weighted boxes fusion: weighted by each box's ``score``, for predictions)."""
    annotators: list[str] = []
    """The annotators to merge; empty: every annotator in the manifest."""
    keep: Literal["consensus", "all"] = "consensus"
    """The output's labels: the consensus only (what publish exports), or the consensus
    beside every annotator's labels."""


@stage("consensus", params=Params, plots=PLOTS)
def consensus(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Merge the annotators' labels into one consensus label set per image.

    Boxes are clustered with at most one box per annotator (every two members at least
    ``iou`` apart, same class first); a cluster is kept when at least ``ceil(quorum x
    annotators who saw the image)`` annotators drew it, its class is the vote's winner, its
    box the ``fusion`` of the boxes that voted for it. Each kept label has ``annotator:
    consensus``, ``score`` = the share of annotators who drew it and, in its attributes,
    the annotators who drew it and their mean IoU. Image-level class labels merge by
    majority with the same quorum. A cluster below quorum, and a tied vote, are never
    decided silently: they go to ``review.json`` with the reason (``below_quorum``,
    ``tie``) and the votes, and are counted in the metrics. Every image stays in the
    output; ``report.html`` shows the worst images with each annotator's boxes beside the
    consensus.

    ```yaml
    # pipelines/review.yaml
    stages:
      consensus:
        kind: consensus
        inputs: agreement
    # params
    consensus:
      quorum: 0.5
      iou: 0.5
      fusion: mean        # mean | median | wbf
      annotators: []      # empty: all
      keep: consensus     # or: all (the annotators' labels stay beside the consensus)
    ```
    """
    (dataset,) = inputs
    gathered = select(gather(dataset), params.annotators, ctx, "annotators")
    categories = gathered.class_map()
    ids = {c.name: c.id for c in categories}
    merged = merge(gathered, ids, params.quorum, params.iou, params.fusion)
    out = DatasetBuilder(categories)
    for sample in dataset.samples():
        labels = merged.labels.get(sample.id, [])
        kept = [a for a in sample.annotations if a.annotator != CONSENSUS]
        annotations = labels + kept if params.keep == "all" else labels
        if sample.id not in merged.labels and params.keep == "consensus":
            # no annotator of the selection saw it: its labels are not anyone's to merge
            annotations = [a for a in sample.annotations if a.annotator is None]
        out.add(dataclasses.replace(sample, annotations=annotations))
    (ctx.output_dir / REVIEW_JSON).write_text(
        json.dumps(merged.review, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    result = measure(gathered, params.iou)
    names = {c.id: c.name for c in categories}
    (ctx.output_dir / REPORT_HTML).write_text(
        render(f"Consensus: {ctx.stage}", result, gathered, merged, opener(ctx), names),
        encoding="utf-8",
    )
    if merged.review:
        ctx.log.warning(
            "%s: %d clusters or image labels go to review (%s)",
            ctx.stage,
            len(merged.review),
            ", ".join(f"{n} {r}" for r, n in merged.metrics["review_by_reason"].items()),
        )
    metrics = {
        **{k: v for k, v in merged.metrics.items() if k != "review_by_reason"},
        **{f"review_{k}": v for k, v in merged.metrics["review_by_reason"].items()},
        **{f"agreement_{k}": v for k, v in metrics_of(result).items()},
    }
    plot = [{"reason": r, "count": n} for r, n in merged.metrics["review_by_reason"].items()]
    return StageResult(output=out, metrics=metrics, plots={"review": plot})
