"""Image rules, run in a guarded worker: open, check the header, decode once, measure.

Each image is opened once and decoded once (JPEGs at a reduced DCT scale when the
measures need no more: every byte of the entropy-coded data is still decoded, so a
truncated file still fails). Only an image whose colour mode is fixed is decoded a second
time, at full resolution, to convert it.

A worker reads an image from what the stage gives it (:data:`pixelpipe.Pixels`: the bytes,
a URL, or a path when workers share the project's disk), whole, and writes nothing: a converted
copy comes back as bytes in the report, and the stage stores it. A report that depends on
more than the image's bytes, its extension and the rules (the file could not be read, or
memory ran out) is marked ``transient`` so the stage does not cache it.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from pixelpipe import Pixels, read_pixels
from stages._validate.findings import Finding
from stages._validate.rules import (
    AspectRatio,
    Blank,
    Blur,
    ColorMode,
    Decode,
    Exposure,
    Extension,
    MaxPixels,
    MaxSize,
    MinSize,
    Rule,
)

PILLOW_LIMIT = 89_478_485
"""Pixels beyond which an image is never decoded when the rule set has no ``max_pixels``."""
_SAME_FORMAT = {"MPO": "JPEG", "DIB": "BMP", "CUR": "ICO"}
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageTask:
    """One image to check.

    Attributes:
        image: The manifest's image path (its extension is the declared format).
        sha256: The manifest's sha256 of the image (what the stage caches the report by).
        pixels: Where the worker reads the image, given just before the task is sent.
        unreadable: Why the stage could not read the image for the worker (a finding
            message), when it could not.
    """

    image: str
    sha256: str = ""
    pixels: Pixels | None = None
    unreadable: str = ""

    @property
    def suffix(self) -> str:
        """The manifest path's extension, lower-case (``.jpg``)."""
        return PurePosixPath(self.image).suffix.lower()


@dataclass(frozen=True)
class ImageConfig:
    """What every task of a worker needs (sent once to each worker).

    Attributes:
        rules: The rule set's image rules by id.
        thumbnail_size: Longest side of report thumbnails.
    """

    rules: dict[str, Rule]
    thumbnail_size: int = 192

    @property
    def max_pixels(self) -> int:
        """The pixel limit: the ``max_pixels`` rule's, else Pillow's default."""
        rule = self.rules.get(MaxPixels.ID)
        return rule.max_pixels if isinstance(rule, MaxPixels) else PILLOW_LIMIT


@dataclass
class ImageReport:
    """The result of checking one image.

    Attributes:
        width: Width read from the file, or ``None`` when it could not be opened.
        height: Height read from the file, or ``None``.
        format: The format Pillow found (``JPEG``, ``PNG``...).
        mode: The colour mode of the file.
        decoded: True when the first frame decoded fully.
        findings: The image rules' findings.
        stats: Measures of the decoded image: ``std``, ``mean``, ``blur`` (rounded).
        converted: ``(sha256, extension)`` of the colour-converted copy, if one was made.
        encoded: The converted copy's bytes, on their way from the worker to the stage
            (which stores them and drops them before the report is cached).
        transient: True when the report depends on more than the image's content and the
            rules (the file could not be read, memory ran out): never cached.
    """

    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None
    decoded: bool = False
    findings: list[Finding] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    converted: tuple[str, str] | None = None
    encoded: bytes | None = None
    transient: bool = False


def _expected_format(suffix: str) -> str | None:
    Image.init()
    return Image.registered_extensions().get(suffix)


def _same_format(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and _SAME_FORMAT.get(a, a) == _SAME_FORMAT.get(b, b)


def _scaled_uint8(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """8-bit gray levels from 16-bit, 32-bit or float samples."""
    data = values.astype(np.float64)
    top = float(data.max()) if data.size else 0.0
    if values.dtype.kind == "f" and top <= 1.0:
        full = 1.0
    else:
        full = 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    return np.asarray(np.clip(np.rint(data * (255.0 / full)), 0, 255), dtype=np.uint8)


def gray8(image: Image.Image) -> Image.Image:
    """The image as 8-bit gray levels (16-bit and float samples scaled, alpha ignored)."""
    if image.mode == "L":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return Image.fromarray(_scaled_uint8(np.asarray(image)), mode="L")
    try:
        return image.convert("L")
    except ValueError:  # LAB, HSV: the first band is the lightness or the hue-free value
        return image.getchannel(0).convert("L")


def laplacian_variance(gray: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian of an 8-bit gray image (0 when under 3x3).

    Computed in integers (exact sums), so the value is the same on every machine.
    """
    if gray.width < 3 or gray.height < 3:
        return 0.0
    a = np.asarray(gray, dtype=np.int16)
    lap = (a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4 * a[1:-1, 1:-1]).astype(
        np.int32
    )
    n = lap.size
    total = int(lap.sum(dtype=np.int64))
    squares = int(np.einsum("ij,ij->", lap, lap, dtype=np.int64))
    return (n * squares - total * total) / (n * n)


def gray_mean_std(gray: Image.Image) -> tuple[float, float]:
    """Mean and standard deviation of an 8-bit gray image, from its exact histogram."""
    counts = gray.histogram()
    n = sum(counts)
    if n == 0:
        return 0.0, 0.0
    total = sum(level * c for level, c in enumerate(counts))
    squares = sum(level * level * c for level, c in enumerate(counts))
    return total / n, math.sqrt(max(0, n * squares - total * total)) / n


def analysis_size(width: int, height: int, size: int) -> tuple[int, int]:
    """The size images are measured at: shrunk by the whole factor ``longer // size``."""
    factor = max(1, max(width, height) // size)
    return max(1, width // factor), max(1, height // factor)


def convert_mode(image: Image.Image, rule: ColorMode) -> Image.Image:
    """The image converted to RGB, or to L for gray sources when L is allowed."""
    background = rule.background
    if image.mode in _GRAY_MODES and "L" in rule.allowed:
        if image.mode in ("LA", "La"):
            level = round(0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2])
            base = Image.new("LA", image.size, (level, 255))
            return Image.alpha_composite(base, image.convert("LA")).convert("L")
        return gray8(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return gray8(image).convert("RGB")
    has_alpha = image.mode in _ALPHA_MODES or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    if has_alpha:
        base = Image.new("RGBA", image.size, (*background, 255))
        return Image.alpha_composite(base, image.convert("RGBA")).convert("RGB")
    if image.mode in ("LAB", "HSV"):
        return image.convert("RGB") if image.mode == "HSV" else gray8(image).convert("RGB")
    return image.convert("RGB")


def _exif_for_save(image: Image.Image) -> Image.Exif | None:
    """The EXIF block to carry over (its orientation matters to every viewer)."""
    try:
        exif = image.getexif()
    except Exception:  # broken EXIF: keep only what can be read, which is nothing
        return None
    return exif if len(exif) else None


def encode_like(converted: Image.Image, source: Image.Image, suffix: str) -> bytes | str:
    """Encode ``converted`` in the format ``suffix`` names; a reason string when impossible.

    JPEG at quality 95 without chroma subsampling, lossless WebP, default PNG/TIFF/BMP;
    the source's EXIF (orientation) is carried over when the format holds it.
    """
    fmt = _expected_format(suffix)
    fmt = _SAME_FORMAT.get(fmt, fmt) if fmt else None
    if fmt is None:
        return f"the extension '{suffix}' names no format Pillow can write"
    if fmt == "GIF":
        return "GIF stores palette images only"
    options: dict[str, Any] = {}
    if fmt == "JPEG":
        options = {"quality": 95, "subsampling": 0, "optimize": False, "progressive": False}
    elif fmt == "WEBP":
        options = {"lossless": True, "method": 4}
    # A TIFF's "EXIF" is its own directory (compression, strips...): carry only the
    # orientation over to a TIFF.
    exif = _exif_for_save(source) if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else None
    attempts: list[dict[str, Any]] = [{"exif": exif}] if exif is not None and fmt != "TIFF" else []
    if exif is not None and _EXIF_ORIENTATION in exif:
        only = Image.Exif()
        only[_EXIF_ORIENTATION] = exif[_EXIF_ORIENTATION]
        attempts.append({"exif": only})
    attempts.append({})
    # Encoder settings the source carried (TIFF compression, transparency...) do not
    # apply to the converted pixels.
    converted.info = {}
    error = ""
    for extra in attempts:
        buffer = io.BytesIO()
        try:
            converted.save(buffer, format=fmt, **options, **extra)
        except MemoryError:
            raise
        except Exception as exc:  # a writer that refuses this image or this EXIF
            error = f"{type(exc).__name__}: {exc}"
            continue
        return buffer.getvalue()
    return f"cannot write {fmt}: {error}"


class _Checker:
    """Runs the image rules on one image, collecting findings."""

    def __init__(self, config: ImageConfig, task: ImageTask) -> None:
        self.rules = config.rules
        self.task = task
        self.report = ImageReport()
        self.fetched: bytes | None = None

    def rule(self, rule_type: type[Rule]) -> Any:
        return self.rules.get(rule_type.ID)

    def add(self, rule: Rule, message: str, severity: str | None = None) -> None:
        sev: Any = severity or rule.severity
        self.report.findings.append(Finding(rule.ID, sev, message))

    def broken(self, message: str) -> None:
        rule = self.rule(Decode)
        if rule is not None:
            self.add(rule, message)

    def failure(self, exc: BaseException) -> str:
        """``Type: message`` of an exception; memory running out makes the report transient."""
        if isinstance(exc, MemoryError):
            self.report.transient = True
        return f"{type(exc).__name__}: {exc}"

    def source(self) -> BinaryIO:
        """A new stream of the image's bytes, read whole once.

        A path, a URL and the bytes themselves give the decoders the same stream, so a
        report never depends on where the worker runs (Pillow's errors on a file and on
        a buffer differ in places).
        """
        if self.fetched is None:
            if self.task.pixels is None:
                raise FileNotFoundError(self.task.image)
            self.fetched = read_pixels(self.task.pixels)
        return io.BytesIO(self.fetched)

    def run(self) -> ImageReport:
        limit_rule: MaxPixels | None = self.rule(MaxPixels)
        limit = limit_rule.max_pixels if limit_rule else PILLOW_LIMIT
        ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail here
        with warnings.catch_warnings():
            # Pillow's warnings (EXIF, APNG, palettes) are not findings; a bomb warning
            # is an error, so nothing over the limit is ever decoded.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # The header is read without Pillow's own size check, so the report can
            # name the size; the size is checked here before anything is decoded.
            if self.task.unreadable:
                self.unreadable(self.task.unreadable)
                return self.report
            try:
                stream = self.source()
            except FileNotFoundError:
                self.unreadable(f"file not found: {self.task.image}")
                return self.report
            except Exception as exc:  # a file system or network failure, not the image's
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else None
                self.unreadable(f"cannot read the file: {reason or self.failure(exc)}")
                return self.report
            with stream:
                Image.MAX_IMAGE_PIXELS = None
                image = self.open(stream, limit_rule)
                Image.MAX_IMAGE_PIXELS = limit
                if image is None:
                    return self.report
                with image:
                    self.check_header(image, limit_rule, limit)
        return self.report

    def unreadable(self, message: str) -> None:
        """The bytes could not be read: a finding that a later run may not repeat."""
        self.broken(message)
        self.report.transient = True

    def open(self, stream: BinaryIO, limit_rule: MaxPixels | None) -> ImageFile.ImageFile | None:
        try:
            return Image.open(stream)
        except UnidentifiedImageError:
            self.broken("not an image file Pillow can identify")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            self.over_limit(limit_rule, str(exc))
        except Exception as exc:  # any failure to read a header is a broken file
            self.broken(f"cannot open: {self.failure(exc)}")
        return None

    def over_limit(self, rule: MaxPixels | None, message: str) -> None:
        if rule is not None:
            self.add(rule, message + "; not decoded")
        else:
            self.broken(message + " (Pillow's decompression-bomb limit); not decoded")

    def check_header(
        self, image: ImageFile.ImageFile, limit_rule: MaxPixels | None, limit: int
    ) -> None:
        report = self.report
        width, height = image.size
        report.width, report.height = width, height
        report.format, report.mode = image.format, image.mode
        if width * height > limit:
            self.over_limit(
                limit_rule, f"{width}x{height} = {width * height:,} pixels, over {limit:,}"
            )
            return
        if width <= 0 or height <= 0:
            self.broken(f"the header says {width}x{height}")
            return
        self.check_extension(image.format)
        self.check_geometry(width, height)
        if not self.decode(image):
            return
        self.check_mode(image)

    def check_extension(self, fmt: str | None) -> None:
        rule = self.rule(Extension)
        if rule is None:
            return
        suffix = self.task.suffix
        expected = _expected_format(suffix)
        if not _same_format(expected, fmt):
            named = f"'{suffix}' names {expected}" if expected else f"'{suffix}' names no format"
            self.add(rule, f"the file is {fmt} but its extension {named}")

    def check_geometry(self, width: int, height: int) -> None:
        small: MinSize | None = self.rule(MinSize)
        if small and (width < small.min_width or height < small.min_height):
            self.add(
                small, f"{width}x{height} is smaller than {small.min_width}x{small.min_height}"
            )
        large: MaxSize | None = self.rule(MaxSize)
        if large and (width > large.max_width or height > large.max_height):
            self.add(large, f"{width}x{height} is larger than {large.max_width}x{large.max_height}")
        ratio_rule: AspectRatio | None = self.rule(AspectRatio)
        if ratio_rule and min(width, height) > 0:
            ratio = max(width, height) / min(width, height)
            if ratio > ratio_rule.max_ratio:
                self.add(
                    ratio_rule,
                    f"{width}x{height} has aspect ratio {ratio:.2f}, over {ratio_rule.max_ratio:g}",
                )

    def decode(self, image: ImageFile.ImageFile) -> bool:
        blur: Blur | None = self.rule(Blur)
        width, height = image.size
        target = analysis_size(width, height, blur.size if blur else 512)
        try:
            if image.format in ("JPEG", "MPO"):
                image.draft(None, target)
            image.load()
        except Exception as exc:  # truncated, corrupt, unsupported: all mean "does not decode"
            self.broken(f"does not decode: {self.failure(exc)}")
            return False
        self.report.decoded = True
        try:
            self.measure(image, target)
        except Exception as exc:  # a mode nothing can measure: report, never crash
            self.broken(f"cannot measure pixels: {self.failure(exc)}")
        return True

    def measure(self, image: Image.Image, target: tuple[int, int]) -> None:
        gray = gray8(image)
        if gray.size != target:
            gray = gray.resize(target, Image.Resampling.BOX)
        mean, std = (round(v, 3) for v in gray_mean_std(gray))
        sharpness = round(laplacian_variance(gray), 3)
        self.report.stats = {"std": std, "mean": mean, "blur": sharpness}
        blank: Blank | None = self.rule(Blank)
        if blank and std < blank.min_std:
            self.add(blank, f"near-blank: gray-level spread {std:.2f} is under {blank.min_std:g}")
            return  # a blank image is neither blurred nor badly exposed: it is blank
        blur: Blur | None = self.rule(Blur)
        if blur and min(target) >= 3 and sharpness < blur.min_variance:
            self.add(
                blur,
                f"blurred: Laplacian variance {sharpness:.1f} is under {blur.min_variance:g} "
                f"(measured at {target[0]}x{target[1]})",
            )
        exposure: Exposure | None = self.rule(Exposure)
        if exposure and mean < exposure.min_mean:
            self.add(
                exposure, f"too dark: mean gray level {mean:.1f} is under {exposure.min_mean:g}"
            )
        elif exposure and mean > exposure.max_mean:
            self.add(
                exposure, f"too bright: mean gray level {mean:.1f} is over {exposure.max_mean:g}"
            )

    def check_mode(self, image: ImageFile.ImageFile) -> None:
        rule: ColorMode | None = self.rule(ColorMode)
        mode = self.report.mode or image.mode
        if rule is None or mode in rule.allowed:
            return
        what = f"colour mode {mode} is not one of {', '.join(rule.allowed)}"
        if rule.severity != "fix":
            self.add(rule, what)
            return
        suffix = self.task.suffix
        try:
            with self.source() as stream, Image.open(stream) as full:
                full.load()
                converted = convert_mode(full, rule)
                encoded = encode_like(converted, full, suffix)
        except Exception as exc:  # the fix failed: keep the image, say why
            self.add(rule, f"{what}; not converted: {self.failure(exc)}", "warn")
            return
        if isinstance(encoded, str):
            self.add(rule, f"{what}; not converted: {encoded}", "warn")
            return
        self.report.encoded = encoded
        self.report.converted = (hashlib.sha256(encoded).hexdigest(), suffix)
        self.add(rule, f"colour mode {mode} converted to {converted.mode}")


def check_image(config: ImageConfig, task: ImageTask) -> ImageReport:
    """Apply the image rules of ``config`` to one image (runs in a guarded worker)."""
    return _Checker(config, task).run()
