"""What the ``agreement`` and ``consensus`` stages share: annotators, thumbnails, metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelpipe import Dataset, PixelpipeError, Problem, StageContext, did_you_mean
from pixelpipe.review.gather import Gathered, ImageLabels, from_samples
from pixelpipe.review.measure import FIGURES


def gather(dataset: Dataset) -> Gathered:
    """The manifest's labels per image and annotator, read once."""
    return from_samples(dataset.samples(), dataset.categories)


def select(gathered: Gathered, names: list[str], ctx: StageContext, key: str) -> Gathered:
    """The labels of the annotators ``names`` names (all when empty).

    An unknown name is a params error (at ``key``), with a did-you-mean.
    """
    if names:
        every = gathered.annotators
        unknown = [n for n in names if n not in every]
        if unknown:
            raise PixelpipeError(
                [
                    Problem(
                        f"no annotator '{n}' in the input"
                        + (did_you_mean(n, every) or f"; annotators: {', '.join(every) or 'none'}"),
                        file="params.yaml",
                        key=f"{ctx.stage}.{key}",
                    )
                    for n in unknown
                ]
            )
        return gathered.only(names)
    return gathered


def opener(ctx: StageContext) -> Any:
    """Finds an image's file in the project for the report's thumbnails."""

    def find(one: ImageLabels) -> Path | None:
        if not one.image:
            return None
        path = ctx.root / one.image
        return path if path.is_file() else None

    return find


def metrics_of(result: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers for DVC metrics (``None`` where undefined)."""
    metrics = {key: result[key] for key in ("items", *FIGURES) if result.get(key) is not None}
    metrics["annotators"] = len(result["annotators"])
    for name, entry in result["annotators"].items():
        for figure in ("precision", "recall", "accuracy"):
            if entry.get(figure) is not None:
                metrics[f"gold_{figure}_{name}"] = entry[figure]
    return metrics


def plots_of(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Agreement of each annotator with the others, and per class."""
    annotators = []
    for name, entry in result["annotators"].items():
        value = entry.get("box_f1_with_others", entry.get("label_agreement_with_others"))
        annotators.append({"annotator": name, "agreement": value if value is not None else 0.0})
    classes = []
    boxes = result.get("boxes") or {}
    labels = result.get("image_labels") or {}
    for name, entry in (boxes.get("per_class") or {}).items():
        classes.append({"class": name, "agreement": entry.get("f1") or 0.0})
    if not classes:
        for name, entry in (labels.get("per_class") or {}).items():
            classes.append({"class": name, "agreement": entry.get("specific_agreement") or 0.0})
    return {"annotators": annotators, "classes": classes}
