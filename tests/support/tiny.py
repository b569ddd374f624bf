"""Three tiny labelled images as a raw COCO dataset, for tests that need a real but quick run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
IMAGES = [("img0.png", 24, 18, 1), ("img1.png", 30, 20, 2), ("img2.png", 20, 16, 1)]


def write_tiny_coco(raw: Path) -> None:
    """Write the images and ``annotations.json`` (one 8x8 box each) into ``raw``."""
    (raw / "images").mkdir(parents=True)
    coco: dict[str, Any] = {"images": [], "annotations": [], "categories": CATEGORIES}
    for number, (name, width, height, category) in enumerate(IMAGES, start=1):
        Image.new("RGB", (width, height), (number * 40, 90, 200)).save(raw / "images" / name)
        coco["images"].append({"id": number, "file_name": name, "width": width, "height": height})
        coco["annotations"].append(
            {
                "id": number,
                "image_id": number,
                "category_id": category,
                "bbox": [1, 1, 8, 8],
                "area": 64,
                "iscrowd": 0,
            }
        )
    (raw / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
