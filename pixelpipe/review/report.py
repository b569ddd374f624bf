"""The HTML page of an agreement or consensus run: the matrix, the classes, the worst images.

One self-contained page (thumbnails embedded, no timestamps): the headline statistics, the
annotator x annotator matrix (box F1, or Cohen's kappa for image labels) shaded by value,
the per-class figures, each annotator against the gold set when there is one, the images
with the lowest agreement with every annotator's boxes drawn in its own colour and the
consensus beside them, the review list and the notes about the input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelpipe.htmlreport import card, escape, page, thumbnail
from pixelpipe.review.gather import Gathered, ImageLabels
from pixelpipe.review.merge import Merged

PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#9a6324",
    "#808000",
    "#000075",
)
CONSENSUS_COLOR = "#ffe119"
THUMB = 240
Opener = Callable[[ImageLabels], Path | None]
"""Where an image's pixels are, or ``None``: the report then lists it without a picture."""


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return escape(str(value))


def _shade(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    level = max(0.0, min(1.0, float(value)))
    red, green = int(230 - 150 * level), int(120 + 110 * level)
    return f' style="background:rgb({red},{green},130)"'


def _table(header: list[str], rows: list[list[Any]], shade_from: int = 99) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{_shade(v) if i >= shade_from else ''}>{_number(v)}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _matrix(result: dict[str, Any]) -> str:
    names = list(result["annotators"])
    boxes = result.get("boxes")
    if boxes is not None:
        matrix = boxes["matrix"]
        title = "Box F1 between annotators (same-label matches at the IoU threshold)"
        rows = [[a] + [matrix.get(a, {}).get(b) for b in names] for a in names]
    else:
        labels = result.get("image_labels") or {}
        kappas = labels.get("cohen_kappa", {})
        title = "Cohen's kappa between annotators (image labels)"
        rows = [
            [a] + [1.0 if a == b else kappas.get(f"{a}|{b}", kappas.get(f"{b}|{a}")) for b in names]
            for a in names
        ]
    return f"<h2>{escape(title)}</h2>" + _table(["", *names], rows, shade_from=1)


def _classes(result: dict[str, Any]) -> str:
    parts = []
    boxes = result.get("boxes")
    if boxes is not None and boxes.get("per_class"):
        rows = [
            [n, c.get("boxes"), c.get("f1"), c.get("iou_mean")]
            for n, c in boxes["per_class"].items()
        ]
        parts.append(
            "<h2>Boxes per class</h2>" + _table(["class", "boxes", "F1", "mean IoU"], rows, 2)
        )
    labels = result.get("image_labels")
    if labels is not None and labels.get("per_class"):
        rows = [
            [n, c.get("count"), c.get("specific_agreement"), c.get("alpha")]
            for n, c in labels["per_class"].items()
        ]
        parts.append(
            "<h2>Image labels per class</h2>"
            + _table(["class", "ratings", "specific agreement", "alpha"], rows, 2)
        )
    return "".join(parts)


def _gold(result: dict[str, Any]) -> str:
    if "gold" not in result:
        return ""
    rows = [
        [name, entry.get("precision"), entry.get("recall"), entry.get("accuracy")]
        for name, entry in result["annotators"].items()
    ]
    parts = [
        f"<h2>Against the gold set '{escape(result['gold']['name'])}'</h2>",
        _table(["annotator", "precision", "recall", "accuracy"], rows, 1),
    ]
    for name, entry in result["annotators"].items():
        for what, scores in sorted(entry.get("gold", {}).items()):
            confusion = scores.get("confusion")
            if not confusion:
                continue
            header = ["annotator \\ gold"] + confusion["labels"]
            rows = [
                [label, *row]
                for label, row in zip(confusion["labels"], confusion["rows"], strict=True)
            ]
            parts.append(f"<h3>{escape(name)}: {escape(what)}</h3>" + _table(header, rows))
    return "".join(parts)


def _images(
    gathered: Gathered,
    result: dict[str, Any],
    merged: Merged | None,
    opener: Opener,
    names: dict[int, str],
) -> str:
    boxes = result.get("boxes") or {}
    worst = boxes.get("worst_images") or []
    if not worst:
        return ""
    colors = {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(gathered.annotators)}
    legend = " ".join(
        f'<span style="color:{c};font-weight:bold">&#9632; {escape(a)}</span>'
        for a, c in colors.items()
    )
    if merged is not None:
        legend += f' <span style="background:#333;color:{CONSENSUS_COLOR}">&#9632; consensus</span>'
    by_id = {one.id: one for one in gathered.images}
    rows = []
    for entry in worst:
        one = by_id.get(entry["id"])
        if one is None:
            continue
        path = opener(one)
        caption = f"{one.id}: agreement {entry['score']:.2f}"
        if path is None:
            rows.append(
                f'<div class="row"><div class="card">{escape(caption)} (no image)</div></div>'
            )
            continue
        drawn = [
            ((float(b[0]), float(b[1]), float(b[2]), float(b[3])), f"{a}:{label}")
            for a, (arr, labels) in sorted(one.boxes.items())
            for b, label in zip(arr, labels, strict=True)
        ]
        shades = [colors[a] for a, (_, labels) in sorted(one.boxes.items()) for _ in labels]
        cards = [card(thumbnail(path, THUMB, drawn, colors=shades), caption)]
        if merged is not None:
            fused = [
                (a.bbox, names.get(a.category_id, str(a.category_id)))
                for a in merged.labels.get(one.id, [])
            ]
            cards.append(
                card(
                    thumbnail(path, THUMB, fused, color=CONSENSUS_COLOR),
                    f"consensus: {len(fused)} labels",
                )
            )
        rows.append(f'<div class="row">{"".join(cards)}</div>')
    return f"<h2>Lowest agreement</h2><p>{legend}</p>" + "".join(rows)


def _review(merged: Merged | None) -> str:
    if merged is None or not merged.review:
        return ""
    rows = [
        [e["image"], e["what"], e["reason"], ", ".join(f"{a}: {v}" for a, v in e["votes"].items())]
        for e in merged.review[:200]
    ]
    more = len(merged.review) - len(rows)
    tail = f'<p class="muted">... and {more} more in review.json</p>' if more > 0 else ""
    return "<h2>Sent to review</h2>" + _table(["image", "what", "reason", "votes"], rows) + tail


def render(
    title: str,
    result: dict[str, Any],
    gathered: Gathered,
    merged: Merged | None,
    opener: Opener,
    names: dict[int, str] | None = None,
) -> str:
    """The whole page.

    Args:
        title: The page title.
        result: What :func:`pixelpipe.review.measure.agreement` returned.
        gathered: The labels it was computed from.
        merged: The consensus, when the run made one.
        opener: Finds an image's file for thumbnails.
        names: Class id to name, for the consensus labels.
    """
    headline = [
        ["images", result.get("images")],
        ["images seen by two or more", result.get("items")],
        ["annotators", len(result.get("annotators", {}))],
        ["statistics over", result.get("statistics_over")],
        ["percent agreement", result.get("percent_agreement")],
        ["Cohen's kappa (mean of pairs)", result.get("cohen_kappa_mean")],
        ["Fleiss' kappa", result.get("fleiss_kappa")],
        ["Krippendorff's alpha (nominal)", result.get("krippendorff_alpha")],
        ["mean IoU of matched boxes", result.get("box_iou_mean")],
        ["box F1", result.get("box_f1")],
    ]
    if "hierarchical_agreement" in result:  # with a taxonomy
        headline.append(["hierarchical agreement", result["hierarchical_agreement"]])
    if result.get("fleiss_kappa") is None and result.get("fleiss_kappa_reason"):
        headline.append(["why no Fleiss' kappa", result["fleiss_kappa_reason"]])
    if merged is not None:
        headline += [[k, v] for k, v in merged.metrics.items() if not isinstance(v, dict)]
    notes = result.get("notes") or []
    body = [
        _table(["figure", "value"], headline),
        _matrix(result),
        _classes(result),
        _gold(result),
        _images(gathered, result, merged, opener, names or {}),
        _review(merged),
    ]
    if notes:
        body.append(
            "<h2>Notes on the input</h2><ul>"
            + "".join(f"<li>{escape(n)}</li>" for n in notes)
            + "</ul>"
        )
    return page(title, "\n".join(part for part in body if part))
