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
    "MIN_MATCHES",
    "Features",
    "VerifySpec",
    "describe",
    "gray_thumbnail",
    "inliers",
    "pair_inliers",
    "verify_read",
]

ASPECT_TOLERANCE = 0.1
"""Aspect ratios further apart than this (in natural log) also get the squash hypothesis."""

FEW_KEYPOINTS = 50
"""An image with fewer ORB keypoints is too plain (flat, blurred) to verify: a caller decides
its pairs another way (the dedupe stage: by the hash alone, at a tight threshold)."""
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


def gray_thumbnail(image: Image.Image, side: int) -> U8:
    """The image in grayscale with its long side at ``side`` pixels, aspect kept.

    A JPEG not yet loaded is draft-decoded (the decoder downscales by up to 8).
    """
    width, height = image.size
    scale = side / max(width, height, 1)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    image.draft("L", size)
    gray = image.convert("L")
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.asarray(gray.resize(size, resample))


def describe(gray: U8, spec: VerifySpec) -> Features:
    """ORB keypoints and descriptors of a grayscale image."""
    orb = cv2.ORB_create(nfeatures=spec.keypoints, fastThreshold=5)  # type: ignore[attr-defined]
    found, descriptors = orb.detectAndCompute(gray, None)
    points = np.array([k.pt for k in found], dtype=np.float32).reshape(-1, 2)
    return Features(points, descriptors)


def inliers(a: Features, b: Features, spec: VerifySpec) -> int:
    """Matches of ``a`` in ``b`` that one affine transform explains (RANSAC, seeded)."""
    if a.descriptors is None or b.descriptors is None or min(a.count, b.count) < 3:
        return 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < spec.ratio * p[1].distance]
    if len(good) < 3:
        return 0
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
        return 0
    return int(mask.sum())


def pair_inliers(a: U8, b: U8, spec: VerifySpec, described: Described | None = None) -> int:
    """Inliers of the pair of grayscale thumbnails ``a`` and ``b``.

    Args:
        a: The first image (from :func:`gray_thumbnail`).
        b: The second.
        spec: The verification.
        described: ``(a's features, b's features)`` when already computed.
    """
    first, second = described or (describe(a, spec), describe(b, spec))
    best = inliers(first, second, spec)
    aspect_a = a.shape[1] / a.shape[0]
    aspect_b = b.shape[1] / b.shape[0]
    if abs(math.log(aspect_a / aspect_b)) > ASPECT_TOLERANCE:
        squashed = np.asarray(
            cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
        best = max(best, inliers(describe(squashed, spec), second, spec))
    return best


Verified = tuple[int, int, str | None]
"""One pair's result: ``(inliers, keypoints, error)``: ``keypoints`` is the fewer of the two
images' (below :data:`FEW_KEYPOINTS` the pair cannot be judged), ``error`` why an image
could not be read."""


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
        Per pair ``(inliers, keypoints, error)``: zeros and the reason when either image
        failed.
    """
    seen: dict[S, tuple[U8, Features] | str] = {}

    def load(source: S) -> tuple[U8, Features] | str:
        if source not in seen:
            try:
                with Image.open(io.BytesIO(read(source))) as image:
                    gray = gray_thumbnail(image, spec.side)
                seen[source] = (gray, describe(gray, spec))
            except Exception as exc:  # any unreadable image is reported, never a crash
                seen[source] = f"{type(exc).__name__}: {exc}"
        return seen[source]

    out: list[Verified] = []
    for first, second, turn in pairs:
        a, b = load(first), load(second)
        if isinstance(a, str) or isinstance(b, str):
            out.append((0, 0, a if isinstance(a, str) else str(b)))
            continue
        fewest = min(a[1].count, b[1].count)
        if turn:
            turned = np.ascontiguousarray(orient(a[0], turn))
            out.append((pair_inliers(turned, b[0], spec), fewest, None))
        else:
            out.append((pair_inliers(a[0], b[0], spec, (a[1], b[1])), fewest, None))
    return out
