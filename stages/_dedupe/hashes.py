"""The perceptual hashes of a manifest's distinct files, and the pairs within the threshold.

Each distinct file (by sha256) is decoded and hashed once, on the workers, through the
per-item cache: a rerun hashes only files it has not hashed before with the same hash
settings (algorithm, size, draft, invariant), and the workers read each image's pixels
from what :meth:`pixelpipe.StageContext.pixels` gives them. The search over all hashes
always runs (it is exact and cheap next to decoding), so its result never depends on what
the cache held.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pixelpipe import StageContext, read_pixels
from pixelpipe.imaging import hamming
from pixelpipe.imaging.hashing import Hashed, HashSpec, hash_read, to_words

I64 = npt.NDArray[np.int64]
NAMESPACE = "perceptual_hash"
"""Cache namespace of the hashes (one result per distinct file and hash spec)."""


def salt(spec: HashSpec) -> tuple[str, int, bool, bool, bool]:
    """What the hash of an image depends on besides its bytes."""
    return (spec.algorithm, spec.hash_size, spec.draft, spec.invariant, spec.reframe)


def transient(result: Hashed) -> bool:
    """Whether a hashing result is a failure worth another try (not stored in the cache)."""
    return result[2]


@dataclass(frozen=True)
class Files:
    """Distinct file contents (by SHA-256): each is decoded and hashed once.

    Attributes:
        of_row: For each manifest row, its distinct file.
        first_row: For each distinct file, its first manifest row.
    """

    of_row: I64
    first_row: list[int]


def distinct_files(table: pa.Table) -> Files:
    """The distinct files of a manifest, numbered in order of first appearance."""
    encoded = pc.dictionary_encode(table.column("sha256").combine_chunks())
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # files numbered by their first row
    number = np.empty(order.size, dtype=np.int64)
    number[order] = np.arange(order.size)
    return Files(number[inverse.reshape(-1)], first[order].tolist())


@dataclass(frozen=True)
class Hashes:
    """Hashes of the distinct files and the pairs within the threshold.

    Attributes:
        codes: ``(files, rows, nbytes)`` packed hashes (zeros where not hashed): the
            orientations, then with ``reframe`` the centred square.
        errors: Per file, why it could not be hashed, or ``None``.
        hashed: The files that were hashed.
        words: Their orientations' codes as ``uint64`` words (rows follow ``hashed``).
        position: For each file, its row in ``words`` (-1 when not hashed).
        found: The search over ``words`` (``None`` when nothing was searched).
        method: How the search ran (``index``, ``brute``, ``none``).
        pair_count: Pairs of hashed files within the threshold.
        square: With ``reframe``, the same search over the centred squares' hashes.
    """

    codes: npt.NDArray[np.uint8]
    errors: list[str | None]
    hashed: I64
    words: npt.NDArray[np.uint64]
    position: I64
    found: hamming.SearchResult | None
    method: str
    pair_count: int
    square: hamming.SearchResult | None = None


def hash_and_search(
    table: pa.Table,
    files: Files,
    spec: HashSpec,
    near: bool,
    max_distance: int,
    ctx: StageContext,
) -> Hashes:
    """Hash each distinct file (cached) and find the pairs within ``max_distance``.

    Args:
        table: The input manifest.
        files: Its distinct files.
        spec: The hash.
        near: Whether to hash at all (``False``: byte-identical files only).
        max_distance: The search threshold.
        ctx: The step's context (workers, cache, progress).
    """
    count = len(files.first_row)
    codes = np.zeros((count, spec.rows, spec.nbytes), dtype=np.uint8)
    errors: list[str | None] = [None] * count
    position = np.full(count, -1, dtype=np.int64)
    nothing = np.zeros(0, dtype=np.int64)
    if not near or not count:
        words = np.zeros((0, spec.orientations, 1), dtype=np.uint64)
        return Hashes(codes, errors, nothing, words, position, None, "none", 0)
    images: list[str] = table.column("image").to_pylist()
    shas: list[str] = table.column("sha256").to_pylist()
    with ctx.progress(count, "hashing") as advance:
        results = ctx.cached_map(
            NAMESPACE,
            salt(spec),
            functools.partial(hash_read, spec, read_pixels),
            files.first_row,
            lambda row: shas[row],
            advance=advance,
            keep=lambda result: not transient(result),
            prepare=lambda row: ctx.pixels(images[row]),
        )
        for index, (code, error, _) in enumerate(results):
            if error is None:
                codes[index] = np.frombuffer(code, dtype=np.uint8).reshape(codes.shape[1:])
            else:
                errors[index] = error
    hashed = np.array([i for i, e in enumerate(errors) if e is None], dtype=np.int64)
    position[hashed] = np.arange(hashed.size)
    words = to_words(codes[hashed, : spec.orientations])
    ctx.log.info("searching %d hashes within distance %d", hashed.size, max_distance)
    search = functools.partial(
        hamming.search,
        threshold=max_distance,
        bits=spec.bits,
        map_chunks=ctx.executor.map_chunks,
        workers=ctx.executor.workers,
    )
    found = search(words)
    square = search(to_words(codes[hashed, -1:])) if spec.reframe else None
    return Hashes(
        codes,
        errors,
        hashed,
        words,
        position,
        found,
        found.plan.method,
        pair_count(found),
        square,
    )


def pair_count(found: hamming.SearchResult) -> int:
    """Pairs of items within the threshold, counting items that share a hash."""
    sizes = np.bincount(found.inverse).astype(np.int64)
    pairs = found.unique_pairs
    return int((sizes * (sizes - 1) // 2).sum() + (sizes[pairs.i] * sizes[pairs.j]).sum())
