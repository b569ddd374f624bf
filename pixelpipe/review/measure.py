"""Agreement between annotators, and each one against a gold set: the JSON the commands write.

:func:`agreement` runs the label maths of :mod:`pixelpipe.quality` over a :class:`Gathered`:
image-level class labels (percent agreement, Cohen's kappa per pair, Fleiss' kappa,
Krippendorff's alpha) and boxes (one-to-one Hungarian matching per annotator pair: mean IoU,
precision, recall, F1; clusters across all annotators with "no box" as a value for the
kappas and alpha). The headline statistics come from the image labels when there are any,
else from the box clusters, and ``statistics_over`` says which. With a taxonomy, matched
pairs of differing classes earn partial credit (:mod:`pixelpipe.quality.credit`), reported
as ``hierarchical_agreement`` beside the figures, which it leaves unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pixelpipe.errors import PixelpipeError, Problem
from pixelpipe.quality.agreement import box_agreement
from pixelpipe.quality.consensus import cluster_boxes
from pixelpipe.quality.credit import label_credit
from pixelpipe.quality.gold import boxes_against_gold, labels_against_gold
from pixelpipe.quality.inputs import QualityInputError
from pixelpipe.quality.labels import label_agreement
from pixelpipe.review.gather import Gathered, ImageLabels
from pixelpipe.taxonomy import Taxonomy

NO_BOX = "(no box)"
"""The value of an annotator who saw an image but drew no box in a cluster."""
NO_LABEL = "(no label)"
"""The value of an annotator who saw an image but gave it no class label."""
FIGURES = (
    "percent_agreement",
    "cohen_kappa_mean",
    "fleiss_kappa",
    "krippendorff_alpha",
    "box_iou_mean",
    "box_f1",
)
"""The headline figures, as the command prints them and the stages' metrics hold them."""
HEADLINE = (
    "percent_agreement",
    "cohen_kappa_mean",
    "fleiss_kappa",
    "fleiss_kappa_reason",
    "krippendorff_alpha",
    "krippendorff_alpha_reason",
)


@contextmanager
def user_errors(what: str) -> Iterator[None]:
    """Turn the label maths' input errors into one user error listing every problem."""
    try:
        yield
    except QualityInputError as exc:
        raise PixelpipeError([Problem(f"{what}: {p}") for p in exc.problems]) from None


def tag_value(one: ImageLabels, annotator: str) -> str | None:
    """An annotator's image label of one image; several labels read as one ``a+b`` value."""
    tags = one.tags.get(annotator)
    if annotator not in one.seen:
        return None
    return "+".join(tags) if tags else NO_LABEL


def tag_ratings(gathered: Gathered) -> list[list[str | None]]:
    """One row per image an annotator gave a class label, one value per annotator."""
    rows = []
    for one in gathered.images:
        if one.tags:
            rows.append([tag_value(one, a) for a in gathered.annotators])
    return rows


def cluster_ratings(gathered: Gathered, iou_threshold: float) -> list[list[str | None]]:
    """One row per box cluster: each annotator's label in it, ``NO_BOX``, or ``None`` (unseen)."""
    rows: list[list[str | None]] = []
    for one in gathered.images:
        per = one.box_input()
        if len(per) < 2:
            continue
        for cluster in cluster_boxes(per, iou_threshold):
            rows.append(
                [
                    per[a][1][cluster.members[a]]
                    if a in cluster.members
                    else (NO_BOX if a in per else None)
                    for a in gathered.annotators
                ]
            )
    return rows


def agreement(
    gathered: Gathered,
    iou_threshold: float = 0.5,
    gold: Gathered | None = None,
    worst: int = 20,
    taxonomy: Taxonomy | None = None,
) -> dict[str, Any]:
    """Agreement of every annotator with every other, and with ``gold`` when given.

    Args:
        gathered: The annotators' labels (without the gold set).
        iou_threshold: Smallest IoU at which two boxes are the same object.
        gold: The gold set (one annotator), scored against, never averaged in.
        worst: How many of the lowest-agreement images to list.
        taxonomy: A class hierarchy: matched boxes and image labels of differing classes
            earn ``taxonomy.credit`` instead of 0, reported as ``hierarchical_agreement``.

    Returns:
        JSON-ready figures; see ``docs/agreement.md`` for every key.
    """
    with user_errors("agreement"):
        return _agreement(gathered, iou_threshold, gold, worst, taxonomy)


def _agreement(
    gathered: Gathered,
    iou_threshold: float,
    gold: Gathered | None,
    worst: int,
    taxonomy: Taxonomy | None,
) -> dict[str, Any]:
    annotators = gathered.annotators
    out: dict[str, Any] = {
        "items": sum(1 for one in gathered.images if len(one.seen) >= 2),
        "images": len(gathered.images),
        "iou_threshold": iou_threshold,
        "classes": gathered.classes,
    }
    credit = taxonomy.credit if taxonomy is not None else None  # synonyms are their class
    labels = None
    if gathered.has_tags():
        ratings = tag_ratings(gathered)
        labels = label_agreement(ratings, annotators)
        if credit is not None:
            labels.update(label_credit(ratings, annotators, credit, {NO_LABEL}))
    boxes = (
        box_agreement(
            ((one.id, one.box_input()) for one in gathered.images),
            annotators,
            iou_threshold,
            worst,
            credit,
        )
        if gathered.has_boxes()
        else None
    )
    units = (
        label_agreement(cluster_ratings(gathered, iou_threshold), annotators)
        if boxes is not None
        else None
    )
    headline = labels if labels is not None else units
    out["statistics_over"] = (
        "image_labels" if labels is not None else "boxes" if units is not None else None
    )
    for key in HEADLINE:
        out[key] = headline.get(key) if headline is not None else None
    if headline is None:
        out["fleiss_kappa_reason"] = "no labels from two or more annotators"
    out["box_iou_mean"] = boxes["box_iou_mean"] if boxes is not None else None
    out["box_f1"] = boxes["box_f1"] if boxes is not None else None
    out["image_labels"] = labels
    out["boxes"] = boxes
    out["box_units"] = units
    out["annotators"] = _per_annotator(gathered, labels, boxes)
    out["notes"] = list(gathered.notes) + [
        note
        for part in (labels, boxes, units)
        if part is not None
        for note in part.get("notes", [])
        if part is not units  # the box clusters repeat the box notes
    ]
    if len(annotators) < 2:
        out["notes"].append(f"only {len(annotators)} annotator(s): agreement needs two or more")
    if taxonomy is not None:
        _hierarchical(out, gathered, taxonomy, labels if labels is not None else boxes)
    if gold is not None:
        _score_gold(out, gathered, gold, iou_threshold)
    finite: dict[str, Any] = _finite(out)
    return finite


def _hierarchical(
    out: dict[str, Any], gathered: Gathered, taxonomy: Taxonomy, source: dict[str, Any] | None
) -> None:
    """Add the headline ``hierarchical_agreement`` and the taxonomy used.

    The headline comes from where the statistics come from; a note names the classes
    the taxonomy does not know.
    """
    unknown = [name for name in gathered.classes if taxonomy.canonical(name) is None]
    out["hierarchical_agreement"] = (
        source.get("hierarchical_agreement") if source is not None else None
    )
    out["taxonomy"] = {
        "file": taxonomy.source,
        "levels": taxonomy.levels(),
        "not_in_taxonomy": unknown,
    }
    if unknown:
        one = len(unknown) == 1
        out["notes"].append(
            f"{len(unknown)} {'class is' if one else 'classes are'} not in the taxonomy "
            f"{taxonomy.source} ({', '.join(unknown)}): against another class, "
            f"{'it earns' if one else 'they earn'} no partial credit."
        )


def _per_annotator(
    gathered: Gathered, labels: dict[str, Any] | None, boxes: dict[str, Any] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in gathered.annotators:
        entry: dict[str, Any] = {
            "images": sum(1 for one in gathered.images if name in one.seen),
            "boxes": sum(len(one.boxes[name][1]) for one in gathered.images if name in one.boxes),
            "image_labels": sum(len(one.tags.get(name, [])) for one in gathered.images),
        }
        if labels is not None:
            entry["label_agreement_with_others"] = labels["annotators"][name][
                "agreement_with_others"
            ]
        if boxes is not None:
            entry["box_f1_with_others"] = boxes["annotators"][name]["f1_with_others"]
        out[name] = entry
    return out


def _score_gold(
    out: dict[str, Any], gathered: Gathered, gold: Gathered, iou_threshold: float
) -> None:
    """Each annotator's precision, recall, accuracy and confusion matrix against ``gold``."""
    if len(gold.annotators) != 1:
        raise ValueError(f"a gold set has one annotator, got {gold.annotators}")
    (gold_name,) = gold.annotators
    key = f"{gold_name} (gold)" if gold_name in gathered.annotators else gold_name
    truth = {one.id: one for one in gold.images}
    out["gold"] = {"name": gold_name, "images": len(gold.images)}
    shared = [one for one in gathered.images if one.id in truth]
    if not shared:
        out["notes"].append(f"the gold set '{gold_name}' shares no image with the annotators")
    for name in gathered.annotators:
        scores: dict[str, Any] = {}
        if gathered.has_boxes() or gold.has_boxes():
            pairs = []
            for one in shared:
                if name not in one.seen:
                    continue
                ref = truth[one.id]
                pairs.append(
                    (one.id, {name: one.box_input()[name], key: ref.box_input()[gold_name]})
                )
            scores["boxes"] = boxes_against_gold(pairs, name, key, iou_threshold)
        if gathered.has_tags() or gold.has_tags():
            seen = [one for one in shared if name in one.seen]
            mine = [_rated(tag_value(one, name)) for one in seen]
            theirs = [_rated(tag_value(truth[one.id], gold_name)) for one in seen]
            scores["image_labels"] = labels_against_gold(mine, theirs)
        main = scores.get("image_labels") if gathered.has_tags() else scores.get("boxes")
        entry = out["annotators"][name]
        entry["gold"] = scores
        for figure in ("precision", "recall", "accuracy"):
            entry[figure] = main.get(figure) if main is not None else None


def _rated(value: str | None) -> str | None:
    """A label to score against gold: no label is missing, not a class of its own."""
    return None if value == NO_LABEL else value


def _finite(value: Any) -> Any:
    """JSON-safe: NaN and infinities become ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
