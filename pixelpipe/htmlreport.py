"""Self-contained HTML reports (every stage's, the label-quality commands'): thumbnails, pages.

Reports embed their thumbnails as data URIs, so a page opens anywhere (a CI artifact, a
copied folder) with no broken links, and hold no timestamps, so reruns are byte-identical.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageDraw, ImageOps

escape = html.escape

_PLACEHOLDER = (
    "data:image/svg+xml;base64,"
    + base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120">'
        b'<rect width="160" height="120" fill="#eee"/><text x="80" y="64" font-size="12" '
        b'text-anchor="middle" fill="#a00">cannot decode</text></svg>'
    ).decode()
)


def thumbnail(
    path: Path | BinaryIO,
    size: int = 192,
    boxes: Sequence[tuple[tuple[float, float, float, float], str]] = (),
    color: str = "#e6194b",
    colors: Sequence[str] | None = None,
) -> str:
    """A JPEG thumbnail of ``path`` as a data URI, with COCO boxes drawn and labelled.

    Args:
        path: The image file, or a binary stream of its encoded bytes.
        size: Longest side of the thumbnail in pixels.
        boxes: ``([x, y, w, h], label)`` pairs in the image's own pixels.
        color: Box colour.
        colors: One colour per box instead (e.g. one per annotator).

    Returns:
        A ``data:`` URI; an SVG placeholder when the image cannot be decoded.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            image.draft("RGB", (size, size))
            image.load()
            thumb = image.convert("RGB")
    except Exception:  # any undecodable file becomes a placeholder, never a crash
        return _PLACEHOLDER
    thumb.thumbnail((size, size))
    scale_x, scale_y = thumb.width / max(width, 1), thumb.height / max(height, 1)
    draw = ImageDraw.Draw(thumb)
    shades = list(colors) if colors is not None else [color] * len(boxes)
    for ((x, y, w, h), label), shade in zip(boxes, shades, strict=True):
        rect = (x * scale_x, y * scale_y, (x + w) * scale_x, (y + h) * scale_y)
        draw.rectangle(rect, outline=shade, width=2)
        if label:
            draw.text((rect[0] + 3, rect[1] + 2), label, fill=shade)
    # Boxes past the edge stay visible: pad the thumbnail by the overflow.
    pad = _overflow(boxes, width, height, scale_x, scale_y)
    if pad:
        thumb = ImageOps.expand(thumb, border=pad, fill="#ccc")
        draw = ImageDraw.Draw(thumb)
        for ((x, y, w, h), _), shade in zip(boxes, shades, strict=True):
            draw.rectangle(
                (
                    x * scale_x + pad,
                    y * scale_y + pad,
                    (x + w) * scale_x + pad,
                    (y + h) * scale_y + pad,
                ),
                outline=shade,
                width=2,
            )
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _overflow(
    boxes: Sequence[tuple[tuple[float, float, float, float], str]],
    width: int,
    height: int,
    scale_x: float,
    scale_y: float,
) -> int:
    worst = 0.0
    for (x, y, w, h), _ in boxes:
        worst = max(
            worst, -x * scale_x, -y * scale_y, (x + w - width) * scale_x, (y + h - height) * scale_y
        )
    return int(min(worst, 64.0)) + 2 if worst > 0 else 0


def histogram_svg(
    counts: Sequence[int],
    labels: Sequence[str],
    title: str,
    marker: int | None = None,
    width: int = 640,
    height: int = 180,
) -> str:
    """An inline SVG bar chart.

    Args:
        counts: Bar heights.
        labels: One label per bar (shown under every bar when they fit).
        title: Caption.
        marker: Index of a bar to highlight (e.g. the threshold).
        width: Width in pixels.
        height: Height in pixels.
    """
    top = max(counts) if counts else 0
    bar = (width - 40) / max(len(counts), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    every = max(1, int(len(counts) / ((width - 40) / 28)))
    for index, (count, label) in enumerate(zip(counts, labels, strict=True)):
        h = 0 if top == 0 else (height - 30) * count / top
        x = 30 + index * bar
        fill = "#e6194b" if index == marker else "#4363d8"
        parts.append(
            f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{max(bar - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="{fill}"><title>{escape(label)}: {count}</title></rect>'
        )
        if index % every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height + 14}" font-size="10" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(f'<text x="4" y="{height - (height - 30) + 10}" font-size="10">{top}</text>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;font-size:13px}th{background:#f4f4f4}.muted{color:#777;font-size:12px}
.row{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0;padding:10px;background:#fafafa;
border:1px solid #eee;border-radius:6px}.card{width:200px;font-size:12px;word-break:break-all}
.card img{display:block;max-width:200px;max-height:200px;border:1px solid #ccc}
.keep{outline:3px solid #3cb44b}.drop{outline:3px solid #e6194b}
"""


def page(title: str, body: str) -> str:
    """A complete HTML document around ``body`` (already escaped HTML)."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def card(image_uri: str, caption: str, css_class: str = "") -> str:
    """One thumbnail with a caption (``caption`` is escaped here)."""
    klass = f' class="{css_class}"' if css_class else ""
    return (
        f'<div class="card"><img{klass} src="{image_uri}" alt="{escape(caption)}">'
        f"<div>{escape(caption)}</div></div>"
    )
