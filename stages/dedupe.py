"""Dedupe: remove exact duplicates (same bytes) and near duplicates (close perceptual hashes)."""

from __future__ import annotations

import dataclasses
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
from pixelpipe.imaging.verify import MAX_COLOUR_DIFFERENCE, MIN_MATCHES
from stages._dedupe.decide import KeepPolicy, conflict
from stages._dedupe.features import feature_candidates
from stages._dedupe.group import Edges, Grouping, group
from stages._dedupe.hashes import Files, Hashes, distinct_files, hash_and_search
from stages._dedupe.nearest import nearest, nearest_rows
from stages._dedupe.report import ClusterView, ReportData, Shot, render
from stages._dedupe.thumbs import add_thumbnails
from stages._dedupe.verified import Checked, check, hash_candidates
from stages._dedupe.views import boxes, chain_views, labels

REPORT_FILE = "report.html"
DUPLICATES_COLUMN = "duplicates"
"""Manifest column: how many samples were removed as duplicates of this one."""
DEFAULT_MAX_DISTANCE = 12
"""Default candidate threshold for 64-bit hashes, chosen from data (``docs/dedupe.md``)."""
UNVERIFIED_DISTANCE = 6
"""Threshold of the hash alone, for pairs the second check cannot judge (docs/dedupe.md)."""
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
    """Largest Hamming distance between two hashes that makes them candidates: a sample is
    removed only as a copy of a kept sample within this distance. With ``verify`` (the
    default) each candidate pair is then checked, so the threshold can be loose enough for
    cropped, reframed and watermarked copies; with ``verify: false`` the distance alone
    decides: use 6 (docs/dedupe.md). For hash_size 16 use about 32. Must be below half
    the bits."""
    verify: bool = True
    """Check each candidate pair: ORB keypoints of both images must agree with one affine
    transform (``min_matches`` of them), which copies (resized, re-encoded, cropped,
    reframed, squashed, watermarked, gray) pass and look-alike photos do not. Candidates
    then also include pairs whose centred squares' hashes are within ``max_distance``
    (reframed copies)."""
    min_matches: int = Field(default=MIN_MATCHES, ge=1)
    """Keypoints that must agree for a verified pair (docs/dedupe.md: the recall and false
    pairs at each value)."""
    unverified_distance: int = Field(default=UNVERIFIED_DISTANCE, ge=0)
    """Pairs the check cannot judge (an image with too few keypoints: flat, blurred) are
    duplicates when their hashes are within this distance."""
    max_colour_difference: float | None = Field(default=MAX_COLOUR_DIFFERENCE, gt=0)
    """Two colourful images whose keypoints agree but whose aligned colours differ by more
    than this (mean chroma difference, 0-255 units; copies stay below 9) are colour
    variants of one print, kept apart. ``null``: colour is not compared (a grayscale
    image never is)."""
    features: str | None = None
    """A manifest column of vectors (an embedding a custom stage adds): candidates are then
    the pairs within ``max_cosine_distance`` of each other, found with a FAISS index,
    instead of the hash search (hashes are still computed and kept)."""
    max_cosine_distance: float = Field(default=0.1, gt=0, lt=2)
    """With ``features``: largest ``1 - cosine similarity`` of a candidate pair."""
    invariant: bool = False
    """Also match copies that were flipped or turned by 90/180/270 degrees (hashes the
    eight orientations; the search costs about 25x more: 13 minutes at a million images
    on 2 cores; the check turns the image the same way). Without ``verify`` it also adds
    false matches: consider a lower ``max_distance``."""
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
    def _features_are_checked(self) -> Params:
        if self.features is not None and not self.near:
            raise ValueError("features needs near: true (it finds near duplicates)")
        return self

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

    Exact duplicates share a SHA-256. Near duplicates are found in two steps. Candidates:
    the pairs whose perceptual hashes (pHash by default, the imagehash algorithms), of the
    whole images or of their centred squares, are within ``max_distance`` bits, found by a
    multi-index search whose cost does not grow with the square of the dataset (or, with
    ``features``, the pairs of a vector column within ``max_cosine_distance``). Check:
    each candidate pair is kept only if ``min_matches`` ORB keypoints of the two images
    agree with one affine transform, which resized, re-encoded, cropped, reframed and
    watermarked copies pass and look-alike photos do not (``verify: false``: the hash
    distance alone decides). Each file is decoded and hashed once, on the workers, and
    each pair checked once, through the per-item cache, so a new data drop costs only its
    new files and pairs. Clusters form around the sample the ``keep`` policy prefers: it
    keeps every remaining sample paired with it, and the rest of a chain of copies of
    copies forms clusters of its own, so a sample is only ever removed as a copy of one it
    was itself paired with. The removed samples go to ``removed.parquet`` with reason
    ``duplicate``, ``duplicate_of`` (the kept id), ``distance`` (hash bits to the kept
    sample; 0 for identical files), ``matches`` (keypoints that agree) and ``conflict``
    (how their labels differ from the kept sample's, if they do: the kept sample keeps its
    own). The hash is kept as a manifest column named after the algorithm (``phash``:
    big-endian bytes, ``.hex()`` is imagehash's string), with ``duplicates`` (copies
    removed). ``report.html`` in the output shows the clusters side by side with both
    figures, the chains cut into several clusters, the near misses, the candidates the
    check refused, and a histogram of nearest distances (also a DVC plot,
    ``nearest_distance``).

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
      max_distance: 12          # bits: candidates; see the report's histogram
      verify: true              # keypoints must agree (false: 6 bits alone decide)
      min_matches: 20
      features: null            # or a vector column a stage adds (an embedding)
      invariant: false          # true: also flipped / rotated copies
      keep: largest             # most_annotations, first
    ```
    """
    (dataset,) = inputs
    table = dataset.table
    reframe = params.near and params.verify and params.features is None
    spec = HashSpec(params.algorithm, params.hash_size, params.draft, params.invariant, reframe)
    files = distinct_files(table)
    hashes = hash_and_search(table, files, spec, params.near, params.max_distance, ctx)
    checked = _second_step(table, files, hashes, params, ctx)
    grouping = group(
        table,
        files.of_row,
        hashes.hashed,
        hashes.words,
        hashes.found,
        params.max_distance,
        params.keep,
        None if checked is None else checked.edges,
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
        **_check_metrics(checked, params),
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
        nearest(
            data, params.max_distance, params.histogram_sample, hashes, files, grouping, table, ctx
        )
    if checked is not None and params.verify:
        data.min_matches = params.min_matches
        data.refused = _refused_shots(checked, files, table)
    add_thumbnails(data, ctx)
    (ctx.output_dir / REPORT_FILE).write_text(render(data), encoding="utf-8")
    plot = nearest_rows(data.nearest, params.max_distance)
    return StageResult(output=out, metrics=metrics, plots={NEAREST_PLOT: plot})


def _second_step(
    table: pa.Table, files: Files, hashes: Hashes, params: Params, ctx: StageContext
) -> Checked | None:
    """The verified pairs (``None`` when the hash distance alone decides)."""
    if not params.near or not (params.verify or params.features):
        return None
    measured: dict[str, object] = {}
    if params.features is None:
        candidates = hash_candidates(hashes)
    else:
        candidates, measured = feature_candidates(
            table, files, hashes, params.features, params.max_cosine_distance, ctx
        )
    if not params.verify:
        unchecked = np.full(candidates.i.size, -1)
        accepted = Edges(
            candidates.i, candidates.j, candidates.distance, unchecked, candidates.cosine
        )
        checked = Checked(accepted, int(candidates.i.size), 0, int(candidates.i.size), 0, 0)
    else:
        checked = check(
            table,
            files,
            candidates,
            params.min_matches,
            params.unverified_distance,
            params.max_colour_difference,
            ctx,
        )
    return dataclasses.replace(checked, measured=measured)


def _refused_shots(
    checked: Checked, files: Files, table: pa.Table
) -> list[tuple[Shot, Shot, int, int, float | None]]:
    """The refused candidate pairs, as the report shows them."""
    ids, images, shas = table.column("id"), table.column("image"), table.column("sha256")

    def shot(file: int) -> Shot:
        row = files.first_row[file]
        return Shot(str(images[row].as_py()), str(shas[row].as_py()), str(ids[row].as_py()))

    return [(shot(a), shot(b), d, m, c) for a, b, d, m, c in checked.refused]


def _check_metrics(checked: Checked | None, params: Params) -> dict[str, Any]:
    """What the second step decided, for ``reports/dedupe.json``."""
    if checked is None:
        return {"verify": False}
    return {
        "verify": params.verify,
        "min_matches": params.min_matches,
        "unverified_distance": params.unverified_distance,
        "candidate_pairs": checked.candidates,
        "verified_pairs": checked.matched,
        "pairs_by_hash_alone": checked.by_hash,
        "rejected_pairs": checked.rejected,
        "colour_variants": checked.colour_variants,
        "unreadable_pairs": checked.failed,
        **checked.measured,
    }


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
            matches = -1 if grouping.matches is None else int(grouping.matches[member.index])
            if grouping.matches is not None:
                extra["matches"] = matches if matches >= 0 else None
            if matches >= 0:
                how += f", {matches} keypoints agree"
            if grouping.cosine is not None:
                cosine = float(grouping.cosine[member.index])
                extra["cosine_distance"] = None if np.isnan(cosine) else round(cosine, 6)
            if params.invariant:
                extra["orientation"] = None if other_file == kept_file else turned
            out.remove(member.id, "duplicate", how, source=member.source, **extra)
            decided.removed[member.index] = True
            decided.duplicates[kept.index] += 1
            caption = f"{member.id} · d={dist}"
            caption += f" · {matches} matches" if matches >= 0 else ""
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
                hashes.codes[f, : spec.orientations].tobytes() if good else None
                for f, good in zip(file_of, ok, strict=True)
            ]
            kept = kept.append_column(
                f"{params.algorithm}_orientations",
                pa.array(every, type=pa.binary(spec.nbytes * spec.orientations)),
            )
    return kept.append_column(
        DUPLICATES_COLUMN, pa.array(decided.duplicates[kept_rows], type=pa.int64())
    )
