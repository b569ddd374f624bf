"""The ``label_issues`` report: ``report.json`` (every flagged label set) and ``report.html``.

The JSON holds the counts, the rule and its per-class cuts, a histogram of the images'
label quality and every flagged label set, worst first, with its boxes: each label box
with its badly located and swapped scores and reasons, and the predictions that matter
(confidence above 0.5, the least cleanlab considers, or flagged as overlooked) with their
overlooked score. The page shows the same figures and the worst ``worst`` label sets,
labels and predictions drawn over the photo in two colours and the flagged boxes in a third,
each box captioned with its class and, when flagged, its reason. No timestamps, numbers
rounded: reruns write the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelpipe.htmlreport import card, escape, histogram_svg, page, thumbnail
from pixelpipe.quality.label_errors import LOW_PROBABILITY_THRESHOLD, REASONS, ItemIssues
from stages._label_issues.select import LabelSet

LABEL_COLOR = "#3cb44b"
PREDICTION_COLOR = "#4363d8"
FLAGGED_COLOR = "#e6194b"
THUMB = 320
BINS = 10
DIGITS = 6
Opener = Callable[[str], Path | None]
"""The file of a stored image path, or ``None`` when it is not in the project."""


def _num(value: float) -> float | None:
    """A JSON number rounded to :data:`DIGITS`; ``None`` for NaN."""
    return round(float(value), DIGITS) if math.isfinite(value) else None


def flagged_entry(one: LabelSet, issues: ItemIssues, names: Mapping[int, str]) -> dict[str, Any]:
    """One flagged label set as JSON: scores, reasons and boxes.

    Args:
        one: The label set.
        issues: What cleanlab found in it.
        names: Category names by id.

    Returns:
        A JSON-ready dict.
    """
    labels = one.boxes
    predictions = one.image.predictions
    shown_labels = [
        {
            "category_id": category,
            "category": names.get(category, str(category)),
            "bbox": [_num(v) for v in box],
            "badly_located": _num(bad),
            "swapped": _num(swap),
            "reasons": list(reasons),
        }
        for box, category, bad, swap, reasons in zip(
            labels.bboxes,
            labels.classes,
            issues.label_badly_located.tolist(),
            issues.label_swapped.tolist(),
            issues.label_reasons,
            strict=True,
        )
    ]
    shown_predictions = [
        {
            "category_id": category,
            "category": names.get(category, str(category)),
            "bbox": [_num(v) for v in box],
            "score": _num(score),
            "overlooked": _num(over),
            "reasons": ["overlooked"] if hit else [],
        }
        for box, category, score, over, hit in zip(
            predictions.bboxes,
            predictions.classes,
            predictions.scores,
            issues.prediction_overlooked.tolist(),
            issues.prediction_flagged.tolist(),
            strict=True,
        )
        if hit or score > LOW_PROBABILITY_THRESHOLD
    ]
    return {
        "id": one.image.id,
        "image": one.image.image,
        "annotator": one.annotator,
        "score": _num(issues.score),
        "overlooked": _num(issues.overlooked),
        "badly_located": _num(issues.badly_located),
        "swapped": _num(issues.swapped),
        "reasons": list(issues.reasons),
        "labels": shown_labels,
        "predictions": shown_predictions,
    }


def histogram(scores: Sequence[float]) -> dict[str, list[Any]]:
    """Images per tenth of label quality (the last bin holds 1.0)."""
    counts = [0] * BINS
    for score in scores:
        counts[min(int(score * BINS), BINS - 1)] += 1
    return {"edges": [round(i / BINS, 2) for i in range(BINS + 1)], "counts": counts}


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header) if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_shown(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _shown(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _card(entry: Mapping[str, Any], opener: Opener) -> str:
    boxes: list[tuple[tuple[float, float, float, float], str]] = []
    colors: list[str] = []
    for label in entry["labels"]:
        reasons = label["reasons"]
        text = label["category"] + (f": {', '.join(reasons)}" if reasons else "")
        boxes.append((tuple(label["bbox"]), text))
        colors.append(FLAGGED_COLOR if reasons else LABEL_COLOR)
    for pred in entry["predictions"]:
        reasons = pred["reasons"]
        text = f"{pred['category']} {pred['score']:.2f}" + (": overlooked" if reasons else "")
        boxes.append((tuple(pred["bbox"]), text))
        colors.append(FLAGGED_COLOR if reasons else PREDICTION_COLOR)
    who = entry["annotator"] or "labels"
    caption = (
        f"{entry['id']} · {who} · quality {entry['score']:.3f} · {', '.join(entry['reasons'])}"
    )
    path = opener(entry["image"])
    if path is None:
        return f'<div class="card">{escape(caption)} (image not found)</div>'
    return card(thumbnail(path, THUMB, boxes, colors=colors), caption)


def render(report: Mapping[str, Any], opener: Opener, worst: int) -> str:
    """The HTML page of a ``label_issues`` run.

    Args:
        report: What ``report.json`` holds.
        opener: Finds an image's file for its thumbnail.
        worst: How many flagged label sets to show, worst first.

    Returns:
        The page.
    """
    counts = report["counts"]
    headline = [
        ["images", counts["images"]],
        ["images scored", counts["scored"]],
        ["images flagged", counts["flagged"]],
        ["images without predictions (not scored)", counts["no_predictions"]],
        ["images without labels (not scored)", counts["unlabelled"]],
        *[[f"flagged: {reason}", counts["by_reason"][reason]] for reason in REASONS],
        ["boxes flagged", counts["boxes_flagged"]],
    ]
    parts = [
        f"<p>Model: <b>{escape(report['model'] or 'any annotation with a score')}</b>; labels "
        f"checked: <b>{escape(', '.join(report['labels']) or 'every annotation without a score')}"
        f"</b>. Rule: {escape(report['rule'])}</p>",
        _table(headline),
    ]
    cuts = report.get("class_cuts") or []
    if cuts:
        parts.append("<h2>Cuts per class</h2>")
        parts.append(
            _table(
                [[c["name"], c["id"], c["ap"], c["cut"]] for c in cuts],
                ["class", "id", "AP 0.5:0.95", "box score cut (0.8 x 0.25 x AP)"],
            )
        )
    bins = report["histogram"]
    labels = [f"{bins['edges'][i]:.1f}" for i in range(len(bins["counts"]))]
    parts.append(
        histogram_svg(bins["counts"], labels, "images by label quality (each bar: a tenth, from 0)")
    )
    flagged = report["flagged"]
    shown = flagged[:worst]
    parts.append(f"<h2>Flagged, worst first ({len(shown)} of {len(flagged)})</h2>")
    parts.append(
        f'<p class="muted">Labels in <span style="color:{LABEL_COLOR}">green</span>, '
        f"predictions (confidence above {LOW_PROBABILITY_THRESHOLD}) in "
        f'<span style="color:{PREDICTION_COLOR}">blue</span>, flagged boxes in '
        f'<span style="color:{FLAGGED_COLOR}">red</span> with their reason.</p>'
    )
    parts.append(
        f"<style>.wide .card{{width:{THUMB + 20}px}}.wide .card img{{max-width:{THUMB}px;"
        f"max-height:{THUMB}px}}</style>"
    )
    parts.append('<div class="row wide">' + "".join(_card(e, opener) for e in shown) + "</div>")
    return page(f"Label issues: {report['stage']}", "\n".join(parts))
