"""Image properties for drift checks: size, exposure, colour, sharpness, JPEG quality.

Each image gives ten floats (:data:`PROPERTIES`), computed once per image (the ``drift``
stage caches them by sha256):

- ``width``, ``height``: the size a viewer shows, after the EXIF orientation (a photo
  stored 4000 x 3000 with orientation 6 is 3000 wide); ``aspect`` = ``width / height``.
- The rest is measured on a thumbnail whose longest side is at most :data:`THUMBNAIL` (256)
  pixels: a JPEG is decoded at 1/2, 1/4 or 1/8 scale by the decoder itself
  (:meth:`PIL.Image.Image.draft`, the smallest scale that still covers the thumbnail), then
  every image larger than the thumbnail is shrunk to it by area averaging (Pillow's
  ``BOX`` filter); smaller images are used as they are. The thumbnail is RGB, in [0, 1]
  (16-bit images, Pillow modes ``I;16`` and ``I``, are scaled from 0-65535; transparency
  is ignored). Luma is ITU-R BT.601, ``0.299 R + 0.587 G + 0.114 B`` (the weights of
  Pillow's ``L`` mode), in floating point.
- ``brightness``: mean luma, in [0, 1].
- ``rms_contrast``: standard deviation of luma (population), in [0, 1].
- ``mean_r``, ``mean_g``, ``mean_b``: mean of each channel, in [0, 1].
- ``blur``: sharpness, the variance of the Laplacian of luma divided by the variance of
  luma; higher is sharper. The Laplacian is OpenCV's (``cv2.Laplacian``, 3 x 3 aperture,
  reflected borders), taken after a Gaussian of sigma :data:`BLUR_SIGMA` (1 pixel,
  ``cv2.GaussianBlur``): a Laplacian of Gaussian, as focus measures often use. Dividing by
  the luma variance makes it independent of exposure and contrast: multiplying every
  pixel by a factor (darkening) multiplies both variances by its square, so ``blur``
  measures edges relative to the image's own contrast. The Gaussian keeps it so when the
  darkened image is saved again as a JPEG: the encoder's noise does not shrink with the
  picture, and the bare Laplacian, which sees mostly that pixel-level noise, read darkened
  and re-encoded photos as 20 % sharper (median over 100 real photos; 1 % with the
  Gaussian), while a blur of 2 pixels at full size still lowers the value 2.5 times.
  Measured at the thumbnail's scale, so images of different sizes are comparable. NaN for
  a flat image (no luma variance).
- ``jpeg_quality``: an estimate of the IJG quality setting (1-100) the JPEG was saved at,
  from its luminance quantization table (Pillow's ``image.quantization``, natural order):
  the standard IJG luminance table (ITU-T T.81 Annex K) is scaled for each quality as
  libjpeg's ``jpeg_set_quality`` does (baseline, values 1-255), and the quality whose
  table is nearest (sum of absolute differences; the lower quality on a tie) is the
  estimate, as ImageMagick's ``identify`` matches a JPEG's tables against the IJG ones
  scaled for each quality (it compares their sums). Encoders with tables of their own
  (cameras, Photoshop) get the nearest IJG quality. NaN for any other format.

EXIF orientation turns the picture by 90 degrees or mirrors it, which changes none of the
thumbnail's values (the Laplacian's 3 x 3 kernel is symmetric), so the pixels are not
turned. :func:`read_properties` opens a path, a URL (through fsspec) or the bytes with
:func:`pixelpipe.pixelio.open_pixels`, as every stage does;
:func:`properties_chunk` is the picklable chunk function for the executor.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from pixelpipe.pixelio import SWAPS, exif_orientation, open_pixels

PROPERTIES = (
    "width",
    "height",
    "aspect",
    "brightness",
    "rms_contrast",
    "mean_r",
    "mean_g",
    "mean_b",
    "blur",
    "jpeg_quality",
)
"""The names of the properties, in the order :func:`image_properties` gives them."""

THUMBNAIL = 256
"""Longest side, in pixels, of the thumbnail the pixel statistics are measured on."""
BLUR_SIGMA = 1.0
"""The Gaussian (pixels of the thumbnail) smoothing luma before the Laplacian of ``blur``."""

_LUMA = np.array([0.299, 0.587, 0.114])
_FLAT = 1e-12  # luma variance (in [0, 1] units) at or below which an image is flat
_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")

# The IJG (ITU-T T.81 Annex K) luminance quantization table, natural (row-major) order.
IJG_LUMINANCE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
).reshape(64)


def _ijg_tables() -> npt.NDArray[np.int64]:
    """``(100, 64)``: the luminance table libjpeg writes for quality 1 to 100."""
    quality = np.arange(1, 101, dtype=np.int64)
    scale = np.where(quality < 50, 5000 // quality, 200 - 2 * quality)
    return np.clip((IJG_LUMINANCE[None, :] * scale[:, None] + 50) // 100, 1, 255)


_TABLES = _ijg_tables()


def jpeg_quality(image: Image.Image) -> float:
    """Estimate the IJG quality (1-100) a JPEG was saved at, from its quantization table.

    Args:
        image: An opened image (the tables are read when it is opened, before decoding).

    Returns:
        The quality whose standard luminance table is nearest to the image's, as a
        float; NaN when the image is not a JPEG (or has no table).
    """
    tables = getattr(image, "quantization", None)
    if not isinstance(tables, dict) or not tables:
        return math.nan
    table = np.asarray(tables.get(0, tables[min(tables)]), dtype=np.int64).reshape(-1)
    if table.size != 64:
        return math.nan
    distance = np.abs(_TABLES - table[None, :]).sum(axis=1)
    return float(np.argmin(distance) + 1)  # argmin: the first, the lowest quality, on a tie


def _thumbnail_size(width: int, height: int) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= THUMBNAIL:
        return width, height
    ratio = THUMBNAIL / longest
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def thumbnail(image: Image.Image) -> npt.NDArray[np.float64]:
    """The RGB thumbnail the pixel statistics are measured on (see the module docstring).

    Args:
        image: An opened image; a JPEG not decoded yet is decoded at reduced scale.

    Returns:
        ``(height, width, 3)`` float64 in [0, 1].
    """
    size = _thumbnail_size(*image.size)
    box = None
    if size != image.size:
        drafted = image.draft("RGB", size)  # JPEG only; other formats return None
        if drafted is not None:
            box = drafted[1]
    if image.mode in _SIXTEEN_BIT:
        grey = image.convert("F").resize(size, Image.Resampling.BOX, box=box)
        values = np.asarray(grey, dtype=np.float64) / 65535.0
        return np.repeat(np.clip(values, 0.0, 1.0)[:, :, None], 3, axis=2)
    if image.mode == "F":
        grey = image.resize(size, Image.Resampling.BOX, box=box)
        values = np.asarray(grey, dtype=np.float64) / 255.0
        return np.repeat(np.clip(values, 0.0, 1.0)[:, :, None], 3, axis=2)
    rgb = image.convert("RGB")
    if rgb.size != size or box is not None:
        rgb = rgb.resize(size, Image.Resampling.BOX, box=box)
    return np.asarray(rgb, dtype=np.float64) / 255.0


def sharpness(luma: npt.NDArray[np.float64]) -> float:
    """``blur``: variance of the Laplacian of Gaussian of ``luma`` over the variance of ``luma``.

    Args:
        luma: ``(height, width)`` luma.

    Returns:
        The ratio (higher is sharper); NaN when ``luma`` is flat.
    """
    import cv2

    variance = float(luma.var())
    if variance <= _FLAT:
        return math.nan
    smooth = cv2.GaussianBlur(np.ascontiguousarray(luma), (0, 0), BLUR_SIGMA)
    return float(cv2.Laplacian(smooth, cv2.CV_64F).var()) / variance


def image_properties(image: Image.Image, jpeg_quality: float) -> dict[str, float]:
    """The properties of an opened image (see the module docstring for each definition).

    Args:
        image: The image, opened and not yet decoded (a JPEG then decodes at reduced
            scale); its size is the stored size, its EXIF orientation is read from it.
        jpeg_quality: Its JPEG quality estimate (:func:`jpeg_quality`), NaN for others.

    Returns:
        ``{name: value}`` for every name of :data:`PROPERTIES`, in that order.
    """
    import cv2

    width, height = image.size
    if exif_orientation(image) in SWAPS:
        width, height = height, width
    pixels = thumbnail(image)
    luma = np.asarray(cv2.transform(pixels, _LUMA[None, :]), dtype=np.float64)  # (h, w)
    means = cv2.mean(pixels)  # per channel, in double precision
    return {
        "width": float(width),
        "height": float(height),
        "aspect": width / height if height else math.nan,
        "brightness": float(luma.mean()),
        "rms_contrast": float(luma.std()),
        "mean_r": float(means[0]),
        "mean_g": float(means[1]),
        "mean_b": float(means[2]),
        "blur": sharpness(luma),
        "jpeg_quality": float(jpeg_quality),
    }


def read_properties(pixels: str | bytes | OSError) -> dict[str, float]:
    """Open an image and compute its properties.

    Args:
        pixels: A local path, a URL (read through fsspec), the encoded bytes, or the
            error met reading them (raised again here), as ``StageContext.pixels`` gives.

    Returns:
        :func:`image_properties` of the image, with its JPEG quality estimate.

    Raises:
        OSError: When the bytes cannot be read, or Pillow cannot identify or decode them.
        ValueError: When the image is empty, over Pillow's pixel limit
            (``Image.MAX_IMAGE_PIXELS``) or fails to decode in any other way.
    """
    with open_pixels(pixels) as stream, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # broken EXIF and the like: the values still come
        try:
            with Image.open(stream) as image:
                width, height = image.size
                if width <= 0 or height <= 0:
                    raise ValueError(f"the image is {width}x{height} pixels")
                limit = Image.MAX_IMAGE_PIXELS
                if limit is not None and width * height > limit:
                    raise ValueError(f"{width}x{height} pixels is over the limit of {limit}")
                return image_properties(image, jpeg_quality(image))
        except UnidentifiedImageError:  # its message names the stream, a path
            raise UnidentifiedImageError("not an image file Pillow can identify") from None
        except (OSError, ValueError, MemoryError):
            raise
        except Exception as exc:  # Pillow raises many kinds on hostile files
            raise ValueError(f"{type(exc).__name__}: {exc}") from exc


def _reason(exc: BaseException) -> str:
    """Why an image has no properties, without the file's path."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{type(exc).__name__}: {detail}"


def properties_chunk(
    items: list[str | bytes | OSError],
) -> list[tuple[dict[str, float] | None, str | None]]:
    """Executor work item: the properties of each image, or why it has none.

    Args:
        items: What :func:`read_properties` takes, one per image.

    Returns:
        Per image ``(properties, None)`` or ``(None, message)``; a bad image never raises.
    """
    results: list[tuple[dict[str, float] | None, str | None]] = []
    for pixels in items:
        try:
            results.append((read_properties(pixels), None))
        except (OSError, ValueError) as exc:
            results.append((None, _reason(exc)))
    return results
