"""Near-duplicate search at scale: 1M synthetic 64-bit hashes with planted near-duplicates.

Prints one JSON object: search time, peak memory of the whole process tree, the plan
(blocks, tables), and recall against brute force, on a sample of queries and on every
planted pair.

    .venv/bin/python benchmarks/bench_search.py                 # 1M codes, threshold 8, 2 workers
    .venv/bin/python benchmarks/bench_search.py --items 200000 --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from _memory import PeakMemory

from pixelpipe.engine.executor import ProcessExecutor, SerialExecutor
from pixelpipe.imaging import hamming


def synthetic(
    items: int, clusters: int, max_flips: int, seed: int, orientations: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform random 64-bit codes, of which ``clusters`` bases get 1-3 near copies each,
    made by flipping up to ``max_flips`` random bits.

    With ``orientations > 1`` every item also gets random codes for its turned copies, and
    a planted copy is made from a random orientation of its base.

    Returns ``(codes (n, orientations, 1), copy items, their base items)``."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(
        0, np.iinfo(np.uint64).max, size=(items, orientations), dtype=np.uint64, endpoint=True
    )
    copies = rng.integers(1, 4, size=clusters)
    planted = int(copies.sum())
    slots = rng.permutation(items)
    bases = slots[:clusters]
    targets = slots[clusters : clusters + planted]
    source = np.repeat(bases, copies)
    flips = rng.integers(0, max_flips + 1, size=planted)
    masks = np.zeros(planted, dtype=np.uint64)
    for step in range(max_flips):
        bit = rng.integers(0, 64, size=planted).astype(np.uint64)
        active = flips > step
        masks[active] |= np.uint64(1) << bit[active]  # a repeated bit flips fewer: fine
    turn = rng.integers(0, orientations, size=planted)
    codes[targets, 0] = codes[source, turn] ^ masks
    return codes.reshape(items, orientations, 1), targets, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--threshold", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clusters", type=int, default=50_000, help="planted near-dup groups")
    parser.add_argument("--sample", type=int, default=1000, help="queries checked by brute force")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--orientations", type=int, default=1, help="8: flip/rotation-invariant search"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()
    codes, targets, bases = synthetic(
        args.items, args.clusters, args.threshold + 3, args.seed, args.orientations
    )
    with PeakMemory() as memory:
        started = time.perf_counter()
        pool = ProcessExecutor(args.workers) if args.workers > 1 else SerialExecutor()
        pool_s = time.perf_counter() - started
        started = time.perf_counter()
        try:
            result = hamming.search(
                codes, args.threshold, map_chunks=pool.map_chunks, workers=pool.workers
            )
        finally:
            pool.close()
        search_s = time.perf_counter() - started
    pairs = result.pairs()
    plan = result.plan

    # Precision: every reported pair is within the threshold, with the right distance.
    true_d = hamming.pair_distances(codes, pairs.i, pairs.j)
    precise = bool(np.array_equal(true_d, pairs.distance) and (true_d <= args.threshold).all())

    # Recall on a sample of queries against brute force over all items.
    rng = np.random.default_rng(args.seed + 1)
    queries = np.sort(rng.choice(args.items, size=min(args.sample, args.items), replace=False))
    started = time.perf_counter()
    expected: set[tuple[int, int]] = set()
    for part in np.array_split(queries, max(1, queries.size // 8)):
        dist = hamming.distances_from(codes, part)
        rows, cols = np.nonzero(dist <= args.threshold)
        for q, other in zip(part[rows].tolist(), cols.tolist(), strict=True):
            if q != other:
                expected.add((min(q, other), max(q, other)))
    brute_s = time.perf_counter() - started
    wanted = set(queries.tolist())
    found = {p for p in pairs.as_set() if p[0] in wanted or p[1] in wanted}
    recall_sample = len(expected & found) / len(expected) if expected else 1.0

    # Recall on every planted (copy, base) pair within the threshold.
    planted_d = hamming.pair_distances(codes, targets, bases)
    near = planted_d <= args.threshold
    keys = np.minimum(targets, bases)[near] * args.items + np.maximum(targets, bases)[near]
    reported = pairs.i * args.items + pairs.j
    planted_found = int(np.isin(keys, reported).sum())
    print(
        json.dumps(
            {
                "benchmark": "search",
                "items": args.items,
                "bits": 64,
                "threshold": args.threshold,
                "workers": args.workers,
                "orientations": args.orientations,
                "planted_copies": int(targets.size),
                "planted_pairs_within_threshold": int(near.sum()),
                "planted_recall": planted_found / max(1, int(near.sum())),
                "plan": {
                    "method": plan.method,
                    "blocks": len(plan.blocks),
                    "blocks_per_table": plan.per_table,
                    "tables": plan.tables,
                },
                "pool_start_s": round(pool_s, 2),
                "search_s": round(search_s, 2),
                "pairs_found": len(pairs),
                "precision_ok": precise,
                "recall_sample_queries": int(queries.size),
                "recall_sample_pairs": len(expected),
                "recall": recall_sample,
                "brute_force_sample_s": round(brute_s, 2),
                "peak_rss_mb": round(memory.peak / 2**20, 1),
                "cpus": os.cpu_count(),
                "load_avg_1m_before_after": [load_before[0], os.getloadavg()[0]],
                "python": platform.python_version(),
                "numpy": np.__version__,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
