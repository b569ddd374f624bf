"""Is this candidate pair the same picture? Geometric verification of local features.

A perceptual hash at a loose threshold finds the candidates, copies and look-alikes alike
(two different T-shirts photographed on one floor hash as close as a re-encoded copy).
This module decides each candidate with a check that tells them apart: ORB keypoints of
both images (grayscale, long side :attr:`VerifySpec.side` pixels), matched by descriptor
with Lowe's ratio test, then RANSAC for one affine transform that maps the points of one
image onto the other. A copy that was resized, re-encoded, turned gray, cropped, reframed
or marked with a watermark keeps hundreds of points that move together; a look-alike
keeps a few chance matches that no single transform explains. The figure is the number of
*inliers*: matched points within :attr:`VerifySpec.reprojection` pixels of where the
transform puts them.

Two colourful images whose aligned colours differ by more than
:data:`MAX_COLOUR_DIFFERENCE` on average are colour variants of one print, not copies
(:func:`colour_difference`; a grayscale image is never told apart by colour).

A copy found flipped or turned by the hash (``invariant``) is verified with the first image
turned the same way: ORB matches rotated points but not mirror images.

An affine transform covers scale, shift and crop, and a squashed copy (aspect changed
without cropping) too, but ORB descriptors themselves are not invariant to squashing: when
the two aspects differ by more than :data:`ASPECT_TOLERANCE`, the first image is also
described resized to the second's aspect, and the better of the two counts.

Deterministic: ORB and the matcher are, and RANSAC's generator is seeded for each pair.
Symmetric when callers order each pair the same way (the dedupe stage orders by sha256).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from pixelpipe.imaging.hashing import orient

__all__ = [
    "ASPECT_TOLERANCE",
    "FEW_KEYPOINTS",
    "GRAY_CHROMA",
    "MAX_COLOUR_DIFFERENCE",
    "MIN_MATCHES",
    "Features",
    "VerifySpec",
    "colour_difference",
    "describe",
    "gray",
    "inliers",
    "pair_inliers",
    "thumbnail",
    "verify_read",
]

ASPECT_TOLERANCE = 0.1
"""Aspect ratios further apart than this (in natural log) also get the squash hypothesis."""

FEW_KEYPOINTS = 50
"""An image with fewer ORB keypoints is too plain (flat, blurred) to verify: a caller decides
its pairs another way (the dedupe stage: by the hash alone, at a tight threshold)."""
GRAY_CHROMA = 3.0
"""Mean chroma (0-255 units) below which an image counts as gray: colour is not compared."""
MAX_COLOUR_DIFFERENCE = 20.0
"""Mean chroma difference of two aligned colourful images above which they are different
pictures (colour variants of one print; copies in docs/dedupe.md stay below 9)."""
MIN_MATCHES = 20
"""Inliers that make a pair the same picture (docs/dedupe.md: 0.1% of look-alike product
photos paired, 99% of crops, watermarks, resizes and re-encodes kept)."""

U8 = npt.NDArray[np.uint8]
S = TypeVar("S")


@dataclass(frozen=True)
class VerifySpec:
    """How candidate pairs are verified.

    Attributes:
        side: Long side, in pixels, images are described at.
        keypoints: Most ORB keypoints per image.
        ratio: Lowe's ratio: a match is kept when its descriptor distance is below this
            times the second-best one's.
        reprojection: RANSAC's inlier distance, in pixels at ``side``.
    """

    side: int = 256
    keypoints: int = 500
    ratio: float = 0.8
    reprojection: float = 3.0


@dataclass(frozen=True)
class Features:
    """ORB keypoints of one image.

    Attributes:
        points: ``(n, 2)`` float32 positions in pixels of the described image.
        descriptors: ``(n, 32)`` uint8 ORB descriptors (``None`` when there are none).
    """

    points: npt.NDArray[np.float32]
    descriptors: U8 | None

    @property
    def count(self) -> int:
        """Keypoints found."""
        return int(self.points.shape[0])


Described = tuple[Features, Features]
"""The features of both images of a pair."""


def thumbnail(image: Image.Image, side: int) -> U8:
    """The image in RGB with its long side at ``side`` pixels, aspect kept: ``(h, w, 3)``.

    A JPEG not yet loaded is draft-decoded (the decoder downscales by up to 8).
    """
    width, height = image.size
    scale = side / max(width, height, 1)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    image.draft("RGB", size)
    rgb = image.convert("RGB")
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.asarray(rgb.resize(size, resample))


def gray(rgb: U8) -> U8:
    """A thumbnail from :func:`thumbnail` in grayscale (ITU-R 601 luma, as Pillow's L)."""
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def describe(gray: U8, spec: VerifySpec) -> Features:
    """ORB keypoints and descriptors of a grayscale image."""
    orb = cv2.ORB_create(nfeatures=spec.keypoints, fastThreshold=5)  # type: ignore[attr-defined]
    found, descriptors = orb.detectAndCompute(gray, None)
    points = np.array([k.pt for k in found], dtype=np.float32).reshape(-1, 2)
    return Features(points, descriptors)


Transform = npt.NDArray[np.float64]
"""A 2x3 affine transform from the first image's pixels to the second's."""


def inliers(a: Features, b: Features, spec: VerifySpec) -> tuple[int, Transform | None]:
    """Matches of ``a`` in ``b`` one affine transform explains, and that transform.

    RANSAC's generator is seeded for each call, so the result is deterministic.
    """
    if a.descriptors is None or b.descriptors is None or min(a.count, b.count) < 3:
        return 0, None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < spec.ratio * p[1].distance]
    if len(good) < 3:
        return 0, None
    source = a.points[[m.queryIdx for m in good]]
    target = b.points[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)
    transform, mask = cv2.estimateAffine2D(
        source,
        target,
        ransacReprojThreshold=spec.reprojection,
        maxIters=2000,
        confidence=0.99,
        refineIters=10,
    )
    if transform is None or mask is None:
        return 0, None
    return int(mask.sum()), np.asarray(transform, dtype=np.float64)


def _chroma(rgb: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Two opponent colour channels (red-green, yellow-blue), in 0-255 units."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.stack([(r - g) / 2, (r + g - 2 * b) / 4], axis=-1)


def colour_difference(a: U8, b: U8, transform: Transform) -> float | None:
    """Mean chroma difference of ``a`` moved onto ``b`` by ``transform``, over their overlap.

    ``None`` when either image is (nearly) gray, so a grayscale copy is never told apart
    by colour, or when they overlap on less than a tenth of ``b``.
    """
    height, width = b.shape[:2]
    moved = cv2.warpAffine(a.astype(np.float32), transform, (width, height))
    cover = cv2.warpAffine(np.ones(a.shape[:2], np.float32), transform, (width, height))
    inside = cover > 0.99
    if inside.sum() < 0.1 * height * width:
        return None
    first, second = _chroma(np.asarray(moved))[inside], _chroma(b.astype(np.float32))[inside]
    colourful = min(
        float(np.linalg.norm(first, axis=1).mean()), float(np.linalg.norm(second, axis=1).mean())
    )
    if colourful < GRAY_CHROMA:
        return None
    return float(np.linalg.norm(first - second, axis=1).mean())


def pair_inliers(
    a: U8, b: U8, spec: VerifySpec, described: Described | None = None
) -> tuple[int, float | None]:
    """Inliers of the pair of RGB thumbnails ``a`` and ``b``, and their colour difference.

    Args:
        a: The first image (from :func:`thumbnail`).
        b: The second.
        spec: The verification.
        described: ``(a's features, b's features)`` when already computed.

    Returns:
        The inliers of the better hypothesis (as it is, or squashed to ``b``'s aspect when
        the aspects differ) and :func:`colour_difference` under its transform.
    """
    first, second = described or (describe(gray(a), spec), describe(gray(b), spec))
    best, transform = inliers(first, second, spec)
    moved = a
    aspect_a = a.shape[1] / a.shape[0]
    aspect_b = b.shape[1] / b.shape[0]
    if abs(math.log(aspect_a / aspect_b)) > ASPECT_TOLERANCE:
        squashed = np.asarray(
            cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
        count, squash = inliers(describe(gray(squashed), spec), second, spec)
        if count > best:
            best, transform, moved = count, squash, squashed
    colour = None if transform is None else colour_difference(moved, b, transform)
    return best, colour


Verified = tuple[int, int, float, str | None]
"""One pair's result: ``(inliers, keypoints, colour, error)``: ``keypoints`` is the fewer of
the two images' (below :data:`FEW_KEYPOINTS` the pair cannot be judged), ``colour`` their
:func:`colour_difference` (-1 when not measured), ``error`` why an image could not be
read."""


def verify_read(
    spec: VerifySpec, read: Callable[[S], bytes], pairs: Sequence[tuple[S, S, int]]
) -> list[Verified]:
    """Executor work item: the inliers of each pair of sources.

    Each distinct source of the chunk is read, decoded and described once (pairs sharing
    an image should share a chunk: sort them).

    Args:
        spec: The verification.
        read: Gives the encoded bytes of a source (a path, a URL, the bytes themselves).
        pairs: ``(first, second, orientation)``: two sources (hashable) and the index in
            :data:`~pixelpipe.imaging.hashing.ORIENTATIONS` of the flip or turn that maps
            the first onto the second (0: none; ORB does not match mirror images).

    Returns:
        Per pair ``(inliers, keypoints, colour, error)``: zeros, -1 and the reason when
        either image failed.
    """
    seen: dict[S, tuple[U8, Features] | str] = {}

    def load(source: S) -> tuple[U8, Features] | str:
        if source not in seen:
            try:
                with Image.open(io.BytesIO(read(source))) as image:
                    rgb = thumbnail(image, spec.side)
                seen[source] = (rgb, describe(gray(rgb), spec))
            except Exception as exc:  # any unreadable image is reported, never a crash
                seen[source] = f"{type(exc).__name__}: {exc}"
        return seen[source]

    out: list[Verified] = []
    for first, second, turn in pairs:
        a, b = load(first), load(second)
        if isinstance(a, str) or isinstance(b, str):
            out.append((0, 0, -1.0, a if isinstance(a, str) else str(b)))
            continue
        fewest = min(a[1].count, b[1].count)
        if turn:
            turned = np.ascontiguousarray(
                np.moveaxis(orient(np.moveaxis(a[0], -1, 0), turn), 0, -1)
            )
            count, colour = pair_inliers(turned, b[0], spec)
        else:
            count, colour = pair_inliers(a[0], b[0], spec, (a[1], b[1]))
        out.append((count, fewest, -1.0 if colour is None else colour, None))
    return out
