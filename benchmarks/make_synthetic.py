"""Synthetic image folders made from the real photos, for pipeline benchmarks at any size.

Image ``i`` is a random crop (35-100% of the area, aspect 3:4 to 4:3, maybe mirrored) of
one of the corpus photos, scaled to about ``--size`` pixels on its long side, with a
per-channel colour gain and a random low-frequency shading field (the 8x8 lowest DCT
frequencies, about 30 grey levels): the field makes every image's perceptual hash its own,
so images that share a photo are not near-duplicates of each other (``--check`` measures
it). A fraction ``--near-duplicates`` of the images also get a planted near-duplicate
beside them (``<name>_dup.jpg``): a re-encode, a slight crop or a downscale of the image.

Everything about image ``i`` derives from ``(seed, i)`` alone, so the files are the same
whatever the worker count, and ``--start K --count M`` writes images ``K .. K+M-1``: run
it again with ``--start N --count N/100`` into the same folder to add 1% new, distinct
images. The layout is the class-folder one that ingest reads (``class_03/00000042.jpg``,
``format: imagefolder``; the class is the photo's index modulo ``--classes``), or
``--layout flat`` (unlabelled, ``format: images``).

Prints one JSON object: images written, bytes, images per second, and with ``--check``
how many distinct images are within ``--max-distance`` of another (should be ~0) and how
many planted near-duplicates are (should be ~all).

    .venv/bin/python benchmarks/make_synthetic.py --count 10000 --out /tmp/synth
    .venv/bin/python benchmarks/make_synthetic.py --count 100 --start 10000 --out /tmp/synth
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared/corpora/photos"
FIELD_FREQUENCIES = 8
FIELD_SIGMA = 8.0
"""Std of each shading coefficient: the field's std is about 4x this (grey levels)."""
CHUNK = 64
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Recipe:
    """What to write; the same in every worker."""

    photos: tuple[str, ...]
    out: str
    size: int = 128
    quality: int = 90
    near: float = 0.02
    seed: int = 0
    classes: int = 10
    layout: str = "classes"


@dataclass
class Written:
    """What a chunk wrote."""

    images: int = 0
    duplicates: int = 0
    bytes: int = 0
    planted: list[tuple[str, str, str]] = field(default_factory=list)


_RECIPE: Recipe | None = None
_DECODED: dict[int, Image.Image] = {}
_BASES: dict[int, F32] = {}


def _init(recipe: Recipe) -> None:
    global _RECIPE
    _RECIPE = recipe


def _photo(recipe: Recipe, index: int) -> Image.Image:
    """A corpus photo decoded once per worker, at the smallest JPEG scale >= ``size``."""
    image = _DECODED.get(index)
    if image is None:
        with Image.open(recipe.photos[index]) as opened:
            opened.draft("RGB", (recipe.size, recipe.size))
            image = opened.convert("RGB")
        _DECODED[index] = image
    return image


def _basis(n: int) -> F32:
    """``(n, FIELD_FREQUENCIES)`` DCT-II cosines over ``n`` pixels."""
    basis = _BASES.get(n)
    if basis is None:
        pos = (np.arange(n, dtype=np.float32) + 0.5)[:, None]
        freq = np.arange(FIELD_FREQUENCIES, dtype=np.float32)[None, :]
        basis = np.cos(np.pi * pos * freq / n).astype(np.float32)
        _BASES[n] = basis
    return basis


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _name(recipe: Recipe, index: int, photo: int, suffix: str = "") -> str:
    stem = f"{index:08d}{suffix}.jpg"
    if recipe.layout == "flat":
        return stem
    return f"class_{photo % recipe.classes:02d}/{stem}"


def _draw(recipe: Recipe, index: int) -> tuple[np.random.Generator, bool, int]:
    """Image ``index``'s generator, whether it gets a near-duplicate, and its photo."""
    rng = np.random.default_rng([recipe.seed, index])
    planted = bool(rng.random() < recipe.near)  # drawn first: independent of the rest
    return rng, planted, int(rng.integers(len(recipe.photos)))


def make_image(recipe: Recipe, index: int) -> tuple[list[tuple[str, bytes]], str | None]:
    """Image ``index`` (and its planted near-duplicate): ``[(relative path, JPEG bytes)]``.

    Returns:
        The files, and the kind of near-duplicate planted (``None`` when none).
    """
    rng, planted, photo = _draw(recipe, index)
    source = _photo(recipe, photo)
    width, height = source.size
    area = rng.uniform(0.35, 1.0) * width * height
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    w = int(min(width, round(np.sqrt(area * aspect))))
    h = int(min(height, round(np.sqrt(area / aspect))))
    x = int(rng.integers(width - w + 1))
    y = int(rng.integers(height - h + 1))
    scale = recipe.size / max(w, h)
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    image = source.resize((out_w, out_h), Image.Resampling.BILINEAR, box=(x, y, x + w, y + h))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    coeffs = rng.normal(0.0, FIELD_SIGMA, (FIELD_FREQUENCIES, FIELD_FREQUENCIES))
    coeffs[0, 0] = 0.0
    shading = _basis(out_h) @ coeffs.astype(np.float32) @ _basis(out_w).T
    gain = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    pixels = np.asarray(image, dtype=np.float32) * gain + shading[:, :, None]
    image = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
    data = _jpeg(image, recipe.quality)
    files = [(_name(recipe, index, photo), data)]
    if not planted:
        return files, None
    kind = ("reencode", "crop", "downscale")[int(rng.integers(3))]
    with Image.open(io.BytesIO(data)) as opened:
        copy = opened.convert("RGB")
    if kind == "reencode":
        dup = _jpeg(copy, int(rng.integers(60, 86)))
    elif kind == "crop":
        f = rng.uniform(0.005, 0.02)
        dx, dy = round(out_w * f), round(out_h * f)
        dup = _jpeg(copy.crop((dx, dy, out_w - dx, out_h - dy)), recipe.quality)
    else:
        s = rng.uniform(0.7, 0.9)
        small = (max(1, round(out_w * s)), max(1, round(out_h * s)))
        dup = _jpeg(copy.resize(small, Image.Resampling.LANCZOS), recipe.quality)
    files.append((_name(recipe, index, photo, "_dup"), dup))
    return files, kind


def write_chunk(bounds: tuple[int, int]) -> Written:
    """Pool work item: write images ``start .. stop-1``."""
    recipe = _RECIPE
    assert recipe is not None, "the worker was not initialised"
    out = Path(recipe.out)
    written = Written()
    for index in range(*bounds):
        files, kind = make_image(recipe, index)
        for rel, data in files:
            (out / rel).write_bytes(data)
            written.bytes += len(data)
        written.images += 1
        if kind is not None:
            written.duplicates += 1
            written.planted.append((files[1][0], files[0][0], kind))
    return written


def find_photos(folder: Path) -> tuple[str, ...]:
    """The corpus photos, sorted (the order is part of the seed's meaning)."""
    paths = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg"})
    if not paths:
        raise SystemExit(f"{folder}: no JPEG photos")
    return tuple(paths)


def generate(recipe: Recipe, start: int, count: int, workers: int) -> tuple[Written, float]:
    """Write images ``start .. start+count-1``; returns what was written and the seconds."""
    out = Path(recipe.out)
    out.mkdir(parents=True, exist_ok=True)
    if recipe.layout == "classes":
        for c in range(recipe.classes):
            (out / f"class_{c:02d}").mkdir(exist_ok=True)
    bounds = [(s, min(start + count, s + CHUNK)) for s in range(start, start + count, CHUNK)]
    total = Written()
    started = time.perf_counter()

    def merge(parts: Iterator[Written]) -> None:
        for part in parts:
            total.images += part.images
            total.duplicates += part.duplicates
            total.bytes += part.bytes
            total.planted.extend(part.planted)

    if workers <= 1:
        _init(recipe)
        merge(write_chunk(b) for b in bounds)
    else:
        context = multiprocessing.get_context("forkserver")
        with context.Pool(workers, initializer=_init, initargs=(recipe,)) as pool:
            merge(pool.imap_unordered(write_chunk, bounds))
    total.planted.sort()
    return total, time.perf_counter() - started


def check(
    recipe: Recipe, start: int, count: int, planted: list[tuple[str, str, str]], max_distance: int
) -> dict[str, Any]:
    """Hash what was written as the dedupe stage does and count pairs within the threshold."""
    from pixelpipe.imaging import hamming
    from pixelpipe.imaging.hashing import HashSpec, hash_files, to_words

    names = [_name(recipe, i, _draw(recipe, i)[2]) for i in range(start, start + count)]
    out = Path(recipe.out)
    spec = HashSpec()
    batch = hash_files([out / n for n in names], spec)
    codes = to_words(batch.codes)
    pairs = hamming.brute_force_pairs(codes, max_distance)
    position = {n: i for i, n in enumerate(names)}
    dups = hash_files([out / d for d, _, _ in planted], spec)
    planted_d = hamming.pair_distances(
        np.concatenate([codes, to_words(dups.codes)]),
        np.array([position[o] for _, o, _ in planted], dtype=np.int64),
        np.arange(len(planted), dtype=np.int64) + len(names),
    )
    nearest, _ = hamming.nearest(codes, np.arange(len(names)))
    by_kind: dict[str, list[int]] = {}
    for (_, _, kind), d in zip(planted, planted_d.tolist(), strict=True):
        by_kind.setdefault(kind, []).append(int(d))
    return {
        "max_distance": max_distance,
        "distinct_pairs_within": len(pairs),
        "distinct_images_in_such_pairs": int(np.unique(np.concatenate([pairs.i, pairs.j])).size),
        "nearest_distance_percentiles_0_1_5_50": [
            int(v) for v in np.percentile(nearest, [0, 1, 5, 50]).round()
        ],
        "planted": len(planted),
        "planted_within": int(np.sum(planted_d <= max_distance)),
        "planted_within_by_kind": {
            k: [sum(d <= max_distance for d in v), len(v)] for k, v in sorted(by_kind.items())
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True, help="distinct images to write")
    parser.add_argument("--out", type=Path, required=True, help="folder (created, added to)")
    parser.add_argument("--size", type=int, default=128, help="long side in pixels")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument("--near-duplicates", type=float, default=0.02, help="fraction planted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="first image index")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--layout", choices=["classes", "flat"], default="classes")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--manifest", type=Path, help="write the planted pairs here (JSON)")
    parser.add_argument("--check", action="store_true", help="hash the output, count pairs")
    parser.add_argument("--max-distance", type=int, default=6, help="--check threshold")
    args = parser.parse_args()

    recipe = Recipe(
        photos=find_photos(args.photos),
        out=str(args.out),
        size=args.size,
        quality=args.quality,
        near=args.near_duplicates,
        seed=args.seed,
        classes=args.classes,
        layout=args.layout,
    )
    load_before = os.getloadavg()[0]
    written, seconds = generate(recipe, args.start, args.count, args.workers)
    files = written.images + written.duplicates
    if args.manifest:
        pairs = [{"duplicate": d, "of": o, "kind": k} for d, o, k in written.planted]
        args.manifest.write_text(json.dumps(pairs, indent=1) + "\n")
    report: dict[str, Any] = {
        "benchmark": "make_synthetic",
        "out": str(args.out),
        "layout": args.layout,
        "first_index": args.start,
        "images": written.images,
        "near_duplicates": written.duplicates,
        "files": files,
        "bytes": written.bytes,
        "seconds": round(seconds, 2),
        "images_per_s": round(files / seconds, 1) if seconds else None,
        "workers": args.workers,
        "photos": len(recipe.photos),
        "load_avg_1m_before_after": [load_before, os.getloadavg()[0]],
    }
    if args.check:
        report["check"] = check(recipe, args.start, args.count, written.planted, args.max_distance)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
