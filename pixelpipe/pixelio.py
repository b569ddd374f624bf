"""Opening an image's bytes and reading its EXIF orientation: what every reader of pixels shares.

Below every package that reads pixels (it imports Pillow, and fsspec on demand, nothing of
pixelpipe): the dataset store, the format probes and the image properties all open pixels
and read orientations here, so they agree.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO

from PIL import Image

ORIENTATION_TAG = 0x0112
SWAPS = frozenset({5, 6, 7, 8})
"""EXIF orientations that swap width and height."""
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

Pixels = str | bytes | OSError
"""Where a worker reads an image: a local path, a URL (fsspec), the encoded bytes, or the
error the runner met reading them (raised again in the worker, so a file that cannot be
read fails as that image's failure, never as the stage's)."""


def is_url(location: str) -> bool:
    """True for ``s3://...``, ``https://...`` and other URLs; False for paths."""
    return bool(_URL.match(location))


def open_pixels(pixels: Pixels) -> BinaryIO:
    """A binary stream of an image's encoded bytes, for ``PIL.Image.open`` and hashing.

    Args:
        pixels: What :meth:`pixelpipe.StageContext.pixels` gave: a path, a URL read
            through fsspec (with the credentials and endpoint of the worker's
            environment), or the bytes.
    """
    if isinstance(pixels, OSError):
        raise pixels
    if isinstance(pixels, bytes):
        return io.BytesIO(pixels)
    if is_url(pixels):
        import fsspec

        opened: BinaryIO = fsspec.open(pixels, "rb").open()
        return opened
    return open(pixels, "rb")  # the caller closes it


def exif_orientation(image: Image.Image) -> int:
    """The image's EXIF orientation, 1..8; 1 when absent, out of range or unreadable."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # broken EXIF blocks: Pillow raises many kinds
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1
