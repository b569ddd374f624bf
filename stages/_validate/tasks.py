"""What a guarded process runs: an image check, or a thumbnail for the report.

:func:`run_task` is the one function the stage's guarded processes import
(``stages._validate.tasks:run_task``); thumbnails are drawn here, checks in
:mod:`stages._validate.images`.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageFile

from pixelpipe import Pixels, read_pixels
from pixelpipe.htmlreport import thumbnail
from stages._validate.findings import Box
from stages._validate.images import ImageConfig, ImageReport, ImageTask, check_image, gray8


@dataclass(frozen=True)
class ThumbTask:
    """One thumbnail to draw for the report.

    Attributes:
        sha256: The manifest's sha256 of the image (what the stage caches the drawing by).
        image: The manifest's image path.
        boxes: Boxes ``[x, y, w, h]`` to draw, with their captions.
        pixels: Where the worker reads the image, given just before the task is sent.
        unreadable: Why the stage could not read the image for the worker, when it could not.
    """

    sha256: str
    image: str
    boxes: tuple[tuple[Box, str], ...] = ()
    pixels: Pixels | None = None
    unreadable: str = ""


def make_thumbnail(size: int, max_pixels: int, task: ThumbTask) -> str:
    """A thumbnail data URI for the report (runs in a guarded worker).

    Truncated images are drawn as far as they decode, so a person sees what is missing;
    16-bit and float images are scaled to 8 bits first (not clipped to white).

    Raises:
        OSError: When the image cannot be read (a failure of this run, not of the image).
    """
    if task.unreadable or task.pixels is None:
        raise OSError(task.unreadable or f"nothing to read for {task.image}")
    Image.MAX_IMAGE_PIXELS = max_pixels
    boxes = [(b, label) for b, label in task.boxes if all(math.isfinite(v) for v in b)]
    data = read_pixels(task.pixels)  # whole, as for the check
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with warnings.catch_warnings(), io.BytesIO(data) as stream:
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _draw(size, stream, boxes)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def _draw(size: int, stream: BinaryIO, boxes: list[tuple[Box, str]]) -> str:
    try:
        with Image.open(stream) as image:
            deep = image.mode in ("I", "F") or image.mode.startswith("I;16")
            if deep:
                image.load()
                eight = gray8(image)
    except Exception:  # undecodable: the report helper draws its placeholder
        deep = False
    if not deep:
        stream.seek(0)
        return thumbnail(stream, size, boxes)
    buffer = io.BytesIO()
    eight.save(buffer, format="PNG")
    buffer.seek(0)
    return thumbnail(buffer, size, boxes)


def run_task(config: ImageConfig, task: ImageTask | ThumbTask) -> ImageReport | str:
    """A worker's entry point: check an image, or draw a report thumbnail."""
    if isinstance(task, ThumbTask):
        return make_thumbnail(config.thumbnail_size, config.max_pixels, task)
    return check_image(config, task)
