"""The report's histogram of nearest distances and its near misses, from a sample."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pixelpipe import StageContext
from pixelpipe.imaging import hamming
from stages._dedupe.group import Grouping
from stages._dedupe.hashes import Files, Hashes
from stages._dedupe.report import ReportData, Shot

NEAR_MISS_MARGIN = 6
"""Bits above the threshold a pair counts as a near miss."""
NEAR_MISSES_SHOWN = 12


def nearest_rows(nearest: Sequence[int], threshold: int) -> list[dict[str, int]]:
    """The DVC plot of the report's histogram: images at each nearest distance.

    One row per distance from 0 to the largest observed (at least to ``threshold``), so
    every measured image is counted once, at its own distance.
    """
    top = max([threshold, *nearest])
    counts = np.bincount(np.asarray(nearest, dtype=np.int64), minlength=top + 1)
    return [{"distance": d, "images": int(n)} for d, n in enumerate(counts.tolist())]


def _nearest_of(words: npt.NDArray[np.uint64], rows: list[int]) -> list[tuple[int, int]]:
    """Executor work item: ``(distance, item)`` of each row's nearest other item."""
    dist, other = hamming.nearest(words, rows)
    return list(zip(dist.tolist(), other.tolist(), strict=True))


def nearest(
    data: ReportData,
    threshold: int,
    sample: int,
    hashes: Hashes,
    files: Files,
    grouping: Grouping,
    table: pa.Table,
    ctx: StageContext,
) -> None:
    """Fill the histogram of nearest distances and the near misses, from a sample.

    The brute-force search from the sampled hashes to all runs on the workers, one share
    of the sample each.
    """
    hashed = hashes.hashed
    kept_for = grouping.kept[np.asarray(files.first_row, dtype=np.int64)]  # by file
    total = int(hashed.size)
    size = min(total, sample)
    if size == 0:
        return
    rows = np.unique(np.linspace(0, total - 1, size).round().astype(np.int64))
    share = -(-rows.size // ctx.executor.workers)
    work = functools.partial(_nearest_of, hashes.words)
    found = list(ctx.executor.map_chunks(work, rows.tolist(), share))
    dist = np.array([d for d, _ in found], dtype=np.int64)
    other = np.array([j for _, j in found], dtype=np.int64)
    data.nearest = [int(d) for d in dist if d >= 0]
    data.sampled_of = total
    low, high = threshold, threshold + NEAR_MISS_MARGIN
    misses: dict[tuple[int, int], int] = {}
    for row, d, j in zip(rows.tolist(), dist.tolist(), other.tolist(), strict=True):
        a, b = int(hashed[row]), int(hashed[j]) if j >= 0 else -1
        if low < d <= high and kept_for[a] != kept_for[b]:
            misses[(min(a, b), max(a, b))] = d
    ids = table.column("id")
    images = table.column("image")
    shas = table.column("sha256")

    def shot(file: int) -> Shot:
        row = files.first_row[file]
        image, sha = str(images[row].as_py()), str(shas[row].as_py())
        return Shot(image, sha, str(ids[row].as_py()))

    chosen = sorted(misses.items(), key=lambda kv: (kv[1], kv[0]))[:NEAR_MISSES_SHOWN]
    data.near_misses = [(shot(a), shot(b), d) for (a, b), d in chosen]
