"""The report's thumbnails, drawn on the workers and reused from the per-item cache.

A thumbnail depends on the image's bytes and the boxes drawn on it, so a rerun whose
report shows the same clusters decodes none of their images again. Workers read pixels
from what :meth:`pixelpipe.StageContext.pixels` gives them, never from project paths.
"""

from __future__ import annotations

import base64
import functools
import io

from pixelpipe import Pixels, StageContext, read_pixels
from pixelpipe.htmlreport import thumbnail
from stages._dedupe.report import (
    THUMB_SIZE,
    Box,
    ReportData,
    Shot,
    ThumbKey,
    shown_shots,
    thumb_key,
)

NAMESPACE = "report_thumbnail"
"""Cache namespace of the thumbnails."""
UNREADABLE = (
    "data:image/svg+xml;base64,"
    + base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120">'
        b'<rect width="160" height="120" fill="#eee"/><text x="80" y="64" font-size="12" '
        b'text-anchor="middle" fill="#a00">cannot read</text></svg>'
    ).decode()
)
"""The thumbnail of an image that could not be read this time."""


def thumbnail_chunk(size: int, items: list[tuple[Pixels, tuple[Box, ...]]]) -> list[str | None]:
    """Executor work item: a thumbnail data URI per ``(pixels, boxes)``.

    ``None`` when the image could not be read (a transient failure, not stored in the
    cache); an image that cannot be decoded gets the placeholder, which its bytes decide.
    """
    uris: list[str | None] = []
    for pixels, boxes in items:
        try:
            data = read_pixels(pixels)
        except Exception:  # unreadable now; maybe not in a later run
            uris.append(None)
            continue
        uris.append(thumbnail(io.BytesIO(data), size, boxes))
    return uris


def add_thumbnails(data: ReportData, ctx: StageContext) -> None:
    """Fill ``data.thumbnails`` with every thumbnail the report shows."""
    wanted: dict[ThumbKey, Shot] = {}
    for shot in shown_shots(data):
        wanted.setdefault(thumb_key(shot), shot)
    keys = list(wanted)
    results = ctx.cached_map(
        NAMESPACE,
        THUMB_SIZE,  # the drawing code, pixelpipe/htmlreport.py, is in the code version
        functools.partial(thumbnail_chunk, THUMB_SIZE),
        keys,
        lambda key: key,
        keep=lambda uri: uri is not None,
        prepare=lambda key: (ctx.pixels(wanted[key].image), key[1]),
        largest_chunk=32,
    )
    for key, uri in zip(keys, results, strict=True):
        data.thumbnails[key] = uri if uri is not None else UNREADABLE
