"""The review demo: the demo's photos labelled by several annotators (`demo --annotators N`).

Each annotator's labels are the demo's own, perturbed deterministically (one seeded
generator per annotator name): every box moved and resized by a few percent, some boxes
missed, some given another class, a few spurious boxes added; the last annotator skips a
few images (it never saw them, which is not the same as seeing nothing). The demo's own
labels are written as ``gold.json``, the reference to score the annotators against.
Images the demo plants for the other stages (a truncated file, a text file, copies) are
left out: this demo is about labels.

Layout: ``images/`` and, per annotator, ``annotators/<name>.json`` (COCO, class ids in a
different order per annotator, as real tools number classes), plus ``gold.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pixelpipe.project.demo import CATEGORIES, build

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
JITTER = 0.04
"""Standard deviation of each box edge's move, as a share of the box's size."""
MISS, RELABEL, SPURIOUS = 0.08, 0.06, 0.05
"""Chance that an annotator misses a box, gives it another class, adds a box of its own."""
SKIPPED = 3
"""Images the last annotator never saw."""
_PLANTED = ("cat_copy", "_small", "_recompressed", "_truncated", "notes")


def _perturb(box: list[float], width: int, height: int, rng: np.random.Generator) -> list[float]:
    x, y, w, h = box
    x0 = x + rng.normal(0, JITTER) * w
    y0 = y + rng.normal(0, JITTER) * h
    x1 = x + w + rng.normal(0, JITTER) * w
    y1 = y + h + rng.normal(0, JITTER) * h
    x0, x1 = max(0.0, min(x0, x1)), min(float(width), max(x0, x1))
    y0, y1 = max(0.0, min(y0, y1)), min(float(height), max(y0, y1))
    return [round(x0, 2), round(y0, 2), round(max(x1 - x0, 1.0), 2), round(max(y1 - y0, 1.0), 2)]


def _annotator(
    name: str, index: int, count: int, images: list[dict[str, Any]], boxes: list[dict[str, Any]]
) -> dict[str, Any]:
    """One annotator's COCO document."""
    rng = np.random.default_rng([index, *name.encode()])
    class_ids = [int(str(c["id"])) for c in CATEGORIES]
    # Real tools number classes their own way: each annotator's file renumbers them.
    order = list(rng.permutation(len(CATEGORIES)))
    renumber = {class_ids[i]: pos + 1 for pos, i in enumerate(order)}
    seen = images[:-SKIPPED] if index == count - 1 and len(images) > SKIPPED else images
    seen_ids = {img["id"] for img in seen}
    out: list[dict[str, Any]] = []
    for ann in boxes:
        if ann["image_id"] not in seen_ids or rng.random() < MISS:
            continue
        image = next(img for img in seen if img["id"] == ann["image_id"])
        category = ann["category_id"]
        if rng.random() < RELABEL:
            category = int(rng.choice([c for c in class_ids if c != category]))
        bbox = _perturb(ann["bbox"], image["width"], image["height"], rng)
        out.append({"image_id": ann["image_id"], "category_id": category, "bbox": bbox})
    for image in seen:
        if rng.random() < SPURIOUS:
            w, h = image["width"] * 0.2, image["height"] * 0.2
            x, y = rng.uniform(0, image["width"] - w), rng.uniform(0, image["height"] - h)
            category = int(rng.choice(class_ids))
            out.append(
                {
                    "image_id": image["id"],
                    "category_id": category,
                    "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                }
            )
    annotations = [
        {
            "id": i + 1,
            "image_id": a["image_id"],
            "category_id": renumber[a["category_id"]],
            "bbox": a["bbox"],
            "area": round(a["bbox"][2] * a["bbox"][3], 2),
            "iscrowd": 0,
        }
        for i, a in enumerate(out)
    ]
    categories = sorted(
        ({**c, "id": renumber[i]} for i, c in zip(class_ids, CATEGORIES, strict=True)),
        key=lambda c: int(str(c["id"])),
    )
    return {"images": seen, "annotations": annotations, "categories": categories}


def clean_demo(tmp: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo's photos without its planted problems, in ``tmp/images``, with their labels.

    Returns:
        The COCO ``images`` and ``annotations`` entries (boxes clipped to their image).
    """
    base = tmp / "base"
    build(base)
    document = json.loads((base / "annotations.json").read_text(encoding="utf-8"))
    images = [img for img in document["images"] if not any(p in img["file_name"] for p in _PLANTED)]
    keep = {img["id"] for img in images}
    boxes = [a for a in document["annotations"] if a["image_id"] in keep]
    for img in images:  # the demo's box past the edge is a planted problem too
        for ann in boxes:
            if ann["image_id"] == img["id"]:
                x, y, w, h = ann["bbox"]
                ann["bbox"] = [x, y, min(w, img["width"] - x), min(h, img["height"] - y)]
    (tmp / "images").mkdir()
    for img in images:
        target = tmp / "images" / img["file_name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(base / "images" / img["file_name"], target)
    shutil.rmtree(base)
    return images, boxes


def build_review(out: Path, annotators: int = 3) -> dict[str, Any]:
    """Write the review demo to ``out``, replacing it.

    Args:
        out: The folder to write.
        annotators: How many annotators (2 to 10).

    Returns:
        A summary: images, annotators and their box counts.
    """
    if not 2 <= annotators <= len(NAMES):
        raise ValueError(f"annotators: from 2 to {len(NAMES)}, got {annotators}")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    images, boxes = clean_demo(tmp)
    gold = {"images": images, "annotations": boxes, "categories": CATEGORIES}
    (tmp / "gold.json").write_text(json.dumps(gold, indent=1) + "\n", encoding="utf-8")
    (tmp / "annotators").mkdir()
    counts = {}
    for index, name in enumerate(NAMES[:annotators]):
        doc = _annotator(name, index, annotators, images, boxes)
        counts[name] = len(doc["annotations"])
        (tmp / "annotators" / f"{name}.json").write_text(
            json.dumps(doc, indent=1) + "\n", encoding="utf-8"
        )
    (tmp / "README.md").write_text(
        "Review demo made by `pixelpipe demo --annotators N`: the demo's photos (scikit-image's\n"
        "sample data), each annotator's labels perturbed deterministically from the demo's own\n"
        "(gold.json). Read by pipelines/review.yaml.\n",
        encoding="utf-8",
    )
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return {"images": len(images), "annotators": counts, "path": str(out)}
