"""The second step of the near-duplicate decision: verify each candidate pair.

Candidates come from the hash search at ``max_distance`` (one file per distinct hash) or,
with ``features``, from a vector column by cosine distance. Each candidate pair of files
is checked by :mod:`pixelpipe.imaging.verify` (ORB keypoints, RANSAC for one affine
transform) on the workers, through the per-item cache keyed by the two files' sha256, so a
new data drop verifies only its new pairs. A pair is a duplicate when

- at least ``min_matches`` keypoints agree with one transform, unless both images are
  colourful and their aligned colours differ by more than ``max_colour_difference`` (one
  print in two colours), or
- either image is too plain to judge (fewer than
  :data:`~pixelpipe.imaging.verify.FEW_KEYPOINTS` keypoints: flat or blurred) and the
  hashes are within ``unverified_distance``, the single-step threshold.

A pair whose hashes match only with one image flipped or turned (``invariant``) is
verified with that image turned the same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pixelpipe import StageContext, read_pixels
from pixelpipe.imaging import hamming
from pixelpipe.imaging.verify import FEW_KEYPOINTS, Verified, VerifySpec, verify_read
from stages._dedupe.group import Edges
from stages._dedupe.hashes import Files, Hashes

I64 = npt.NDArray[np.int64]
REFUSED_SHOWN = 12
"""Refused candidate pairs the report shows."""
NAMESPACE = "duplicate_pair"
"""Cache namespace of the verification results (one per pair of files and spec)."""


@dataclass(frozen=True)
class Candidates:
    """Candidate pairs of distinct files.

    Attributes:
        i: One file of each pair (the turned one, when a turn matches them).
        j: The other.
        distance: Their hash distance (-1 when either was not hashed).
        turned: The index in :data:`~pixelpipe.imaging.hashing.ORIENTATIONS` of the flip
            or turn that maps file ``i`` onto file ``j`` (0: none; their hashes match
            only with it).
        cosine: Their cosine distance when they came from a features column.
    """

    i: I64
    j: I64
    distance: I64
    turned: I64
    cosine: npt.NDArray[np.float64] | None = None


@dataclass(frozen=True)
class Checked:
    """The verified pairs and what the check decided.

    Attributes:
        edges: The pairs that are duplicates.
        candidates: Pairs checked.
        matched: Duplicates by their keypoints.
        by_hash: Duplicates by the hash alone (an image too plain to verify).
        rejected: Candidates found not to be the same picture.
        failed: Candidates whose images could not be read.
        colour_variants: Candidates refused, though their keypoints agree, because their
            colours differ (one print in two colours).
        measured: What the candidate search measured (features: method, recall).
        refused: The refused candidates, most agreeing keypoints first (at most
            :data:`REFUSED_SHOWN`): ``(file, file, distance, inliers, colour difference
            when that refused it)``.
    """

    edges: Edges
    candidates: int
    matched: int
    by_hash: int
    rejected: int
    failed: int
    colour_variants: int = 0
    measured: dict[str, object] = field(default_factory=dict)
    refused: list[tuple[int, int, int, int, float | None]] = field(default_factory=list)


def hash_candidates(hashes: Hashes) -> Candidates:
    """The searches' pairs as pairs of files: the first file of each distinct hash.

    With ``reframe``, the pairs whose centred squares are within the threshold join those
    of the whole images; a pair's distance is the smaller of its two.
    """
    found = hashes.found
    if found is None:
        nothing = np.zeros(0, dtype=np.int64)
        return Candidates(nothing, nothing, nothing, nothing)
    a, b, distance = _files_of(found)
    plain = hamming.pair_distances(hashes.words[:, :1], a, b)
    turned = np.zeros(a.size, dtype=np.int64)
    for k in np.flatnonzero(plain > distance).tolist():
        turned[k], a[k], b[k] = _turn(hashes.words, int(a[k]), int(b[k]))
    if hashes.square is not None:
        # Files with the same square but another whole-image hash pair up too.
        c, d, apart = _files_of(hashes.square, same=True)
        differ = found.inverse[c] != found.inverse[d]  # one whole-image hash: one node
        c, d, apart = c[differ], d[differ], apart[differ]
        # A pair both searches found keeps its order and turn, and the smaller distance.
        rows = int(hashes.words.shape[0])
        known = np.minimum(a, b) * rows + np.maximum(a, b)
        wanted = np.minimum(c, d) * rows + np.maximum(c, d)
        hit, where = np.zeros(c.size, dtype=bool), np.zeros(c.size, dtype=np.int64)
        if known.size:
            order = np.argsort(known)
            where = order[np.minimum(np.searchsorted(known, wanted, sorter=order), known.size - 1)]
            hit = known[where] == wanted
        distance = distance.copy()
        np.minimum.at(distance, where[hit], apart[hit])
        a, b = np.concatenate([a, c[~hit]]), np.concatenate([b, d[~hit]])
        distance = np.concatenate([distance, apart[~hit]])
        turned = np.concatenate([turned, np.zeros(int((~hit).sum()), dtype=np.int64)])
    return Candidates(hashes.hashed[a], hashes.hashed[b], distance, turned)


def _files_of(found: hamming.SearchResult, same: bool = False) -> tuple[I64, I64, I64]:
    """A search's pairs of distinct codes as pairs of rows (the first row of each code).

    With ``same``, also each further row of a code paired with its first row (distance 0).
    """
    _, first = np.unique(found.inverse, return_index=True)
    rows = first.astype(np.int64)
    a, b = rows[found.unique_pairs.i], rows[found.unique_pairs.j]
    distance = found.unique_pairs.distance
    if same:
        others = np.flatnonzero(rows[found.inverse] != np.arange(found.inverse.size))
        a = np.concatenate([a, rows[found.inverse[others]]])
        b = np.concatenate([b, others.astype(np.int64)])
        distance = np.concatenate([distance, np.zeros(others.size, dtype=np.int64)])
    return a, b, distance


def _turn(words: npt.NDArray[np.uint64], a: int, b: int) -> tuple[int, int, int]:
    """``(orientation, first, second)``: the turn of ``first`` closest to ``second`` plain."""
    forward = hamming.distance(words[a], words[b, 0][None])
    backward = hamming.distance(words[b], words[a, 0][None])
    if forward.min() <= backward.min():
        return int(forward.argmin()), a, b
    return int(backward.argmin()), b, a


def check(
    table: pa.Table,
    files: Files,
    candidates: Candidates,
    min_matches: int,
    unverified_distance: int,
    max_colour_difference: float | None,
    ctx: StageContext,
) -> Checked:
    """Verify the candidate pairs on the workers (cached by the pair's sha256s).

    Args:
        table: The input manifest.
        files: Its distinct files.
        candidates: Pairs of files to check.
        min_matches: Inliers that make a pair a duplicate.
        unverified_distance: Hash distance that decides a pair that cannot be verified.
        max_colour_difference: Colour difference that makes two colourful images
            different pictures (``None``: colour is not compared).
        ctx: The step's context (workers, cache, progress).
    """
    images: list[str] = table.column("image").to_pylist()
    shas: list[str] = table.column("sha256").to_pylist()
    row_of = np.asarray(files.first_row, dtype=np.int64)

    def ordered(pair: int) -> tuple[int, int, int]:
        """The pair's rows and turn: the turned image first, else the lower sha256."""
        x, y = int(row_of[candidates.i[pair]]), int(row_of[candidates.j[pair]])
        turn = int(candidates.turned[pair])
        return (x, y, turn) if turn or shas[x] <= shas[y] else (y, x, 0)

    items = [ordered(k) for k in range(candidates.i.size)]
    spec = VerifySpec()
    results: list[Verified] = []
    if items:
        ctx.log.info("verifying %d candidate pairs", len(items))
        with ctx.progress(len(items), "verifying pairs") as advance:
            results = list(
                ctx.cached_map(
                    NAMESPACE,
                    (spec.side, spec.keypoints, spec.ratio, spec.reprojection),
                    functools.partial(verify_read, spec, read_pixels),
                    items,
                    lambda pair: f"{shas[pair[0]]}:{shas[pair[1]]}:{pair[2]}",
                    advance=advance,
                    keep=lambda result: result[2] is None,
                    prepare=lambda pair: (
                        ctx.pixels(images[pair[0]]),
                        ctx.pixels(images[pair[1]]),
                        pair[2],
                    ),
                )
            )
    inliers = np.array([r[0] for r in results], dtype=np.int64)
    fewest = np.array([r[1] for r in results], dtype=np.int64)
    colour = np.array([r[2] for r in results], dtype=np.float64)
    failed = np.array([r[3] is not None for r in results], dtype=bool)
    for (x, y, _), (_, _, _, error) in zip(items, results, strict=True):
        if error is not None:
            ctx.log.warning("%s / %s: not verified (%s)", images[x], images[y], error)
    limit = np.inf if max_colour_difference is None else max_colour_difference
    variants = (inliers >= min_matches) & (colour > limit) & ~failed
    matched = (inliers >= min_matches) & ~variants & ~failed
    unjudged = fewest < FEW_KEYPOINTS
    by_hash = ~matched & unjudged & ~failed & (candidates.distance <= unverified_distance)
    by_hash &= candidates.distance >= 0
    keep = matched | by_hash
    cosine = None if candidates.cosine is None else candidates.cosine[keep]
    edges = Edges(
        candidates.i[keep], candidates.j[keep], candidates.distance[keep], inliers[keep], cosine
    )
    no = np.flatnonzero(~keep & ~failed)
    no = no[np.lexsort((candidates.j[no], candidates.i[no], -inliers[no]))][:REFUSED_SHOWN]
    refused = [
        (
            int(candidates.i[k]),
            int(candidates.j[k]),
            int(candidates.distance[k]),
            int(inliers[k]),
            float(colour[k]) if variants[k] else None,
        )
        for k in no.tolist()
    ]
    return Checked(
        edges,
        len(items),
        int(matched.sum()),
        int(by_hash.sum()),
        int((~keep & ~failed).sum()),
        int(failed.sum()),
        int(variants.sum()),
        refused=refused,
    )
