"""Near duplicates by embedding: all pairs within a cosine distance among synthetic vectors.

Prints one JSON object: for ``exact`` and ``hnsw`` (:func:`pixelpipe.imaging.vectors.
cosine_pairs`), the search time, pairs found, recall against brute force on a sample of
query rows and on every planted pair, and peak memory of the process; whether both methods
agree; and, in the same run, the plain-library code a user would otherwise write,
scikit-learn's ``NearestNeighbors(metric="cosine", radius=...).radius_neighbors``, on the
first ``--baseline-items`` vectors (it compares every pair: its time grows with the
square of the items), beside ``exact`` on the same vectors.

The vectors look like image embeddings rather than uniform noise: every vector shares a
common direction and one of ``--topics`` topic directions, plus its own (cosine
similarity about 1/3 between random items, 2/3 within a topic, as with CLIP), and
``--near`` of them are planted near copies of others (1-3 copies of a base, at cosine
distances spread evenly over ``[0, 2 * max_distance]``, so about half are within).

    .venv/bin/python benchmarks/bench_vectors.py                    # 100k x 512 (CLIP B/32)
    .venv/bin/python benchmarks/bench_vectors.py --items 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import faiss  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import sklearn
from _memory import PeakMemory
from sklearn.neighbors import NearestNeighbors

from pixelpipe.imaging import vectors


def synthetic(
    items: int, dim: int, near: float, max_distance: float, topics: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embedding-like float32 vectors with planted near copies.

    Returns ``(vectors (items, dim), copy rows, their base rows)``.
    """
    rng = np.random.default_rng(seed)

    def unit(x: np.ndarray) -> np.ndarray:
        return np.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))

    common = unit(rng.standard_normal(dim))
    centres = unit(rng.standard_normal((topics, dim)))
    out = np.empty((items, dim), dtype=np.float32)
    step = 65_536
    for start in range(0, items, step):
        size = min(step, items - start)
        topic = rng.integers(0, topics, size=size)
        noise = unit(rng.standard_normal((size, dim)))
        out[start : start + size] = unit(common + centres[topic] + noise)
    bases_count = max(1, int(items * near / 2))
    copies = rng.integers(1, 4, size=bases_count)
    planted = int(copies.sum())
    slots = rng.permutation(items)
    bases = slots[:bases_count]
    targets = slots[bases_count : bases_count + planted]
    source = np.repeat(bases, copies)[: targets.size]
    # distance ~ s**2 / 2 for noise of length s: spread the distances over [0, 2 * max]
    length = np.sqrt(2 * rng.uniform(0, 2 * max_distance, size=targets.size))
    noise = unit(rng.standard_normal((targets.size, dim))) * length[:, None]
    out[targets] = unit(out[source] + noise)
    return out, targets.astype(np.int64), source.astype(np.int64)


def planted_recall(
    unit: np.ndarray,
    found: vectors.VectorPairs,
    targets: np.ndarray,
    bases: np.ndarray,
    limit: float,
) -> tuple[int, float]:
    """Planted pairs within ``limit`` and the share of them in ``found``."""
    dist = vectors.pair_distances(unit, targets, bases)
    near = (dist <= limit) & (targets != bases)
    items = unit.shape[0]
    keys = np.minimum(targets, bases)[near] * items + np.maximum(targets, bases)[near]
    reported = found.i * items + found.j
    hits = int(np.isin(keys, reported).sum())
    return int(near.sum()), hits / max(1, int(near.sum()))


def measure(data: np.ndarray, args: argparse.Namespace, method: vectors.Method) -> dict[str, Any]:
    before = PeakMemory.tree_rss()
    with PeakMemory() as memory:
        started = time.perf_counter()
        found = vectors.cosine_pairs(data, args.max_distance, method=method, threads=args.threads)
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "pairs": len(found),
        "rss_before_mb": round(before / 2**20, 1),
        "peak_rss_mb": round(memory.peak / 2**20, 1),
        "result": found,
    }


def sklearn_pairs(data: np.ndarray, radius: float) -> tuple[vectors.VectorPairs, float, float]:
    """What a user writes with scikit-learn: brute-force cosine radius neighbours."""
    with PeakMemory() as memory:
        started = time.perf_counter()
        model = NearestNeighbors(radius=radius, metric="cosine", algorithm="brute")
        dist, ind = model.fit(data).radius_neighbors(data, return_distance=True)
        rows = np.repeat(np.arange(len(ind)), [len(x) for x in ind])
        others = np.concatenate(ind) if len(ind) else np.zeros(0, dtype=np.int64)
        dists = np.concatenate(dist) if len(dist) else np.zeros(0)
        seconds = time.perf_counter() - started
    keep = others > rows
    found = vectors.VectorPairs.build(rows[keep], others[keep], dists[keep], "exact")
    return found, seconds, memory.peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512, help="512 like CLIP ViT-B/32")
    parser.add_argument("--max-distance", type=float, default=0.05)
    parser.add_argument("--near", type=float, default=0.02, help="share of planted near copies")
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument(
        "--sample", type=int, default=1000, help="query rows checked by brute force"
    )
    parser.add_argument("--baseline-items", type=int, default=20_000)
    parser.add_argument("--methods", default="exact,hnsw")
    parser.add_argument("--threads", type=int, default=None, help="FAISS threads (all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    load_before = os.getloadavg()
    started = time.perf_counter()
    data, targets, bases = synthetic(
        args.items, args.dim, args.near, args.max_distance, args.topics, args.seed
    )
    generate_s = time.perf_counter() - started
    unit = vectors.normalise(data)
    runs: dict[str, dict[str, Any]] = {}
    for method in args.methods.split(","):
        run = measure(data, args, method)
        found = run.pop("result")
        started = time.perf_counter()
        run["recall_sample"] = vectors.recall(data, found, args.max_distance, args.sample)
        run["recall_sample_s"] = round(time.perf_counter() - started, 2)
        planted, run["recall_planted"] = planted_recall(
            unit, found, targets, bases, args.max_distance
        )
        run["planted_pairs_within"] = planted
        run["max_distance_reported"] = float(found.distance.max(initial=0.0))
        runs[method] = run | {"_pairs": found}
    found_sets = {m: r.pop("_pairs").as_set() for m, r in runs.items()}
    agreement = {}
    if "exact" in found_sets and "hnsw" in found_sets:
        agreement = {
            "hnsw_missing_vs_exact": len(found_sets["exact"] - found_sets["hnsw"]),
            "hnsw_extra_vs_exact": len(found_sets["hnsw"] - found_sets["exact"]),
        }

    # The baseline a user would write, on the first --baseline-items vectors.
    small = data[: min(args.items, args.baseline_items)]
    plain, plain_s, plain_mb = sklearn_pairs(small, args.max_distance)
    started = time.perf_counter()
    ours = vectors.cosine_pairs(small, args.max_distance, method="exact", threads=args.threads)
    ours_s = time.perf_counter() - started
    plain_set, ours_set = plain.as_set(), ours.as_set()
    scale = (args.items / small.shape[0]) ** 2
    baseline = {
        "library": f"scikit-learn {sklearn.__version__} NearestNeighbors(metric='cosine', "
        "algorithm='brute').radius_neighbors",
        "items": int(small.shape[0]),
        "note": "run on the first `items` vectors only when fewer than --items: it scores "
        "every pair, so its time grows with the square of the items",
        "seconds": round(plain_s, 2),
        "seconds_extrapolated_to_all_items": round(plain_s * scale, 1),
        "pairs": len(plain),
        "recall_sample": vectors.recall(small, plain, args.max_distance, args.sample),
        "peak_rss_mb": round(plain_mb, 1),
        "exact_same_items_seconds": round(ours_s, 2),
        "exact_same_items_pairs": len(ours),
        "pairs_only_in_sklearn": len(plain_set - ours_set),
        "pairs_only_in_exact": len(ours_set - plain_set),
    }
    print(
        json.dumps(
            {
                "benchmark": "vectors",
                "items": args.items,
                "dim": args.dim,
                "max_distance": args.max_distance,
                "planted_copies": int(targets.size),
                "generate_s": round(generate_s, 2),
                "auto_picks": "exact" if args.items <= vectors.EXACT_MAX_ITEMS else "hnsw",
                "hnsw": {
                    "links": vectors.HNSW_LINKS,
                    "ef_construction": vectors.EF_CONSTRUCTION,
                    "ef_search": vectors.EF_SEARCH,
                    "neighbours": 32,
                },
                "runs": runs,
                "agreement": agreement,
                "baseline": baseline,
                "recall_sample_queries": args.sample,
                "threads": args.threads or faiss.omp_get_max_threads(),
                "cpus": os.cpu_count(),
                "load_avg_1m_before_after": [load_before[0], os.getloadavg()[0]],
                "python": platform.python_version(),
                "numpy": np.__version__,
                "faiss": faiss.__version__,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
