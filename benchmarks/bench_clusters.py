"""Duplicate clusters before and after: union-find components against star clusters.

Prints one JSON object. For real photos (``../shared/corpora/photos/clothing``, hashed as
the dedupe stage hashes them, kept by the ``largest`` policy) and for a synthetic set
(uniform random 64-bit codes with planted near copies, planted chains of copies of copies
and one family of look-alikes around a prototype, kept in a random order), it compares

- ``union_find``: the old clusters (connected components of the pairs within the
  threshold), one kept per component, the rest removed;
- ``star``: :func:`pixelpipe.imaging.clusters.star_clusters` (what the stage does now),

by images removed, clusters, the largest cluster, the largest distance of a removed image
to the image kept for it and how many are over the threshold, chains cut, planted copies
removed, and the clustering time (the search is the same for both and timed apart).

    .venv/bin/python benchmarks/bench_clusters.py                       # t = 6 and 8
    .venv/bin/python benchmarks/bench_clusters.py --items 1000000 --thresholds 6
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from _memory import PeakMemory
from PIL import Image

from pixelpipe.imaging import hamming
from pixelpipe.imaging.clusters import star_clusters
from pixelpipe.imaging.hashing import HashSpec, hash_files, to_words
from stages._dedupe.decide import Member, keep_order

DEFAULT_FOLDER = Path(__file__).resolve().parents[1].parent / "shared/corpora/photos/clothing"
U64_MAX = np.iinfo(np.uint64).max


def flip(rng: np.random.Generator, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each code with ``counts[k]`` distinct random bits flipped."""
    out = codes.copy()
    for k, count in enumerate(counts.tolist()):
        for bit in rng.choice(64, size=count, replace=False).tolist():
            out[k] ^= np.uint64(1) << np.uint64(bit)
    return out


def synthetic(
    items: int, copies: float, chains: int, family: int, threshold: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random codes with planted structure.

    - ``copies * items`` near copies of random originals, 1..threshold bits away;
    - ``chains`` random walks of 3..8 codes, each step 2..threshold bits from the last;
    - one family of ``family`` look-alikes, each 3..6 bits from one prototype (product
      photos on a plain background): pairs within the threshold link them, ends far apart.

    Returns ``(codes (n, 1), copy items, their originals)``.
    """
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, U64_MAX, size=items, dtype=np.uint64, endpoint=True)
    slots = iter(rng.permutation(items).tolist())
    planted = int(items * copies)
    originals = np.array([next(slots) for _ in range(planted)], dtype=np.int64)
    targets = np.array([next(slots) for _ in range(planted)], dtype=np.int64)
    codes[targets] = flip(rng, codes[originals], rng.integers(1, threshold + 1, size=planted))
    for _ in range(chains):
        walk = [next(slots) for _ in range(int(rng.integers(3, 9)))]
        for a, b in itertools.pairwise(walk):
            step = rng.integers(2, threshold + 1, size=1)
            codes[b] = flip(rng, codes[a : a + 1], step)[0]
    members = np.array([next(slots) for _ in range(family)], dtype=np.int64)
    prototype = codes[members[:1]].repeat(family)
    codes[members] = flip(rng, prototype, rng.integers(3, 7, size=family))
    return codes[:, None], targets, originals


def compare(
    codes: np.ndarray,
    threshold: int,
    priority: np.ndarray,
    planted: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Search once, then cluster both ways and measure what each would remove."""
    started = time.perf_counter()
    found = hamming.search(codes, threshold)
    search_s = time.perf_counter() - started
    items = np.arange(codes.shape[0])
    pairs = found.pairs()
    out: dict[str, Any] = {
        "threshold": threshold,
        "pairs": len(pairs),
        "search_s": round(search_s, 2),
    }

    started = time.perf_counter()
    label = found.clusters()
    order = np.lexsort((priority, label))
    first = np.ones(order.size, dtype=bool)
    first[1:] = label[order][1:] != label[order][:-1]
    kept_of_label = np.zeros(codes.shape[0], dtype=np.int64)
    kept_of_label[label[order[first]]] = order[first]
    old_kept = kept_of_label[label]
    old_s = time.perf_counter() - started

    started = time.perf_counter()
    stars = star_clusters(codes, pairs.i, pairs.j, threshold, priority)
    new_s = time.perf_counter() - started

    for name, kept, seconds, split in (
        ("union_find", old_kept, old_s, None),
        ("star", stars.centre, new_s, int(stars.split_components().size)),
    ):
        removed = kept != items
        far = hamming.pair_distances(codes, items[removed], kept[removed])
        sizes = np.bincount(kept, minlength=codes.shape[0])
        row: dict[str, Any] = {
            "removed": int(removed.sum()),
            "removed_pct": round(100 * float(removed.mean()), 2),
            "clusters": int((sizes > 1).sum()),
            "largest_cluster": int(sizes.max(initial=0)),
            "max_removed_distance": int(far.max(initial=0)),
            "removed_over_threshold": int((far > threshold).sum()),
            "clustering_s": round(seconds, 3),
        }
        if split is not None:
            row["chains_split"] = split
            row["largest_component"] = int(np.bincount(stars.component).max(initial=0))
        if planted is not None:  # a copy and its original end in one cluster
            copy, original = planted
            row["planted_pairs_joined"] = int((kept[copy] == kept[original]).sum())
        out[name] = row
    return out


def real(folder: Path, thresholds: list[int]) -> dict[str, Any]:
    """The clothing photos, hashed as the stage does, kept by the ``largest`` policy."""
    paths = sorted(folder.glob("*.jpg"))
    batch = hash_files(paths, HashSpec())
    paths = [p for p, ok in zip(paths, batch.ok.tolist(), strict=True) if ok]
    codes = to_words(batch.codes[batch.ok])
    members = []
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            members.append(Member(index, path.name, path.name, image.width, image.height, 0))
    ranked = sorted(members, key=lambda m: keep_order(m, "largest"))
    priority = np.empty(len(paths), dtype=np.int64)
    priority[[m.index for m in ranked]] = np.arange(len(ranked))
    out: dict[str, Any] = {"images": len(paths)}
    for threshold in thresholds:
        result = compare(codes, threshold, priority)
        # The worst removals union-find made: look at these pictures side by side.
        label = hamming.search(codes, threshold).clusters()
        worst = []
        for group in np.unique(label).tolist():
            members_of = np.flatnonzero(label == group)
            if members_of.size < 2:
                continue
            kept = members_of[np.argmin(priority[members_of])]
            d = hamming.pair_distances(codes, members_of, np.full(members_of.size, kept))
            for item, dist in zip(members_of.tolist(), d.tolist(), strict=True):
                if dist > threshold:
                    worst.append((dist, paths[item].name, paths[int(kept)].name))
        worst.sort(reverse=True)
        result["union_find_worst"] = [
            {"removed": a, "kept": b, "distance": d} for d, a, b in worst[:5]
        ]
        out[f"t{threshold}"] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--copies", type=float, default=0.02, help="planted near copies")
    parser.add_argument("--chains", type=int, default=500, help="planted chains of copies")
    parser.add_argument("--family", type=int, default=2000, help="look-alikes of one code")
    parser.add_argument("--thresholds", type=int, nargs="+", default=[6, 8])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--no-real", action="store_true", help="skip the photos")
    args = parser.parse_args()

    load_before = os.getloadavg()
    report: dict[str, Any] = {"benchmark": "clusters"}
    with PeakMemory() as memory:
        if not args.no_real and args.folder.is_dir():
            report["real"] = {"folder": args.folder.name, **real(args.folder, args.thresholds)}
        synth: dict[str, Any] = {
            "items": args.items,
            "planted_copies": int(args.items * args.copies),
            "planted_chains": args.chains,
            "family": args.family,
        }
        for threshold in args.thresholds:
            codes, targets, originals = synthetic(
                args.items, args.copies, args.chains, args.family, threshold, args.seed
            )
            priority = np.random.default_rng(args.seed + 1).permutation(args.items)
            synth[f"t{threshold}"] = compare(codes, threshold, priority, (targets, originals))
        report["synthetic"] = synth
    report.update(
        {
            "peak_rss_mb": round(memory.peak / 2**20, 1),
            "cpus": os.cpu_count(),
            "load_avg_1m_before_after": [load_before[0], os.getloadavg()[0]],
            "python": platform.python_version(),
            "numpy": np.__version__,
        }
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
