"""Perceptual hashing throughput on real photos, against ``imagehash.phash`` in the same run.

Prints one JSON object: images per second for ``imagehash.phash(Image.open(path))`` and
for :func:`pixelpipe.hashing.hash_chunk` (what the dedupe stage maps over its workers),
one process each and with all cores; how often the two give the same hash; and the peak
memory of the whole process tree. Files are read once beforehand so both sides see a warm
page cache; each timing is the best of ``--repeat`` runs (the machine is shared).

    .venv/bin/python benchmarks/bench_hashing.py    # ../shared/corpora/photos/clothing
    .venv/bin/python benchmarks/bench_hashing.py --folder DIR --limit 500
    .venv/bin/python benchmarks/bench_hashing.py --study 8     # the data behind max_distance
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Sequence
from multiprocessing.pool import Pool
from pathlib import Path

import imagehash
import numpy as np
from _memory import PeakMemory
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from pixelpipe.engine.executor import ProcessExecutor
from pixelpipe.imaging import hamming
from pixelpipe.imaging.hashing import HashSpec, hash_chunk, hash_files, hash_image, to_hex, to_words

DEFAULT_FOLDER = Path(__file__).resolve().parents[1].parent / "shared/corpora/photos/clothing"
CHUNK = 256
LANCZOS = Image.Resampling.LANCZOS


def imagehash_chunk(paths: list[str]) -> list[str]:
    """What a user would write: open each file, ``imagehash.phash`` it."""
    out = []
    for path in paths:
        with Image.open(path) as image:
            out.append(str(imagehash.phash(image)))
    return out


def ours_chunk(spec: HashSpec, paths: list[str]) -> list[str]:
    """The dedupe stage's work item, as hex strings."""
    return [to_hex(code[: spec.nbytes]) for code, _ in hash_chunk(spec, paths)]


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def timed(fn: Callable[[], list[str]], repeat: int) -> tuple[float, list[float], list[str]]:
    runs, result = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - started)
    return min(runs), runs, result


def serial(fn: Callable[[list[str]], list[str]], paths: list[str]) -> list[str]:
    return [h for chunk in chunks(paths, CHUNK) for h in fn(chunk)]


def pooled(pool: Pool, fn: Callable[[list[str]], list[str]], paths: list[str]) -> list[str]:
    return [h for part in pool.map(fn, chunks(paths, CHUNK // 4)) for h in part]


def ours_pooled(pool: ProcessExecutor, spec: HashSpec, paths: list[str]) -> list[str]:
    return list(pool.map_chunks(functools.partial(ours_chunk, spec), paths, CHUNK // 4))


def stream(spec: HashSpec, paths: list[str], total: int, workers: int) -> dict[str, object]:
    """Hash ``total`` files (the list cycled) as the dedupe stage does: chunks on a pool,
    results written into one preallocated array. Memory must not grow with ``total``."""
    items = [paths[i % len(paths)] for i in range(total)]
    codes = np.zeros((total, spec.orientations, spec.nbytes), dtype=np.uint8)
    pool = ProcessExecutor(workers)
    try:
        with PeakMemory() as memory:
            started = time.perf_counter()
            work = functools.partial(hash_chunk, spec)
            for index, (code, _) in enumerate(pool.map_chunks(work, items, CHUNK)):
                codes[index] = np.frombuffer(code, dtype=np.uint8).reshape(codes.shape[1:])
            seconds = time.perf_counter() - started
    finally:
        pool.close()
    return {
        "images": total,
        "workers": workers,
        "images_per_s": round(total / seconds, 1),
        "peak_rss_mb": round(memory.peak / 2**20, 1),
    }


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer)


def _watermark(image: Image.Image) -> Image.Image:
    marked = image.convert("RGB")
    draw = ImageDraw.Draw(marked)
    w, h = marked.size
    draw.rectangle((w * 0.6, h * 0.9, w * 0.98, h * 0.98), fill=(255, 255, 255))
    draw.text((w * 0.62, h * 0.91), "(c) watermark", fill=(0, 0, 0))
    return _jpeg(marked, 85)


def _crop(image: Image.Image, f: float) -> Image.Image:
    w, h = image.size
    return _jpeg(image.crop((int(w * f), int(h * f), int(w * (1 - f)), int(h * (1 - f)))), 90)


def _png(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    buffer.seek(0)
    return Image.open(buffer)


# Edits that keep the picture (a dedupe should catch them all) and harder ones.
EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg_q30": lambda im: _jpeg(im, 30),
    "jpeg_q60": lambda im: _jpeg(im, 60),
    "resize_50": lambda im: _jpeg(im.resize((im.width // 2, im.height // 2), LANCZOS), 85),
    "resize_25": lambda im: _jpeg(im.resize((im.width // 4, im.height // 4), LANCZOS), 85),
    "gray": lambda im: _jpeg(im.convert("L"), 90),
    "png": _png,
    "blur_r1": lambda im: _jpeg(im.filter(ImageFilter.GaussianBlur(1)), 90),
    "brightness_+20%": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(1.2), 90),
    "contrast_+20%": lambda im: _jpeg(ImageEnhance.Contrast(im).enhance(1.2), 90),
}
HARD_EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "watermark": _watermark,
    "crop_3%": lambda im: _crop(im, 0.03),
    "crop_5%": lambda im: _crop(im, 0.05),
    "crop_10%": lambda im: _crop(im, 0.10),
}


def study(paths: list[str], hash_size: int, every: int) -> dict[str, object]:
    """The data behind the default threshold: distances of edited copies to their original
    (every ``every``-th photo), and of each photo to its nearest other photo (all)."""
    spec = HashSpec(hash_size=hash_size)
    batch = hash_files(paths, spec)
    words = to_words(batch.codes[batch.ok])
    nearest, _ = hamming.nearest(words, np.arange(words.shape[0]))
    steps = list(range(0, spec.bits // 2 + 1, 2 if hash_size == 8 else 8))
    edits: dict[str, list[int]] = {}
    for path in paths[::every]:
        with Image.open(path) as opened:
            base = hash_image(opened, spec)[0]  # from the file, as the stage hashes it
        with Image.open(path) as opened:
            original = opened.convert("RGB")
        for name, edit in {**EDITS, **HARD_EDITS}.items():
            code = hash_image(edit(original), spec)[0]
            edits.setdefault(name, []).append(int(np.unpackbits(base ^ code).sum()))

    def within(values: np.ndarray) -> dict[str, float]:
        return {str(t): round(float(np.mean(values <= t)), 4) for t in steps}

    easy = np.concatenate([edits[name] for name in EDITS])
    return {
        "hash_bits": spec.bits,
        "photos": int(words.shape[0]),
        "edited_photos": len(paths[::every]),
        "distinct_photos_with_a_neighbour_within": within(nearest),
        "picture_preserving_edits_within": within(easy),
        "per_edit": {
            name: {"max": int(max(v)), "within": within(np.array(v))} for name, v in edits.items()
        },
    }


def agreement(ours: list[str], theirs: list[str]) -> dict[str, object]:
    dist = np.array(
        [bin(int(a, 16) ^ int(b, 16)).count("1") for a, b in zip(ours, theirs, strict=True)]
    )
    hist = np.bincount(dist)
    return {
        "equal": float(np.mean(dist == 0)),
        "mean_bits": float(dist.mean()),
        "max_bits": int(dist.max()),
        "histogram_bits": {str(k): int(v) for k, v in enumerate(hist) if v},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--limit", type=int, default=0, help="first N files only (0: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--stream", type=int, default=0, help="also hash N files (cycled) to check memory"
    )
    parser.add_argument(
        "--study",
        type=int,
        default=0,
        metavar="HASH_SIZE",
        help="instead: the threshold study (edited copies vs distinct photos) at this size",
    )
    parser.add_argument("--every", type=int, default=10, help="study: edit every N-th photo")
    args = parser.parse_args()

    paths = sorted(str(p) for p in args.folder.rglob("*.jpg"))
    if args.limit:
        paths = paths[: args.limit]
    if args.study:
        print(json.dumps(study(paths, args.study, args.every), indent=2))
        return
    for path in paths:  # warm the page cache for both sides
        Path(path).read_bytes()
    load_before = os.getloadavg()
    spec = HashSpec()
    exact = HashSpec(draft=False)
    squared = HashSpec(reframe=True)
    with PeakMemory() as memory:
        ref_s, ref_runs, ref = timed(lambda: serial(imagehash_chunk, paths), args.repeat)
        our_s, our_runs, ours = timed(
            lambda: serial(functools.partial(ours_chunk, spec), paths), args.repeat
        )
        _, _, ours_exact = timed(lambda: serial(functools.partial(ours_chunk, exact), paths), 1)
        # What dedupe hashes with its check on: the whole image and its centred square.
        square_s, square_runs, _ = timed(
            lambda: serial(functools.partial(ours_chunk, squared), paths), args.repeat
        )
        # Pools are started and warmed (imports done) before timing: throughput, not start-up.
        with multiprocessing.get_context("forkserver").Pool(args.workers) as ref_pool:
            pooled(ref_pool, imagehash_chunk, paths[: 4 * args.workers])
            ref_mp_s, _, ref_mp = timed(
                lambda: pooled(ref_pool, imagehash_chunk, paths), args.repeat
            )
        our_pool = ProcessExecutor(args.workers)
        try:
            ours_pooled(our_pool, spec, paths[: 4 * args.workers])
            our_mp_s, _, ours_mp = timed(lambda: ours_pooled(our_pool, spec, paths), args.repeat)
        finally:
            our_pool.close()
    n = len(paths)
    streamed = stream(spec, paths, args.stream, args.workers) if args.stream else None
    print(
        json.dumps(
            {
                "benchmark": "hashing",
                "folder": str(args.folder),
                "images": n,
                "hash": "phash 8x8 (64 bits)",
                "single_process": {
                    "imagehash_images_per_s": round(n / ref_s, 1),
                    "pixelpipe_images_per_s": round(n / our_s, 1),
                    "speedup": round(ref_s / our_s, 2),
                    "imagehash_runs_s": [round(r, 2) for r in ref_runs],
                    "pixelpipe_runs_s": [round(r, 2) for r in our_runs],
                    "pixelpipe_with_centred_square_images_per_s": round(n / square_s, 1),
                    "centred_square_cost": round(square_s / our_s - 1, 3),
                    "pixelpipe_with_centred_square_runs_s": [round(r, 2) for r in square_runs],
                },
                "all_cores": {
                    "workers": args.workers,
                    "imagehash_images_per_s": round(n / ref_mp_s, 1),
                    "pixelpipe_images_per_s": round(n / our_mp_s, 1),
                    "speedup": round(ref_mp_s / our_mp_s, 2),
                },
                "agreement_with_imagehash": {
                    "draft (default)": agreement(ours, ref),
                    "draft=False": agreement(ours_exact, ref),
                },
                "same_results_serial_and_pooled": ours == ours_mp and ref == ref_mp,
                "streamed": streamed,
                "peak_rss_mb": round(memory.peak / 2**20, 1),
                "cpus": os.cpu_count(),
                "load_avg_1m_before_after": [load_before[0], os.getloadavg()[0]],
                "python": platform.python_version(),
                "pillow": Image.__version__,
                "imagehash": imagehash.__version__,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
