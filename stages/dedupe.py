"""Dedupe: remove exact duplicates (same bytes) and near duplicates (close perceptual hashes)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import Field, model_validator

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    Plot,
    StageContext,
    StageParams,
    StageResult,
    stage,
)
from pixelpipe.imaging import hamming
from pixelpipe.imaging.hashing import ORIENTATIONS, HashSpec
from stages._dedupe.decide import KeepPolicy, conflict
from stages._dedupe.group import Grouping, group
from stages._dedupe.hashes import Files, Hashes, distinct_files, hash_and_search
from stages._dedupe.report import ClusterView, ReportData, Shot, render
from stages._dedupe.thumbs import add_thumbnails
from stages._dedupe.views import boxes, chain_views, labels

REPORT_FILE = "report.html"
DUPLICATES_COLUMN = "duplicates"
"""Manifest column: how many samples were removed as duplicates of this one."""
DEFAULT_MAX_DISTANCE = 6
"""Default threshold for 64-bit hashes, chosen from data (see ``docs/dedupe.md``)."""
_NEAR_MISS_MARGIN = 6
_NEAR_MISSES_SHOWN = 12
_INVERSE = {"rotate_90": "rotate_270", "rotate_270": "rotate_90"}
I64 = npt.NDArray[np.int64]


class Params(StageParams):
    """Params of the ``dedupe`` stage."""

    near: bool = True
    """Also remove near duplicates by perceptual hash; ``false``: byte-identical files only."""
    algorithm: Literal["phash", "dhash", "ahash", "whash"] = "phash"
    """Perceptual hash, as in imagehash: ``phash`` (DCT, robust to resizing and
    re-encoding), ``dhash`` (gradients), ``ahash`` (mean), ``whash`` (Haar wavelets)."""
    hash_size: Literal[4, 8, 16, 32] = 8
    """Bits per side of the hash: it has ``hash_size**2`` bits (8: 64 bits)."""
    max_distance: int = Field(default=DEFAULT_MAX_DISTANCE, ge=0)
    """Largest Hamming distance between two hashes that still makes them duplicates: a
    sample is removed only as a copy of a kept sample within this distance. The default,
    for 64-bit pHash, catches 99.9% of re-encoded, resized, grayscale, blurred and re-lit
    copies and falsely pairs under 1% of look-alike product photos (docs/dedupe.md); for
    hash_size 16 use about 32. Must be below half the bits."""
    invariant: bool = False
    """Also match copies that were flipped or turned by 90/180/270 degrees (hashes the
    eight orientations; the search costs about 25x more: 13 minutes at a million images
    on 2 cores). It also adds false matches: consider a lower ``max_distance``."""
    keep: KeepPolicy = "largest"
    """Which copy to keep: ``largest`` (most pixels, then most annotations),
    ``most_annotations`` (then most pixels) or ``first`` (by source path); ties go to the
    first source path, then id. Clusters form around the kept copy: copies of copies
    further than ``max_distance`` from it are kept or start clusters of their own."""
    draft: bool = True
    """Let the JPEG decoder downscale before hashing (4x faster; 84% of hashes of real
    photos equal imagehash's, nearly all others differ by 2 bits). ``false``: decode at
    full size, exactly as imagehash."""
    report_clusters: int = Field(default=100, ge=0)
    """Clusters shown with thumbnails in ``report.html`` (largest distances first), and as
    many chains cut into several clusters (largest first)."""
    histogram_sample: int = Field(default=2000, ge=0)
    """Images whose nearest-neighbour distance the report's histogram shows (all, up to
    this many; measured by brute force, so cost grows with this times the dataset)."""

    @model_validator(mode="after")
    def _threshold_below_half(self) -> Params:
        bits = self.hash_size * self.hash_size
        if self.max_distance >= bits // 2:
            raise ValueError(
                f"max_distance {self.max_distance} must be below {bits // 2} (half of the "
                f"{bits} bits of a hash_size {self.hash_size} hash): unrelated images match "
                "at that distance"
            )
        return self


def _orientation(words: np.ndarray, removed: int, kept: int) -> str:
    """The turn that maps the removed image onto the kept one (for invariant hashes)."""
    forward = hamming.distance(words[removed], words[kept, 0][None])
    backward = hamming.distance(words[kept], words[removed, 0][None])
    if forward.min() <= backward.min():
        return ORIENTATIONS[int(forward.argmin())]
    name = ORIENTATIONS[int(backward.argmin())]
    return _INVERSE.get(name, name)


NEAREST_PLOT = "nearest_distance"
_PLOTS = {
    NEAREST_PLOT: Plot(
        x="images", y="distance", title="distance of each image to its nearest other image"
    )
}


@stage("dedupe", params=Params, plots=_PLOTS)
def dedupe(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Remove exact and near-duplicate images, keeping one of each cluster; report them.

    Exact duplicates share a SHA-256. Near duplicates have perceptual hashes (pHash by
    default, the imagehash algorithms) within ``max_distance`` bits; each file is decoded
    once, at reduced size for JPEGs, and hashed in batches on the workers; a rerun hashes
    only images it has not hashed before with the same params (the per-item cache, by
    SHA-256), while the search below always covers every image. All pairs within
    the threshold are found by a multi-index search whose cost does not grow with the square
    of the dataset. Clusters form around the sample the ``keep`` policy prefers: it keeps
    every remaining sample within ``max_distance`` of it, and the rest of a chain of copies
    of copies forms clusters of its own, so a sample is only ever removed as a copy of one
    it is within ``max_distance`` of. The removed samples go to ``removed.parquet`` with
    reason ``duplicate``, ``duplicate_of`` (the kept id), ``distance`` (to the kept sample;
    0 for identical files) and ``conflict`` (how their labels differ from the kept
    sample's, if they do: the kept sample keeps its own). The
    hash is kept as a manifest column named after the algorithm (``phash``: big-endian
    bytes, ``.hex()`` is imagehash's string), with ``duplicates`` (copies removed).
    ``report.html`` in the output shows the clusters side by side with their distances, the
    chains that were cut into several clusters, the near misses, and a histogram of nearest
    distances to choose the threshold (also a DVC plot, ``nearest_distance``).

    ```yaml
    # pipelines/default.yaml
    stages:
      dedupe:
        kind: dedupe
        inputs: ingest
    # params.yaml
    dedupe:
      algorithm: phash          # dhash, ahash, whash
      hash_size: 8              # 64-bit hashes
      max_distance: 6           # bits; see the report's histogram
      invariant: false          # true: also flipped / rotated copies
      keep: largest             # most_annotations, first
    ```
    """
    (dataset,) = inputs
    table = dataset.table
    spec = HashSpec(params.algorithm, params.hash_size, params.draft, params.invariant)
    files = distinct_files(table)
    hashes = hash_and_search(table, files, spec, params.near, params.max_distance, ctx)
    grouping = group(
        table,
        files.of_row,
        hashes.hashed,
        hashes.words,
        hashes.found,
        params.max_distance,
        params.keep,
    )
    names = {c.id: c.name for c in dataset.categories}
    out = DatasetBuilder(dataset.categories)
    decided = _decide(out, table, files, hashes, grouping, params, names)
    out.add_table(_manifest(table, files, hashes, decided, params, spec))

    unhashable = [
        (str(table.column("id")[files.first_row[f]].as_py()), error)
        for f, error in enumerate(hashes.errors)
        if error is not None
    ]
    for sample_id, error in unhashable[:20]:
        ctx.log.warning("%s: not hashed (%s); compared by bytes only", sample_id, error)
    clusters = decided.cluster_sizes
    metrics: dict[str, Any] = {
        "algorithm": params.algorithm if params.near else "sha256",
        "hash_bits": spec.bits,
        "max_distance": params.max_distance,
        "invariant": params.invariant,
        "keep": params.keep,
        "input_samples": table.num_rows,
        "distinct_files": len(files.first_row),
        "hashed": int(hashes.hashed.size),
        "unhashable": len(unhashable),
        "pairs_within_threshold": hashes.pair_count,
        "search": hashes.method,
        "clusters": len(clusters),
        "largest_cluster": max(clusters, default=0),
        "chains_split": len(grouping.chains),
        "largest_component": grouping.largest_component,
        "max_removed_distance": int(grouping.distance[decided.removed].max(initial=0)),
        "exact_duplicates_removed": decided.exact,
        "near_duplicates_removed": decided.near,
        "duplicates_removed": decided.exact + decided.near,
        "annotation_conflicts": decided.conflicts,
    }
    shown = sorted(decided.views, key=lambda v: (-v.max_distance, -len(v.removed), v.kept.caption))
    data = ReportData(
        stage=ctx.stage,
        summary=metrics,
        threshold=params.max_distance,
        bits=spec.bits,
        algorithm=params.algorithm,
        clusters=shown[: params.report_clusters],
        clusters_total=len(shown),
        chains=chain_views(grouping, table, params.report_clusters),
        chains_total=len(grouping.chains),
        unhashable=unhashable,
    )
    if hashes.hashed.size:
        _nearest(data, params, hashes, files, grouping, table, ctx)
    add_thumbnails(data, ctx)
    (ctx.output_dir / REPORT_FILE).write_text(render(data), encoding="utf-8")
    plot = nearest_rows(data.nearest, params.max_distance)
    return StageResult(output=out, metrics=metrics, plots={NEAREST_PLOT: plot})


def nearest_rows(nearest: Sequence[int], threshold: int) -> list[dict[str, int]]:
    """The DVC plot of the report's histogram: images at each nearest distance.

    One row per distance from 0 to the largest observed (at least to ``threshold``), so
    every measured image is counted once, at its own distance.
    """
    top = max([threshold, *nearest])
    counts = np.bincount(np.asarray(nearest, dtype=np.int64), minlength=top + 1)
    return [{"distance": d, "images": int(n)} for d, n in enumerate(counts.tolist())]


@dataclass
class _Decided:
    """What the keep policy decided.

    Attributes:
        removed: Manifest rows removed as duplicates.
        duplicates: For each manifest row, how many copies of it were removed.
        views: The clusters, for the report.
        cluster_sizes: Samples per cluster (clusters of 2 or more).
        exact: Removed as byte-identical copies.
        near: Removed as near duplicates.
        conflicts: Removed copies whose labels differ from the kept copy's.
    """

    removed: npt.NDArray[np.bool_]
    duplicates: I64
    views: list[ClusterView] = field(default_factory=list)
    cluster_sizes: list[int] = field(default_factory=list)
    exact: int = 0
    near: int = 0
    conflicts: int = 0


def _decide(
    out: DatasetBuilder,
    table: pa.Table,
    files: Files,
    hashes: Hashes,
    grouping: Grouping,
    params: Params,
    names: dict[int, str],
) -> _Decided:
    """Record every clustered sample but the kept one in ``out`` as removed, a copy of it."""
    clusters: dict[int, list[int]] = {}
    for row in sorted(grouping.members, key=lambda r: int(grouping.rank[r])):
        clusters.setdefault(int(grouping.kept[row]), []).append(row)  # the kept row first
    count = table.num_rows
    decided = _Decided(np.zeros(count, dtype=bool), np.zeros(count, dtype=np.int64))
    # What the members need, in one take (a take per cluster costs ms on a chunked table).
    member_rows = sorted(grouping.members)
    part = table.select(["annotations", "image", "sha256"]).take(
        pa.array(member_rows, type=pa.int64())
    )
    annotations = dict(zip(member_rows, part.column("annotations").to_pylist(), strict=True))
    images = dict(zip(member_rows, part.column("image").to_pylist(), strict=True))
    shas = dict(zip(member_rows, part.column("sha256").to_pylist(), strict=True))
    for kept_row, rows in sorted(clusters.items()):
        decided.cluster_sizes.append(len(rows))
        kept = grouping.members[kept_row]
        kept_file = int(files.of_row[kept.index])
        kept_anns = annotations[kept.index] or []
        shots: list[tuple[int, str, Shot]] = []
        for member in (grouping.members[row] for row in rows[1:]):
            other_file = int(files.of_row[member.index])
            dist = int(grouping.distance[member.index])
            turned = "identity"
            if other_file == kept_file:
                how = f"identical file (same sha256) as '{kept.id}'"
                decided.exact += 1
            else:
                a, b = int(hashes.position[other_file]), int(hashes.position[kept_file])
                if params.invariant:
                    turned = _orientation(hashes.words, a, b)
                how = f"near-duplicate of '{kept.id}': {params.algorithm} distance {dist}"
                if turned != "identity":
                    how += f" after {turned}"
                decided.near += 1
            other_anns = annotations[member.index] or []
            differs = conflict(
                kept_anns,
                (kept.width, kept.height),
                other_anns,
                (member.width, member.height),
                names,
                compare_boxes=turned == "identity",
            )
            decided.conflicts += differs is not None
            extra: dict[str, Any] = {"duplicate_of": kept.id, "distance": dist, "conflict": differs}
            if params.invariant:
                extra["orientation"] = None if other_file == kept_file else turned
            out.remove(member.id, "duplicate", how, source=member.source, **extra)
            decided.removed[member.index] = True
            decided.duplicates[kept.index] += 1
            caption = f"{member.id} · d={dist}"
            caption += " (identical file)" if other_file == kept_file else ""
            caption += f" · {turned}" if turned != "identity" else ""
            caption += f" · {member.width}x{member.height} · {labels(member.annotations)}"
            image, sha = images[member.index], shas[member.index]
            shot = Shot(image, sha, caption, boxes(other_anns, names), "drop", differs)
            shots.append((dist, member.id, shot))
        shots.sort(key=lambda item: item[:2])
        keep_shot = Shot(
            images[kept.index],
            shas[kept.index],
            f"KEEP {kept.id} · {kept.width}x{kept.height} · {labels(kept.annotations)}",
            boxes(kept_anns, names),
            "keep",
        )
        worst = shots[-1][0]
        decided.views.append(ClusterView(keep_shot, [s for _, _, s in shots], worst))
    return decided


def _manifest(
    table: pa.Table,
    files: Files,
    hashes: Hashes,
    decided: _Decided,
    params: Params,
    spec: HashSpec,
) -> pa.Table:
    """The kept rows, with the hash column(s) and the count of removed copies."""
    kept_rows = np.flatnonzero(~decided.removed)
    kept = table.filter(pa.array(~decided.removed))
    stale = (params.algorithm, f"{params.algorithm}_orientations", DUPLICATES_COLUMN)
    kept = kept.drop_columns([c for c in stale if c in kept.column_names])
    if params.near:
        file_of = files.of_row[kept_rows].tolist()
        ok = [hashes.errors[f] is None for f in file_of]
        plain = [
            hashes.codes[f, 0].tobytes() if good else None
            for f, good in zip(file_of, ok, strict=True)
        ]
        kept = kept.append_column(params.algorithm, pa.array(plain, type=pa.binary(spec.nbytes)))
        if spec.invariant:
            every = [
                hashes.codes[f].tobytes() if good else None
                for f, good in zip(file_of, ok, strict=True)
            ]
            kept = kept.append_column(
                f"{params.algorithm}_orientations",
                pa.array(every, type=pa.binary(spec.nbytes * spec.orientations)),
            )
    return kept.append_column(
        DUPLICATES_COLUMN, pa.array(decided.duplicates[kept_rows], type=pa.int64())
    )


def _nearest_of(words: npt.NDArray[np.uint64], rows: list[int]) -> list[tuple[int, int]]:
    """Executor work item: ``(distance, item)`` of each row's nearest other item."""
    dist, other = hamming.nearest(words, rows)
    return list(zip(dist.tolist(), other.tolist(), strict=True))


def _nearest(
    data: ReportData,
    params: Params,
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
    size = min(total, params.histogram_sample)
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
    low, high = params.max_distance, params.max_distance + _NEAR_MISS_MARGIN
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

    chosen = sorted(misses.items(), key=lambda kv: (kv[1], kv[0]))[:_NEAR_MISSES_SHOWN]
    data.near_misses = [(shot(a), shot(b), d) for (a, b), d in chosen]
