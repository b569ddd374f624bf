"""Perceptual image hashes: imagehash's algorithms, computed fast and in batches.

pHash (default), dHash, aHash and wHash follow :mod:`imagehash` step for step (grayscale,
Lanczos resize, then a DCT, differences, a mean or a Haar wavelet), so a hash here is the
hash imagehash gives for the same small image. Three things make it fast:

- **Draft decoding.** A JPEG is decoded straight to grayscale at 1/2, 1/4 or 1/8 scale
  (:meth:`PIL.Image.Image.draft`), the smallest scale still at least as large as the hash
  input, instead of at full size. The resize then uses the exact box the draft covers, so
  the geometry matches a full-size decode; what differs is only that the decoder averaged
  8x8 blocks first. With ``draft=False`` images are decoded as imagehash does, and hashes
  equal imagehash's bit for bit.
- **Batches.** Many small images are stacked and hashed with one numpy/scipy call (the DCT,
  the medians, the wavelets), so per-image Python work is the decode and the resize only.
- **Orientation invariance, cheaply.** With ``invariant=True``, the eight orientations
  (flips and 90-degree rotations, :data:`ORIENTATIONS`) are hashed from the one small image
  by permuting its pixels; the image is decoded once.

A hash is ``bits = hash_size**2`` bits, stored as ``bits / 8`` big-endian bytes: the first
bit of imagehash's row-major bit array is the most significant bit of the first byte, so
``code.hex()`` equals ``str(imagehash.phash(image))``. :func:`to_words` turns such bytes
into ``uint64`` words for :mod:`pixelpipe.imaging.hamming`.

EXIF orientation is not applied (imagehash does not either); turn on ``invariant`` for
copies that were rotated or flipped.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt
from PIL import Image

Algorithm = Literal["phash", "dhash", "ahash", "whash"]
"""The hash algorithms (imagehash's ``phash``, ``dhash``, ``average_hash``, ``whash``)."""
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)

ORIENTATIONS = (
    "identity",
    "flip_left_right",
    "flip_top_bottom",
    "rotate_180",
    "transpose",
    "rotate_90",
    "rotate_270",
    "transverse",
)
"""The eight orientations, in the order :func:`orient` and the hash arrays use.

The names are :class:`PIL.Image.Transpose` members (``rotate_90`` is counter-clockwise);
the last four swap width and height.
"""

PHASH_FACTOR = 4
"""imagehash's ``highfreq_factor``: pHash's DCT runs on ``4 * hash_size`` pixels a side."""

_RESAMPLE = Image.Resampling.LANCZOS
U8 = npt.NDArray[np.uint8]
S = TypeVar("S")


@dataclass(frozen=True)
class HashSpec:
    """Which hash to compute.

    Attributes:
        algorithm: ``phash``, ``dhash``, ``ahash`` or ``whash``.
        hash_size: Bits per side: the hash has ``hash_size**2`` bits. A power of two
            from 4 to 32 (8 gives imagehash's usual 64-bit hash).
        draft: Let the JPEG decoder downscale (fast); ``False`` decodes at full size
            and reproduces imagehash exactly.
        invariant: Also hash the seven other orientations (flips and 90-degree turns).
        reframe: Also hash the image's centred square (one more hash, the last row): a
            copy reframed to another aspect by a centred crop that keeps the short side
            (16:9 to 16:10, 3:4 to 4:5 or 1:1) has the same centred square.
    """

    algorithm: Algorithm = "phash"
    hash_size: int = 8
    draft: bool = True
    invariant: bool = False
    reframe: bool = False

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown hash algorithm {self.algorithm!r}; use one of {ALGORITHMS}")
        size = self.hash_size
        if size < 4 or size > 32 or size & (size - 1):
            raise ValueError(f"hash_size must be a power of two from 4 to 32, got {size}")

    @property
    def bits(self) -> int:
        """Bits in one hash."""
        return self.hash_size * self.hash_size

    @property
    def nbytes(self) -> int:
        """Bytes in one hash."""
        return self.bits // 8

    @property
    def orientations(self) -> int:
        """Orientations hashed per image: 8 when invariant, else 1."""
        return len(ORIENTATIONS) if self.invariant else 1

    @property
    def rows(self) -> int:
        """Hashes per image: the orientations, and the centred square with ``reframe``."""
        return self.orientations + int(self.reframe)

    def small_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """``(width, height)`` the image is resized to before hashing.

        Args:
            image_size: The image's full ``(width, height)`` (wHash's scale depends on it).
        """
        size = self.hash_size
        if self.algorithm == "phash":
            return size * PHASH_FACTOR, size * PHASH_FACTOR
        if self.algorithm == "dhash":
            return size + 1, size
        if self.algorithm == "ahash":
            return size, size
        scale = max(2 ** int(math.log2(max(1, min(image_size)))), size)
        return scale, scale


def orient(pixels: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th orientation (:data:`ORIENTATIONS`) of images, on the last two axes.

    Args:
        pixels: ``(..., height, width)``.
        k: Index into :data:`ORIENTATIONS`.
    """
    if k >= 4:
        pixels = np.swapaxes(pixels, -1, -2)
        k -= 4
        # transpose, rotate_90 (= transpose + flip top-bottom), rotate_270, transverse
        flips = ((False, False), (True, False), (False, True), (True, True))[k]
    else:
        flips = ((False, False), (False, True), (True, False), (True, True))[k]
    if flips[0]:
        pixels = pixels[..., ::-1, :]
    if flips[1]:
        pixels = pixels[..., :, ::-1]
    return pixels


def small_images(image: Image.Image, spec: HashSpec) -> list[U8]:
    """Decode ``image`` to the grayscale small image(s) the hash is computed from.

    For a JPEG that is not loaded yet and ``spec.draft``, the decoder downscales.

    Args:
        image: An opened image.
        spec: The hash.

    Returns:
        ``[small]``, or for an invariant hash whose small image is not square (dHash)
        ``[small, swapped]`` where ``swapped`` was resized to height x width, for the
        orientations that swap axes; with ``reframe``, then the centred square resized
        to the small size.
    """
    full = image.size
    width, height = spec.small_size(full)
    box: tuple[float, float, float, float] | None = None
    if spec.draft:  # JPEG (and MPO) only; other formats return None and decode in full
        side = max(width, height)
        drafted = image.draft("L", (side, side))
        if drafted is not None:
            box = drafted[1]
    gray = image.convert("L")
    sizes = [(width, height)]
    if spec.invariant and width != height:
        sizes.append((height, width))
    smalls = [np.asarray(gray.resize(size, _RESAMPLE, box=box)) for size in sizes]
    if spec.reframe:
        square = _square(full, box)  # a box filter: a quarter of Lanczos's cost, same use
        smalls.append(np.asarray(gray.resize((width, height), Image.Resampling.BOX, box=square)))
    return smalls


def _square(
    full: tuple[int, int], box: tuple[float, float, float, float] | None
) -> tuple[float, float, float, float]:
    """The centred square of an image of size ``full``, in decoded coordinates.

    ``box`` is where the full image lies in a draft-decoded one (``None``: not drafted).
    """
    width, height = full
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    x0, y0, x1, y1 = box or (0.0, 0.0, float(width), float(height))
    sx, sy = (x1 - x0) / max(width, 1), (y1 - y0) / max(height, 1)
    return (x0 + left * sx, y0 + top * sy, x0 + (left + side) * sx, y0 + (top + side) * sy)


def _phash(pixels: np.ndarray, size: int) -> np.ndarray:
    import scipy.fftpack

    # imagehash: dct(dct(pixels, axis=0), axis=1) on each image; same calls, batched.
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels.astype(np.float64), axis=-2), axis=-1)
    low = dct[..., :size, :size]
    flat = low.reshape(*low.shape[:-2], size * size)
    med = np.median(flat, axis=-1, keepdims=True)
    return np.asarray(flat > med)


def _ahash(pixels: np.ndarray, size: int) -> np.ndarray:
    flat = pixels.reshape(*pixels.shape[:-2], size * size)
    return np.asarray(flat > flat.mean(axis=-1, keepdims=True, dtype=np.float64))


def _dhash(pixels: np.ndarray, size: int) -> np.ndarray:
    diff = pixels[..., :, 1:] > pixels[..., :, :-1]
    return diff.reshape(*diff.shape[:-2], size * size)


def _whash(pixels: np.ndarray, size: int) -> np.ndarray:
    import pywt  # type: ignore[import-untyped]

    scale = pixels.shape[-1]
    top = int(math.log2(scale))
    level = int(math.log2(size))
    axes = (-2, -1)
    values = pixels / 255.0
    # imagehash's defaults: mode 'haar', remove_max_haar_ll=True.
    coeffs = list(pywt.wavedec2(values, "haar", level=top, axes=axes))
    coeffs[0] = coeffs[0] * 0
    values = pywt.waverec2(coeffs, "haar", axes=axes)
    low = pywt.wavedec2(values, "haar", level=top - level, axes=axes)[0]
    flat = low.reshape(*low.shape[:-2], size * size)
    med = np.median(flat, axis=-1, keepdims=True)
    return np.asarray(flat > med)


_HASHERS = {"phash": _phash, "ahash": _ahash, "dhash": _dhash, "whash": _whash}


def hash_pixels(pixels: np.ndarray, spec: HashSpec) -> U8:
    """Hash a batch of small grayscale images of one shape.

    Args:
        pixels: ``(n, height, width)`` uint8, each of ``spec.small_size``.
        spec: The hash.

    Returns:
        ``(n, nbytes)`` packed hashes (see the module docstring for the bit order).
    """
    bits = _HASHERS[spec.algorithm](pixels, spec.hash_size)
    return np.packbits(bits, axis=-1)


def orientation_stack(smalls: list[U8], spec: HashSpec) -> U8:
    """The small image in each orientation the spec asks for, stacked.

    Args:
        smalls: From :func:`small_images`.
        spec: The hash.

    Returns:
        ``(rows, height, width)``: the orientations, then the centred square with
        ``reframe``.
    """
    square = [smalls[-1]] if spec.reframe else []
    views = smalls[:-1] if spec.reframe else smalls
    if not spec.invariant:
        return np.stack([views[0], *square])
    swapped = views[-1]
    turned = [orient(views[0] if k < 4 else swapped, k) for k in range(len(ORIENTATIONS))]
    return np.stack([*turned, *square])


def hash_image(image: Image.Image, spec: HashSpec | None = None) -> U8:
    """Hash one opened image.

    Args:
        image: The image (a JPEG not yet loaded is draft-decoded when ``spec.draft``).
        spec: The hash; pHash of size 8 by default.

    Returns:
        ``(rows, nbytes)``: row 0 is the image as it is.
    """
    spec = spec or HashSpec()
    return hash_pixels(orientation_stack(small_images(image, spec), spec), spec)


@dataclass(frozen=True)
class HashBatch:
    """Hashes of many files.

    Attributes:
        codes: ``(n, rows, nbytes)`` uint8 (:attr:`HashSpec.rows`); zero rows where
            ``errors`` has a message.
        errors: Per file, ``None`` or why it could not be hashed.
    """

    codes: U8
    errors: list[str | None]

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        """Which files were hashed."""
        return np.array([e is None for e in self.errors], dtype=bool)


def hash_files(paths: Sequence[str | Path], spec: HashSpec | None = None) -> HashBatch:
    """Decode and hash files, batching the transform over all of them.

    A file that cannot be opened or decoded gets an error message, never an exception.

    Args:
        paths: Image files.
        spec: The hash; pHash of size 8 by default.
    """
    spec = spec or HashSpec()
    stacks: list[U8 | None] = []
    errors: list[str | None] = []
    for path in paths:
        stack = error = None
        try:
            with Image.open(path) as image:
                stack = orientation_stack(small_images(image, spec), spec)
        except Exception as exc:  # any undecodable file is reported, never a crash
            error = f"{type(exc).__name__}: {exc}"
        stacks.append(stack)
        errors.append(error)
    return HashBatch(_hash_stacks(stacks, spec), errors)


def _hash_stacks(stacks: Sequence[U8 | None], spec: HashSpec) -> U8:
    """Hash small images, batched by shape; zero rows where there is none."""
    groups: dict[tuple[int, ...], list[tuple[int, U8]]] = {}
    for index, stack in enumerate(stacks):
        if stack is not None:
            groups.setdefault(stack.shape, []).append((index, stack))
    codes = np.zeros((len(stacks), spec.rows, spec.nbytes), dtype=np.uint8)
    for members in groups.values():
        rows = [index for index, _ in members]
        codes[rows] = hash_pixels(np.stack([stack for _, stack in members]), spec)
    return codes


Hashed = tuple[bytes, str | None, bool]
"""One image's hashes as :func:`hash_read` returns them: ``(codes, error, transient)``."""

_TRANSIENT = (MemoryError,)
"""Decoding failures that say nothing of the bytes (the worker ran short of memory)."""


def _reason(exc: BaseException) -> str:
    """Why reading failed, without the file's path (``FileNotFoundError: No such file...``)."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{type(exc).__name__}: {detail}"


def _decode_error(exc: Exception, stream: io.BytesIO) -> str:
    """The message of a decoding failure, without the stream's (run-specific) repr."""
    return f"{type(exc).__name__}: {str(exc).replace(f' {stream!r}', '')}"


def hash_read(spec: HashSpec, read: Callable[[S], bytes], sources: list[S]) -> list[Hashed]:
    """Executor work item: read each source's encoded bytes with ``read``, hash them.

    Each image is read, decoded to its small image(s) and let go before the next one, and
    the transform runs once over the whole chunk, as in :func:`hash_files`.

    Args:
        spec: The hash.
        read: Gives the encoded bytes of a source (a path, a URL, the bytes themselves).
        sources: What ``read`` takes.

    Returns:
        Per source ``(codes, error, transient)``: ``codes`` is the ``rows * nbytes``
        bytes of its hashes (empty on error), ``error`` why it has none, and
        ``transient`` whether that error says nothing of the image's bytes (they could
        not be read: a file gone missing, a network failure; or memory ran short), so
        that trying again may succeed. A decoding error is not transient: the bytes
        decide it, and its message names no path.
    """
    stacks: list[U8 | None] = []
    errors: list[str | None] = []
    transient: list[bool] = []
    for source in sources:
        stack = error = None
        try:
            stream = io.BytesIO(read(source))
        except Exception as exc:  # reading failed: worth another try in a later run
            error, gone = f"cannot read the image: {_reason(exc)}", True
        else:
            try:
                with Image.open(stream) as image:
                    stack = orientation_stack(small_images(image, spec), spec)
                gone = False
            except Exception as exc:  # any undecodable image is reported, never a crash
                error, gone = _decode_error(exc, stream), isinstance(exc, _TRANSIENT)
            del stream
        stacks.append(stack)
        errors.append(error)
        transient.append(gone)
    codes = _hash_stacks(stacks, spec)
    return [
        (codes[i].tobytes() if error is None else b"", error, gone)
        for i, (error, gone) in enumerate(zip(errors, transient, strict=True))
    ]


def hash_chunk(spec: HashSpec, paths: list[str]) -> list[tuple[bytes, str | None]]:
    """Executor work item: hash ``paths``; per file ``(codes, error)``.

    ``codes`` is the ``rows * nbytes`` bytes of the file's hashes (empty on error).
    """
    batch = hash_files(paths, spec)
    return [
        (batch.codes[i].tobytes() if error is None else b"", error)
        for i, error in enumerate(batch.errors)
    ]


def to_words(codes: np.ndarray) -> npt.NDArray[np.uint64]:
    """Packed hashes (``(..., nbytes)`` uint8) as ``(..., words)`` native ``uint64``.

    Bytes are zero-padded to whole words, so distances are unchanged.
    """
    codes = np.asarray(codes, dtype=np.uint8)
    nbytes = codes.shape[-1]
    words = -(-nbytes // 8)
    if words * 8 != nbytes:
        pad = [(0, 0)] * (codes.ndim - 1) + [(0, words * 8 - nbytes)]
        codes = np.pad(codes, pad)
    big = np.ascontiguousarray(codes).view(">u8")
    return big.astype(np.uint64)


def to_hex(code: bytes | np.ndarray) -> str:
    """A hash as imagehash's hex string (``str(imagehash.phash(image))``)."""
    return bytes(code).hex() if isinstance(code, bytes) else np.asarray(code).tobytes().hex()
