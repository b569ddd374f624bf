"""Route: a model's confident labels accepted, uncertain ones sent to people, the rest discarded."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pixelpipe import (
    Annotation,
    Dataset,
    DatasetBuilder,
    Dependency,
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
from pixelpipe.quality.routing import ACCEPT, DISCARD, REVIEW, audited, bands
from pixelpipe.review.reviews import SENT_FILE, Reviewed, load_reviews, write_json
from stages._route.queue import QUEUE_CVAT, QUEUE_LABEL_STUDIO, write_queue

PLOTS = {"bands": Plot(x="boxes", y="band", title="boxes per confidence band")}


class Bands(BaseModel):
    """The thresholds of one class."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    accept: float = Field(ge=0.0, le=1.0)
    """Smallest score accepted without review."""
    review: float = Field(ge=0.0, le=1.0)
    """Smallest score sent to review; below, the box is discarded."""


class Params(StageParams):
    """Params of the ``route`` stage."""

    accept: float = Field(default=0.9, ge=0.0, le=1.0)
    """Smallest score accepted without review."""
    review: float = Field(default=0.7, ge=0.0, le=1.0)
    """Smallest score sent to review; below it a box is discarded."""
    per_class: dict[str, Bands] = {}
    """Thresholds of classes that differ, e.g. ``{person: {accept: 0.95, review: 0.8}}``."""
    audit: float = Field(default=0.05, ge=0.0, le=1.0)
    """Share of accepted images sent to review anyway, to measure how often accepted
    labels are right (drawn by a hash of the seed and the image id)."""
    seed: int = 0
    """Seed of the audit draw."""
    model: str | None = None
    """The annotator whose labels are routed; ``null``: every label with a score."""
    reviewed: Annotated[str, Dependency()] = ""
    """The reviews file ``pixelpipe review import`` writes (``reviews/<stage>.json``, and it
    says so when this is empty): a reviewed image leaves with the reviewer's labels."""
    image_prefix: str = ""
    """What the Label Studio tasks' image URLs start with, before the image's path in the
    project (a bucket, a web server); empty: Label Studio's local files,
    ``/data/local-files/?d=<path>``, served with the project as document root."""

    @model_validator(mode="after")
    def _ordered(self) -> Params:
        pairs = [("", Bands(accept=self.accept, review=self.review))]
        for name, pair in [*pairs, *sorted(self.per_class.items())]:
            if pair.review > pair.accept:
                where = f"per_class.{name}: " if name else ""
                raise ValueError(f"{where}review ({pair.review}) is above accept ({pair.accept})")
        return self


def _predicted(ann: Annotation, model: str | None) -> bool:
    return ann.score is not None and (model is None or ann.annotator == model)


@stage("route", params=Params, plots=PLOTS)
def route(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Route a model's labels by confidence: accept, send to review, or discard.

    Per box of the model (``model``, else every label with a score): ``accept`` when
    its score is at least ``accept``, ``review`` from ``review`` up to ``accept``,
    discarded below (per-class thresholds in ``per_class``). An image goes to review when
    any of its boxes does, and a seeded ``audit`` share of the accepted images goes too.
    The output holds the accepted images with their accepted boxes (other labels, such as
    human ones, kept); an image sent to review is removed with reason ``review`` (or
    ``audit``) until its review comes back; so is an image whose boxes were all discarded
    (the model saw something it is not sure of; an image it found nothing on is accepted
    as it is). Only the model's boxes go
    to review; people's labels on the image stay as they are. The review queue is written
    for both tools:
    ``review/labelstudio.json`` (Label Studio tasks with ``predictions``, a ``score`` per
    box, the task's ``score`` its lowest box score so the riskiest sort first, boxes in
    percent) and ``review/cvat.xml`` (CVAT for images 1.1, the score as a number
    attribute), with ``review/labelstudio-config.xml`` (the labelling config those tasks
    need) and ``review/sent.json`` (what was sent and why, to check what comes back).
    After ``pixelpipe review import EXPORT`` writes the ``reviewed`` file, a rerun lets
    every reviewed image through with the reviewer's labels (``annotator`` = the
    reviewer). Discarded boxes are counted per class in the metrics; what reviewers changed
    is counted apart for the review band and the audit, and ``audit_precision`` is the
    share of audited boxes they left as they were.

    ```yaml
    # pipelines/model-loop.yaml
    stages:
      route:
        kind: route
        inputs: ingest
    # params
    route:
      accept: 0.9
      review: 0.7
      per_class: {}         # e.g. {person: {accept: 0.95, review: 0.8}}
      audit: 0.05
      seed: 0
      model: null           # e.g. detector-v3
      reviewed: ""          # e.g. reviews/route.json, after `pixelpipe review import`
    ```
    """
    (dataset,) = inputs
    names = {c.id: c.name for c in dataset.categories}
    ids = {c.name: c.id for c in dataset.categories}
    thresholds = {k: (v.accept, v.review) for k, v in params.per_class.items()}
    unknown = sorted(set(thresholds) - set(ids))
    if unknown:
        raise PixelpipeError(
            [
                Problem(
                    f"no class '{n}' in the dataset" + did_you_mean(n, ids),
                    file="params.yaml",
                    key=f"{ctx.stage}.per_class.{n}",
                )
                for n in unknown
            ]
        )
    reviews = load_reviews(ctx.root / params.reviewed, params.reviewed) if params.reviewed else {}
    out = DatasetBuilder(dataset.categories)
    queue: list[tuple[Sample, list[str], str]] = []
    counts: dict[str, dict[str, int]] = {b: {} for b in (ACCEPT, REVIEW, DISCARD)}
    tally = {"images_accepted": 0, "images_review": 0, "images_audit": 0, "images_reviewed": 0}
    changed: dict[str, dict[str, int]] = {"review": {}, "audit": {}}
    for sample in dataset.samples():
        review = reviews.get(sample.id)
        if review is not None and review.sha256 == sample.sha256:
            out.add(_reviewed(sample, review, ids, params.model, ctx))
            tally["images_reviewed"] += 1
            into = changed.setdefault(review.sent_for, {})
            for kind, n in review.changes.items():
                into[kind] = into.get(kind, 0) + n
            continue
        mine = [a for a in sample.annotations if _predicted(a, params.model)]
        labels = [names.get(a.category_id, str(a.category_id)) for a in mine]
        banded = bands(
            [a.score or 0.0 for a in mine], labels, params.accept, params.review, thresholds
        )
        for band, label in zip(banded, labels, strict=True):
            counts[band][label] = counts[band].get(label, 0) + 1
        kept = [a for a, b in zip(mine, banded, strict=True) if b != DISCARD]
        others = [a for a in sample.annotations if not _predicted(a, params.model)]
        # the reviewer sees (and sends back) the model's boxes only; people's labels stay
        model_only = dataclasses.replace(sample, annotations=kept)
        kept_bands = [b for b in banded if b != DISCARD]
        if REVIEW in banded or (mine and not kept and not others):
            detail = (
                f"{banded.count(REVIEW)} boxes to review"
                if REVIEW in banded
                else "every box below the review threshold"
            )
            queue.append((model_only, kept_bands, "review"))
            out.remove(sample.id, "review", detail, source=sample.source)
            tally["images_review"] += 1
        elif audited(sample.id, params.seed, params.audit):
            queue.append((model_only, kept_bands, "audit"))
            out.remove(sample.id, "audit", "accepted, drawn for the audit", source=sample.source)
            tally["images_audit"] += 1
        else:
            out.add(dataclasses.replace(sample, annotations=others + kept))
            tally["images_accepted"] += 1
    sent = write_queue(ctx.output_dir, queue, names, params.image_prefix, params.model)
    write_json(ctx.output_dir / SENT_FILE, {"stage": ctx.stage, "images": sent})
    metrics: dict[str, Any] = dict(tally)
    for band, per in counts.items():
        metrics[f"boxes_{band}"] = sum(per.values())
        metrics[f"boxes_{band}_by_class"] = dict(sorted(per.items()))
    for reason, kinds in sorted(changed.items()):
        metrics[f"{reason}_changes"] = dict(sorted(kinds.items()))
    audit = changed.get("audit", {})
    boxes = sum(v for k, v in audit.items() if k != "added")
    if boxes:
        # how often accepted labels were right: the share of audited boxes left as they were
        metrics["audit_precision"] = round(audit.get("unchanged", 0) / boxes, 4)
    ctx.log.info(
        "%s: %d images accepted, %d to review (%d audit) in %s and %s",
        ctx.stage,
        tally["images_accepted"],
        tally["images_review"] + tally["images_audit"],
        tally["images_audit"],
        QUEUE_LABEL_STUDIO,
        QUEUE_CVAT,
    )
    plot = [{"band": b, "boxes": metrics[f"boxes_{b}"]} for b in (ACCEPT, REVIEW, DISCARD)]
    return StageResult(output=out, metrics=metrics, plots={"bands": plot})


def _reviewed(
    sample: Sample, review: Reviewed, ids: dict[str, int], model: str | None, ctx: StageContext
) -> Sample:
    """The sample with the reviewer's labels in place of the model's."""
    unknown = sorted({label["class"] for label in review.labels} - set(ids))
    if unknown:
        raise PixelpipeError(
            f"{ctx.stage}: the review of {sample.id} uses classes the dataset does not have: "
            f"{', '.join(unknown)}"
        )
    labels = [
        Annotation(
            category_id=ids[label["class"]],
            bbox=(label["bbox"][0], label["bbox"][1], label["bbox"][2], label["bbox"][3]),
            annotator=review.reviewer,
        )
        for label in review.labels
    ]
    others = [a for a in sample.annotations if not _predicted(a, model)]
    return dataclasses.replace(sample, annotations=others + labels)
