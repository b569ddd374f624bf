"""Near-duplicate decisions on real photos: pHash alone against pHash + geometric verification.

Two steps (what the dedupe stage is getting): candidates within a pHash distance
(:mod:`pixelpipe.imaging.hamming`), then a candidate is a duplicate when
:func:`pixelpipe.imaging.verify.verify_read` finds ``MIN_MATCHES`` RANSAC inliers, or when
an image is too plain to verify (under ``FEW_KEYPOINTS``) and the distance is at most
``PLAIN_DISTANCE``. Prints one JSON object: (1) recall per edit and threshold, both ways, on
seeded edited copies of every ``--every``-th photo and on the real pairs (and look-alikes)
of ``../shared/corpora/neardup``; (2) false pairs among the photos, all treated as distinct,
with the candidates with the most inliers named (the folder's own true duplicates); (3) the
cost of hashing, search and verification (pairs/s, one process and ``--workers``).

    .venv/bin/python benchmarks/bench_neardup.py --markdown        # tables after the JSON
    .venv/bin/python benchmarks/bench_neardup.py --limit 6 --every 3 --markdown out.md
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import itertools
import json
import os
import platform
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFont

from pixelpipe.engine.executor import ProcessExecutor, chunk_size
from pixelpipe.imaging import hamming
from pixelpipe.imaging.hashing import HashSpec, hash_files, hash_image, to_words
from pixelpipe.imaging.verify import (
    FEW_KEYPOINTS,
    MAX_COLOUR_DIFFERENCE,
    MIN_MATCHES,
    Verified,
    VerifySpec,
    verify_read,
)

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
THRESHOLDS = (4, 6, 8, 10, 12, 14)
PLAIN_DISTANCE = 6
"""Pairs too plain to verify are duplicates by the hash alone within this distance."""
SEED = 0
SPEC = VerifySpec()
HASH = HashSpec(reframe=True)  # pHash 8x8, draft decoding, and the centred square: as dedupe
LANCZOS = Image.Resampling.LANCZOS
TOP = 12  # candidate pairs listed by inliers

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]
Json = dict[str, Any]


def read_file(path: str) -> bytes:
    """Verification's reader for files (a module function: it goes to the workers)."""
    return Path(path).read_bytes()


def encode(image: Image.Image, quality: int = 90) -> bytes:
    """The image as JPEG bytes, as an edited copy would be stored."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _watermark(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Semi-transparent text across the middle, an opaque dark box in a random corner."""
    w, h = image.size
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    text = "(c) SAMPLE WATERMARK"
    probe = ImageFont.load_default(size=100)
    font = ImageFont.load_default(size=max(8, int(100 * 0.8 * w / probe.getlength(text))))
    draw.text((w / 2, h / 2), text, font=font, fill=(255, 255, 255, 128), anchor="mm")
    box_w, box_h = round(0.25 * w), round(0.12 * h)
    x = round(0.02 * w) if rng.integers(2) else w - box_w - round(0.02 * w)
    y = round(0.02 * h) if rng.integers(2) else h - box_h - round(0.02 * h)
    draw.rectangle((x, y, x + box_w - 1, y + box_h - 1), fill=(25, 25, 25, 255))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def _crop(share: float) -> Edit:
    """Remove ``share`` of the width and of the height in total, at a random offset."""

    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = image.size
        cut_w, cut_h = round(w * share), round(h * share)
        left, top = int(rng.integers(cut_w + 1)), int(rng.integers(cut_h + 1))
        return image.crop((left, top, left + w - cut_w, top + h - cut_h))

    return edit


def _squash(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Resize to a 16:10 aspect without cropping (width kept)."""
    return image.resize((image.width, round(image.width * 10 / 16)), LANCZOS)


def _reframe(aspect: float) -> Edit:
    """Centre crop to ``aspect`` (width / height), then a 300 px thumbnail."""

    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = image.size
        cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
        left, top = (w - cw) // 2, (h - ch) // 2
        framed = image.crop((left, top, left + cw, top + ch))
        framed.thumbnail((300, 300), LANCZOS)
        return framed

    return edit


EDITS: dict[str, tuple[Edit, int]] = {  # edit, JPEG quality of the stored copy
    "resize_25%": (lambda im, rng: im.resize((im.width // 4, im.height // 4), LANCZOS), 90),
    "jpeg_q30": (lambda im, rng: im, 30),
    "grayscale": (lambda im, rng: im.convert("L"), 90),
    "watermark": (_watermark, 90),
    "crop_5%": (_crop(0.05), 90),
    "crop_10%": (_crop(0.10), 90),
    "crop_15%": (_crop(0.15), 90),
    "crop_20%": (_crop(0.20), 90),
    "squash_16:10": (_squash, 90),
    "reframe_4:5": (_reframe(4 / 5), 90),
    "reframe_16:10": (_reframe(16 / 10), 90),
    "reframe_1:1": (_reframe(1.0), 90),
}


def bits_apart(a: np.ndarray, b: np.ndarray) -> int:
    """Hamming distance of two packed hashes."""
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


def accepted(distance: int, verified: Verified, threshold: int) -> bool:
    """The two-step decision for one pair at one candidate threshold."""
    inliers, fewest, colour, error = verified
    if error is not None or distance > threshold:
        return False
    matched = inliers >= MIN_MATCHES and colour <= MAX_COLOUR_DIFFERENCE
    return matched or (fewest < FEW_KEYPOINTS and distance <= PLAIN_DISTANCE)


def ordered(a: str, b: str, digest: dict[str, str]) -> tuple[str, str, int]:
    """A pair in the dedupe stage's order: by sha256 of the bytes, neither turned."""
    return (a, b, 0) if (digest[a], a) <= (digest[b], b) else (b, a, 0)


Measured = tuple[int, int, Verified]
"""One pair: its pHash distance, its candidate distance (the smaller of the whole images'
and their centred squares', what the stage searches) and its verification."""


def apart(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """``(pHash distance, candidate distance)`` of two ``(2, nbytes)`` hash rows."""
    plain = bits_apart(a[0], b[0])
    return plain, min(plain, bits_apart(a[1], b[1]))


def rates(measured: Sequence[Measured], thresholds: Sequence[int]) -> Json:
    """Share of pairs each rule accepts at each threshold, with the pairs' figures."""
    n = max(1, len(measured))
    dist = np.array([d for d, _, _ in measured] or [0])
    inl = np.array([v[0] for _, _, v in measured] or [0])
    return {
        "pairs": len(measured),
        "median_distance": float(np.median(dist)),
        "max_distance": int(dist.max()),
        "median_inliers": float(np.median(inl)),
        "min_inliers": int(inl.min()),
        "verified_share": round(sum(v[0] >= MIN_MATCHES for _, _, v in measured) / n, 4),
        "errors": sum(v[2] is not None for _, _, v in measured),
        "phash": {str(t): round(sum(d <= t for d, _, _ in measured) / n, 4) for t in thresholds},
        "two_step": {
            str(t): round(sum(accepted(c, v, t) for _, c, v in measured) / n, 4) for t in thresholds
        },
    }


def edited_recall(
    paths: list[str], codes: np.ndarray, every: int, thresholds: Sequence[int]
) -> Json:
    """Recall on seeded edited copies of every ``every``-th photo, per edit."""
    measured: dict[str, list[Measured]] = {name: [] for name in EDITS}
    for index in range(0, len(paths), every):
        original = Path(paths[index]).read_bytes()
        blobs = {"original": original}
        digest = {"original": hashlib.sha256(original).hexdigest()}
        with Image.open(io.BytesIO(original)) as opened:
            rgb = opened.convert("RGB")
        for name, (edit, quality) in EDITS.items():
            rng = np.random.default_rng([SEED, index, zlib.crc32(name.encode())])
            blobs[name] = encode(edit(rgb, rng), quality)
            digest[name] = hashlib.sha256(blobs[name]).hexdigest()
        pairs = [ordered("original", name, digest) for name in EDITS]
        verified = verify_read(SPEC, blobs.__getitem__, pairs)
        for name, result in zip(EDITS, verified, strict=True):
            with Image.open(io.BytesIO(blobs[name])) as opened:
                code = hash_image(opened, HASH)
            measured[name].append((*apart(codes[index], code), result))
    return {name: rates(values, thresholds) for name, values in measured.items()}


def pair_record(a: str, b: str, distance: int, verified: Verified) -> Json:
    """One pair as the report names it."""
    inliers, fewest, colour, _ = verified
    names = {"a": Path(a).name, "b": Path(b).name}
    figures = {"inliers": inliers, "fewest_keypoints": fewest, "colour_difference": colour}
    return {**names, "distance": distance, **figures}


_UK = "imagededup/mixed_images/ukbench00120"
REAL_ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (row, kind, files under --neardup); a single folder means all pairs of its photos
    ("forest: 5 versions, all pairs", "match", ("jenssegers_imagehash/forest",)),
    ("ukbench00120 vs resize (300x300)", "match", (f"{_UK}.jpg", f"{_UK}_resize.jpg")),
    ("ukbench00120 vs grayscale", "match", (f"{_UK}.jpg", f"{_UK[:10]}/ukbench00120_gray.jpg")),
    ("ukbench00120 vs hflip", "expected_miss", (f"{_UK}.jpg", f"{_UK}_hflip.jpg")),
    ("ukbench00120 vs rotation (~30 deg)", "expected_miss", (f"{_UK}.jpg", f"{_UK}_rotation.jpg")),
    ("office: 3 look-alikes", "distinct", ("jenssegers_imagehash/office",)),
    ("imagededup: 10 distinct objects", "distinct", ("imagededup/base_images",)),
)
"""The real pairs: ``match`` must match, ``expected_miss`` (flips, rotations) is not
expected to, ``distinct`` are different pictures (what they accept is false pairs)."""


def real_recall(neardup: Path, thresholds: Sequence[int]) -> Json:
    """Each real row (skipped when its files are absent): its pairs and what each rule accepts."""
    out: Json = {}
    for row, kind, names in REAL_ROWS:
        files = [str(neardup / name) for name in names]
        if len(files) == 1:
            files = sorted(str(p) for p in Path(files[0]).glob("*.jpg"))
        if len(files) < 2 or not all(Path(f).is_file() for f in files):
            continue
        code = dict(zip(files, hash_files(files, HASH).codes, strict=True))
        digest = {f: hashlib.sha256(read_file(f)).hexdigest() for f in files}
        pairs = sorted(ordered(a, b, digest) for a, b in itertools.combinations(files, 2))
        verified = verify_read(SPEC, read_file, pairs)
        distances = [apart(code[a], code[b]) for a, b, _ in pairs]
        measured = [(d, c, v) for (d, c), v in zip(distances, verified, strict=True)]
        out[row] = {
            "kind": kind,
            **rates(measured, thresholds),
            "detail": [
                pair_record(a, b, d, v)
                for (a, b, _), (d, _), v in zip(pairs, distances, verified, strict=True)
            ],
        }
    return out


def _verify_pooled(
    pairs: list[tuple[str, str, int]], chunk: int, workers: int
) -> tuple[float, list[Verified]]:
    """Seconds and results on a warm pool (started and imports done before timing)."""
    pool = ProcessExecutor(workers)
    try:
        work = functools.partial(verify_read, SPEC, read_file)
        list(pool.map_chunks(work, pairs[: 2 * workers], 1))
        started = time.perf_counter()
        out: list[Verified] = list(pool.map_chunks(work, pairs, chunk))
        return time.perf_counter() - started, out
    finally:
        pool.close()


def _partners(i: np.ndarray, j: np.ndarray, keep: np.ndarray) -> int:
    return int(np.unique(np.concatenate([i[keep], j[keep]])).size)


def hash_photos(paths: list[str]) -> tuple[np.ndarray, dict[str, str], float, int]:
    """Packed hashes ``(n, 2, nbytes)`` (whole image, centred square), sha256 digests,
    hashing seconds, unreadable files."""
    digest = {p: hashlib.sha256(read_file(p)).hexdigest() for p in paths}  # warms the cache
    started = time.perf_counter()
    batch = hash_files(paths, HASH)
    seconds = time.perf_counter() - started
    return batch.codes, digest, seconds, sum(e is not None for e in batch.errors)


def false_pairs(
    paths: list[str],
    codes: np.ndarray,
    digest: dict[str, str],
    thresholds: Sequence[int],
    workers: int,
) -> tuple[Json, Json]:
    """False pairs among the photos (all treated as distinct), and what finding them cost.

    The candidates within the largest threshold are verified once; lower thresholds reuse
    the results.
    """
    words, squares = to_words(codes[:, :1]), to_words(codes[:, 1:])
    search_s: dict[str, float] = {}
    found = hamming.Pairs.empty()
    for t in thresholds:
        started = time.perf_counter()
        whole, square = hamming.search(words, t).pairs(), hamming.search(squares, t).pairs()
        found = hamming.Pairs.build(
            np.concatenate([whole.i, square.i]),
            np.concatenate([whole.j, square.j]),
            np.concatenate([whole.distance, square.distance]),
        )
        search_s[str(t)] = round(time.perf_counter() - started, 4)
    index = {p: k for k, p in enumerate(paths)}
    pairs = sorted(
        ordered(paths[a], paths[b], digest)
        for a, b in zip(found.i.tolist(), found.j.tolist(), strict=True)
    )
    i = np.array([index[a] for a, _, _ in pairs], dtype=np.int64)
    j = np.array([index[b] for _, b, _ in pairs], dtype=np.int64)
    dist = hamming.pair_distances(words, i, j) if pairs else np.zeros(0, dtype=np.int64)
    near = hamming.pair_distances(squares, i, j) if pairs else np.zeros(0, dtype=np.int64)
    candidate = np.minimum(dist, near)
    chunk = chunk_size(len(pairs), workers)
    started = time.perf_counter()
    parts = [pairs[k : k + chunk] for k in range(0, len(pairs), chunk)]
    verified = [v for part in parts for v in verify_read(SPEC, read_file, part)]  # as the pool
    serial_s = time.perf_counter() - started
    pooled_s, pooled = _verify_pooled(pairs, chunk, workers) if pairs else (0.0, [])
    inl = np.array([v[0] for v in verified], dtype=np.int64)
    fewest = np.array([v[1] for v in verified], dtype=np.int64)
    n = max(1, len(paths))
    per_threshold: Json = {}
    for t in thresholds:
        within = dist <= t
        kept = np.array(
            [accepted(int(c), v, t) for c, v in zip(candidate, verified, strict=True)],
            dtype=bool,
        )
        per_threshold[str(t)] = {
            "phash_pairs": int(within.sum()),
            "phash_photo_share": round(_partners(i, j, within) / n, 4),
            "two_step_pairs": int(kept.sum()),
            "two_step_photo_share": round(_partners(i, j, kept) / n, 4),
        }
    edges = [0, 10, 15, MIN_MATCHES, 30, 50, 100, 1 << 30]
    histogram = {
        f"{lo}-{hi - 1}" if hi < 1 << 30 else f"{lo}+": int(((inl >= lo) & (inl < hi)).sum())
        for lo, hi in itertools.pairwise(edges)
    }
    top = sorted(range(len(pairs)), key=lambda k: (-int(inl[k]), pairs[k]))[:TOP]
    report = {
        "photos": len(paths),
        "candidates_within": max(thresholds),
        "candidate_pairs": len(pairs),
        "decided_by_hash_alone_too_plain": int((fewest < FEW_KEYPOINTS).sum()),
        "verify_errors": sum(v[2] is not None for v in verified),
        "per_threshold": per_threshold,
        "inliers_histogram": histogram,
        "top_by_inliers": [pair_record(*pairs[k][:2], int(dist[k]), verified[k]) for k in top],
    }
    cost = {
        "search_s": search_s,
        "verify_pairs": len(pairs),
        "verify_chunk": chunk,
        "verify_1_process_s": round(serial_s, 3),
        "verify_1_process_pairs_per_s": round(len(pairs) / serial_s, 1) if pairs else None,
        "verify_workers": workers,
        "verify_pooled_s": round(pooled_s, 3),
        "verify_pooled_pairs_per_s": round(len(pairs) / pooled_s, 1) if pairs else None,
        "same_results_serial_and_pooled": verified == pooled,
    }
    return report, cost


def _table(header: str, rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table; ``header`` is its column names separated by ``|``."""
    lines = [f"| {header} |", "|" + "---|" * (header.count("|") + 1)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def markdown(report: Json) -> str:
    """The report's tables as Markdown."""
    ts = [str(t) for t in report["thresholds"]]
    within = " | ".join(f"<= {t}" for t in ts)
    real = [(f"{n} ({r['kind']})", r) for n, r in report["recall"]["real"].items()]
    rows = [*report["recall"]["edits"].items(), *real]
    alone = [
        [k, r["pairs"], r["median_distance"]] + [_pct(r["phash"][t]) for t in ts] for k, r in rows
    ]
    both = [
        [k, r["pairs"], r["min_inliers"], r["median_inliers"], _pct(r["verified_share"])]
        + [_pct(r["two_step"][t]) for t in ts]
        for k, r in rows
    ]
    false, cost = report["false_pairs"], report["cost"]
    n, per = false["photos"], false["per_threshold"]
    cols = ("phash_pairs", "phash_photo_share", "two_step_pairs", "two_step_photo_share")
    shares = [[t, *(_pct(p[c]) if "share" in c else p[c] for c in cols)] for t, p in per.items()]
    keys = ("inliers", "distance", "fewest_keypoints", "a", "b")
    top = [[p[k] for k in keys] for p in false["top_by_inliers"]]
    histogram = ", ".join(f"{k}: {v}" for k, v in false["inliers_histogram"].items())
    verify = f"verify {cost['verify_pairs']} pairs"
    one, pool = cost["verify_1_process_pairs_per_s"], cost["verify_pooled_pairs_per_s"]
    costs = [
        [f"hash {n} photos, 1 process", cost["hash_s"], f"{cost['hash_images_per_s']} images/s"],
        *([f"search <= {t}", s, ""] for t, s in cost["search_s"].items()),
        [f"{verify}, 1 process", cost["verify_1_process_s"], f"{one} pairs/s"],
        [f"{verify}, {cost['verify_workers']} workers", cost["verify_pooled_s"], f"{pool} pairs/s"],
    ]
    return "\n".join(
        [
            f"## Recall on edited copies ({report['edited_photos']} photos, seed {SEED})",
            "",
            "pHash alone: share of (original, copy) pairs within each distance.",
            "",
            *_table(f"edit | pairs | median distance | {within}", alone),
            f"Two-step: within the candidate distance and (>= {MIN_MATCHES} inliers, or fewer "
            f"than {FEW_KEYPOINTS} keypoints and distance <= {PLAIN_DISTANCE}). 'verified': "
            "share with enough inliers at any distance. Rows marked distinct are different "
            "pictures: what they accept is false pairs.",
            "",
            *_table(f"edit | pairs | min inliers | median inliers | verified | {within}", both),
            f"## False pairs among {n} distinct photos",
            "",
            *_table(
                "threshold | pHash pairs | photos paired | two-step pairs | photos paired", shares
            ),
            f"Candidates within {false['candidates_within']}: {false['candidate_pairs']}; by "
            f"inliers: {histogram}; too plain to verify: "
            f"{false['decided_by_hash_alone_too_plain']}. The candidates with the most inliers "
            "(the folder's own true duplicates are among them):",
            "",
            *_table("inliers | distance | fewest keypoints | a | b", top),
            "## Cost",
            "",
            *_table("step | seconds | rate", costs),
        ]
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--photos", type=Path, default=CORPORA / "photos/clothing", help="distinct .jpg photos")
    add("--neardup", type=Path, default=CORPORA / "neardup", help="the real pairs' corpora")
    add("--limit", type=int, default=0, help="first N photos only (0: all)")
    add("--every", type=int, default=20, help="edit every N-th photo")
    add("--thresholds", type=int, nargs="+", default=list(THRESHOLDS), help="candidate distances")
    add("--workers", type=int, default=2, help="workers of the pooled verification")
    add("--markdown", nargs="?", const="-", metavar="FILE", help="also Markdown (after the JSON)")
    args = parser.parse_args(argv)
    problems = [f"--thresholds: {t} is not from 0 to 31" for t in args.thresholds if t // 32]
    for flag, low in (("limit", 0), ("every", 1), ("workers", 1)):
        if getattr(args, flag) < low:
            problems.append(f"--{flag} must be at least {low}, got {getattr(args, flag)}")
    if not problems and not sorted(args.photos.glob("*.jpg"))[:1]:
        problems.append(f"--photos: no .jpg photos in {args.photos}")
    if problems:
        parser.error("; ".join(problems))
    args.thresholds = sorted(set(args.thresholds))
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark; print the JSON (and the Markdown when asked)."""
    args = _arguments(argv)
    began = time.perf_counter()
    load_before = os.getloadavg()
    paths = sorted(str(p) for p in args.photos.glob("*.jpg"))
    paths = paths[: args.limit] if args.limit else paths
    codes, digest, hash_s, unreadable = hash_photos(paths)
    false, cost = false_pairs(paths, codes, digest, args.thresholds, args.workers)
    started = time.perf_counter()
    edits = edited_recall(paths, codes, args.every, args.thresholds)
    edits_s = time.perf_counter() - started
    report: Json = {
        "benchmark": "neardup",
        "photos_folder": str(args.photos),
        "photos": len(paths),
        "unreadable_photos": unreadable,
        "edited_photos": len(range(0, len(paths), args.every)),
        "every": args.every,
        "seed": SEED,
        "thresholds": args.thresholds,
        "rule": {
            "min_matches": MIN_MATCHES,
            "few_keypoints": FEW_KEYPOINTS,
            "plain_distance": PLAIN_DISTANCE,
            "hash": asdict(HASH),
            "verify": asdict(SPEC),
        },
        "recall": {"edits": edits, "real": real_recall(args.neardup, args.thresholds)},
        "false_pairs": false,
        "cost": {
            "hash_s": round(hash_s, 3),
            "hash_images_per_s": round(len(paths) / max(hash_s, 1e-9), 1),
            **cost,
            "edits_and_their_verification_s": round(edits_s, 2),
            "total_s": round(time.perf_counter() - began, 1),
        },
        "cpus": os.cpu_count(),
        "load_avg_1m_before_after": [load_before[0], os.getloadavg()[0]],
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
    }
    print(json.dumps(report, indent=2))
    if args.markdown == "-":
        print(markdown(report))
    elif args.markdown:
        Path(args.markdown).write_text(markdown(report) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
