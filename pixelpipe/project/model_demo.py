"""The model-loop demo: the demo's photos and a model's predictions (`demo --predictions`).

The predictions are made deterministically from the demo's own labels (a seeded generator):
each object found with a box moved by a few percent and a confidence drawn per object (most
high, some in the review band, a few low), some objects given another class at a lower
confidence, some missed, and a few spurious low-confidence boxes. The photos are split in
two COCO files: ``labelled.json`` (people's labels, the demo's own) and ``pool.json`` (the
same kind of photos, unlabelled), each with a COCO results file of the model's predictions
(``predictions_labelled.json``, ``predictions_pool.json``) whose ids are that file's.
``pipelines/model-loop.yaml`` routes the pool's predictions, finds label issues in the
labelled part and picks the next batch to label.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pixelpipe.project.demo import CATEGORIES
from pixelpipe.project.review_demo import clean_demo

SEED = 20261201
RELABEL, MISS, SPURIOUS = 0.1, 0.08, 0.15


def _predict(
    images: list[dict[str, Any]], boxes: list[dict[str, Any]], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """A model's detections of ``images``: COCO results, sorted by image and score."""
    ids = [int(str(c["id"])) for c in CATEGORIES]
    sizes = {img["id"]: (img["width"], img["height"]) for img in images}
    out: list[dict[str, Any]] = []
    for ann in boxes:
        if rng.random() < MISS:
            continue
        x, y, w, h = ann["bbox"]
        width, height = sizes[ann["image_id"]]
        x0 = min(max(0.0, x + rng.normal(0, 0.03) * w), width - 1.0)
        y0 = min(max(0.0, y + rng.normal(0, 0.03) * h), height - 1.0)
        w1 = min(max(1.0, w * (1 + rng.normal(0, 0.04))), width - x0)
        h1 = min(max(1.0, h * (1 + rng.normal(0, 0.04))), height - y0)
        category, score = ann["category_id"], float(rng.beta(14, 1.2))
        if rng.random() < RELABEL:
            category = int(rng.choice([c for c in ids if c != category]))
            score = float(rng.uniform(0.3, 0.85))
        out.append(_entry(ann["image_id"], category, [x0, y0, w1, h1], score))
    for image in images:
        if rng.random() < SPURIOUS:
            w, h = image["width"] * 0.15, image["height"] * 0.15
            x, y = rng.uniform(0, image["width"] - w), rng.uniform(0, image["height"] - h)
            category = int(rng.choice(ids))
            out.append(_entry(image["id"], category, [x, y, w, h], float(rng.uniform(0.05, 0.6))))
    return sorted(out, key=lambda e: (e["image_id"], -e["score"], e["bbox"]))


def _entry(image_id: int, category: int, box: list[float], score: float) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "category_id": category,
        "bbox": [round(v, 2) for v in box],
        "score": round(score, 4),
    }


def build_model_loop(out: Path) -> dict[str, Any]:
    """Write the model-loop demo to ``out``, replacing it.

    Returns:
        A summary: images and predictions per part.
    """
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    images, boxes = clean_demo(tmp)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(images))
    pool_ids = {images[i]["id"] for i in order[: len(images) // 3]}
    summary: dict[str, Any] = {"path": str(out)}
    for part, chosen in (
        ("labelled", [img for img in images if img["id"] not in pool_ids]),
        ("pool", [img for img in images if img["id"] in pool_ids]),
    ):
        keep = {img["id"] for img in chosen}
        mine = [a for a in boxes if a["image_id"] in keep]
        labels = mine if part == "labelled" else []
        document = {"images": chosen, "annotations": labels, "categories": CATEGORIES}
        (tmp / f"{part}.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        predictions = _predict(chosen, mine, rng)
        (tmp / f"predictions_{part}.json").write_text(
            json.dumps(predictions, indent=1) + "\n", encoding="utf-8"
        )
        summary[part] = {"images": len(chosen), "predictions": len(predictions)}
    (tmp / "README.md").write_text(
        "Model-loop demo made by `pixelpipe demo --predictions`: the demo's photos\n"
        "(scikit-image's sample data), people's labels for two thirds (labelled.json), the rest\n"
        "unlabelled\n"
        "(pool.json), and a model's predictions of each, made deterministically from the\n"
        "demo's own labels. Read by pipelines/model-loop.yaml.\n",
        encoding="utf-8",
    )
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return summary
