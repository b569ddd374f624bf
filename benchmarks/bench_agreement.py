"""Box agreement of two annotators at scale, against the loop a user would write.

Prints one JSON object. Annotator ``a`` draws ``--boxes-per-image`` boxes on each of
``--images`` synthetic images; annotator ``b`` draws jittered copies of them, with some
dropped, some relabelled and a few extra boxes of its own (all from one seed). In the same
run it times

- ``pixelpipe``: :func:`pixelpipe.quality.agreement.box_agreement` over all images (it
  checks the input, matches every image, clusters the boxes for Krippendorff's alpha and
  builds the whole report); ``match_boxes_loop``: a loop calling
  :func:`pixelpipe.quality.matching.match_boxes` image by image, timed apart;
- ``naive``: for each box of ``a``, the unused box of ``b`` with the best IoU by a Python
  double loop over the image's boxes (greedy, pure Python IoU), matched when the IoU
  reaches the threshold;

and reports the micro F1 each finds (2 x same-label matches / boxes of both). It also times
what the ``agreement`` and ``consensus`` commands run on the same boxes (the whole JSON, with
the kappas over box clusters; the consensus and its review list). A second run,
``crowded``, puts the same number of boxes on fewer images (``--crowded`` boxes each), where
the naive loop's cost per image grows with the square of the boxes.

    .venv/bin/python benchmarks/bench_agreement.py                   # 6,000 images x 10 boxes
    .venv/bin/python benchmarks/bench_agreement.py --images 600 --boxes-per-image 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np

from pixelpipe.quality.agreement import box_agreement
from pixelpipe.quality.matching import match_boxes
from pixelpipe.review.gather import Gathered, ImageLabels
from pixelpipe.review.measure import agreement
from pixelpipe.review.merge import consensus

CLASSES = [f"class_{k}" for k in range(10)]
Image = tuple[str, dict[str, tuple[np.ndarray, list[str]]]]


def synthetic(
    images: int, per_image: int, seed: int, drop: float = 0.05, relabel: float = 0.05
) -> list[Image]:
    """Two annotators' boxes on ``images`` images of 1000 x 1000 px.

    ``b`` copies each box of ``a`` with its corners moved by up to 4% of the box size,
    drops a share ``drop`` of them, relabels a share ``relabel``, and adds one box of its
    own on a share ``drop`` of the images.
    """
    rng = np.random.default_rng(seed)
    out: list[Image] = []
    for index in range(images):
        size = rng.uniform(20, 200, size=(per_image, 2))
        corner = rng.uniform(0, 1000 - size)
        boxes_a = np.column_stack([corner, size])
        labels_a = [CLASSES[k] for k in rng.integers(0, len(CLASSES), per_image).tolist()]
        jitter = rng.uniform(-0.04, 0.04, size=(per_image, 4)) * np.tile(size, 2)
        boxes_b = boxes_a + jitter
        labels_b = list(labels_a)
        for k in np.flatnonzero(rng.random(per_image) < relabel).tolist():
            labels_b[k] = CLASSES[(CLASSES.index(labels_b[k]) + 1) % len(CLASSES)]
        keep = rng.random(per_image) >= drop
        boxes_b = boxes_b[keep]
        labels_b = [label for label, kept in zip(labels_b, keep.tolist(), strict=True) if kept]
        if rng.random() < drop:
            extra_size = rng.uniform(20, 200, size=2)
            extra = np.concatenate([rng.uniform(0, 1000 - extra_size), extra_size])
            boxes_b = np.vstack([boxes_b, extra])
            labels_b.append(CLASSES[int(rng.integers(0, len(CLASSES)))])
        out.append((f"img_{index:06d}", {"a": (boxes_a, labels_a), "b": (boxes_b, labels_b)}))
    return out


def naive_iou(p: list[float], q: list[float]) -> float:
    """IoU of two ``[x, y, w, h]`` boxes in plain Python."""
    iw = min(p[0] + p[2], q[0] + q[2]) - max(p[0], q[0])
    ih = min(p[1] + p[3], q[1] + q[3]) - max(p[1], q[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (p[2] * p[3] + q[2] * q[3] - inter)


def naive_f1(data: list[Image], threshold: float) -> float:
    """Greedy best-IoU matching by a Python double loop, the way it is usually written."""
    matched = total = 0
    for _, per in data:
        boxes_a, labels_a = per["a"][0].tolist(), per["a"][1]
        boxes_b, labels_b = per["b"][0].tolist(), per["b"][1]
        total += len(boxes_a) + len(boxes_b)
        used: set[int] = set()
        for i, box_a in enumerate(boxes_a):
            best, best_iou = -1, threshold
            for j, box_b in enumerate(boxes_b):
                if j in used:
                    continue
                overlap = naive_iou(box_a, box_b)
                if overlap >= best_iou:
                    best, best_iou = j, overlap
            if best >= 0:
                used.add(best)
                matched += labels_a[i] == labels_b[best]
    return 2 * matched / total if total else 1.0


def run(images: int, per_image: int, seed: int, threshold: float) -> dict[str, Any]:
    """Build the data, time both ways, and return the report."""
    data = synthetic(images, per_image, seed)
    boxes_a = sum(len(per["a"][1]) for _, per in data)
    boxes_b = sum(len(per["b"][1]) for _, per in data)

    started = time.perf_counter()
    matched = 0
    for _, per in data:
        found = match_boxes(*per["a"], *per["b"], iou_threshold=threshold)
        matched += found.matched
    loop_s = time.perf_counter() - started

    started = time.perf_counter()
    report = box_agreement(data, ["a", "b"], iou_threshold=threshold)
    agreement_s = time.perf_counter() - started

    started = time.perf_counter()
    f1_naive = naive_f1(data, threshold)
    naive_s = time.perf_counter() - started

    gathered = gather(data)
    started = time.perf_counter()
    figures = agreement(gathered, threshold)
    command_s = time.perf_counter() - started
    started = time.perf_counter()
    merged = consensus(gathered, {c: i for i, c in enumerate(CLASSES)}, 0.5, threshold)
    consensus_s = time.perf_counter() - started

    return {
        "boxes_per_annotator": {"a": boxes_a, "b": boxes_b},
        "images": images,
        "boxes_per_image_a": per_image,
        "iou_threshold": threshold,
        "pixelpipe_seconds": round(agreement_s, 3),
        "match_boxes_loop_seconds": round(loop_s, 3),
        "naive_seconds": round(naive_s, 3),
        "speedup": round(naive_s / agreement_s, 2),
        "speedup_match_boxes_loop": round(naive_s / loop_s, 2),
        "f1_pixelpipe": round(report["box_f1"], 6),
        "f1_match_boxes_loop": round(2 * matched / (boxes_a + boxes_b), 6),
        "f1_naive": round(f1_naive, 6),
        "krippendorff_alpha": report["krippendorff_alpha"],
        "box_iou_mean": report["box_iou_mean"],
        "agreement_command_seconds": round(command_s, 3),
        "consensus_command_seconds": round(consensus_s, 3),
        "consensus_boxes": merged.metrics["boxes_out"],
        "consensus_review": len(merged.review),
        "cohen_kappa_over_box_clusters": figures["cohen_kappa_mean"],
    }


def gather(data: list[Image]) -> Gathered:
    """The same boxes as the ``agreement`` and ``consensus`` commands hold them."""
    images = []
    for image_id, per in data:
        one = ImageLabels(str(image_id), 1000, 1000, None, sorted(per))
        one.boxes = dict(per)
        images.append(one)
    return Gathered(images, ["a", "b"], list(CLASSES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--boxes-per-image", type=int, default=10)
    parser.add_argument(
        "--crowded",
        type=int,
        default=50,
        help="boxes per image of a second run with as many boxes (0: no second run)",
    )
    parser.add_argument("--iou-threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_before = os.getloadavg()
    report = run(args.images, args.boxes_per_image, args.seed, args.iou_threshold)
    if args.crowded:
        images = args.images * args.boxes_per_image // args.crowded
        report["crowded"] = run(images, args.crowded, args.seed, args.iou_threshold)
    report["load_avg_1m_before_after"] = [load_before[0], os.getloadavg()[0]]
    report["cpus"] = os.cpu_count()
    report["python"] = platform.python_version()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
