"""The demo raw dataset: real photographs (from scikit-image's bundled data) with COCO labels.

Built offline and deterministically (same bytes on every run with the same Pillow). It
holds what the later stages exist to catch: an exact duplicate, resized and re-encoded
near-duplicates, a truncated image, a file that is not an image, a box outside its image,
images without labels, a grayscale image and a category with very few instances.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Category ids follow COCO's (with its gaps); "rocket" is not a COCO class and gets 91.
CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 4, "name": "motorcycle", "supercategory": "vehicle"},
    {"id": 17, "name": "cat", "supercategory": "animal"},
    {"id": 47, "name": "cup", "supercategory": "kitchen"},
    {"id": 50, "name": "spoon", "supercategory": "kitchen"},
    {"id": 85, "name": "clock", "supercategory": "indoor"},
    {"id": 91, "name": "rocket", "supercategory": "vehicle"},
]


@dataclass(frozen=True)
class Photo:
    """A bundled photograph and its objects (COCO boxes in its own pixels)."""

    file: str
    name: str
    boxes: tuple[tuple[int, tuple[float, float, float, float]], ...]
    crops: int = 4


PHOTOS = (
    Photo("astronaut.png", "astronaut", ((1, (20, 15, 345, 497)), (91, (355, 0, 120, 280)))),
    Photo("chelsea.png", "cat", ((17, (0, 0, 451, 300)),)),
    Photo("coffee.png", "coffee", ((47, (175, 18, 242, 287)), (50, (325, 65, 100, 262)))),
    Photo("rocket.jpg", "launchpad", ((91, (303, 125, 40, 285)),)),
    Photo("motorcycle_left.png", "motorcycle", ((4, (92, 95, 595, 355)),)),
    Photo("camera.png", "cameraman", ((1, (0, 65, 335, 447)),)),
    Photo("clock_motion.png", "clock", ((85, (140, 92, 145, 125)),), crops=0),  # rare, blurred
)
UNLABELLED = ("hubble_deep_field.jpg", "retina.jpg")
SEED = 20240601


def _skimage_data() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buffer.getvalue()


def _crop_boxes(
    boxes: tuple[tuple[int, tuple[float, float, float, float]], ...],
    window: tuple[int, int, int, int],
) -> list[tuple[int, list[float]]]:
    """Boxes seen through a crop window; a box less than half visible is dropped."""
    left, top, right, bottom = window
    kept = []
    for category, (x, y, w, h) in boxes:
        x0, y0 = max(x, left), max(y, top)
        x1, y1 = min(x + w, right), min(y + h, bottom)
        if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) < 0.5 * w * h:
            continue
        kept.append((category, [float(x0 - left), float(y0 - top), float(x1 - x0), float(y1 - y0)]))
    return kept


def build(out: Path) -> dict[str, Any]:
    """Write the demo dataset to ``out`` (``images/`` + ``annotations.json``), replacing it.

    Returns:
        A summary: counts and the planted problems, by file name.
    """
    data = _skimage_data()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}

    def add(
        name: str, payload: bytes, size: tuple[int, int], boxes: list[tuple[int, list[float]]]
    ) -> None:
        files[name] = payload
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": name, "width": size[0], "height": size[1]})
        for category, box in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [round(v, 2) for v in box],
                    "area": round(box[2] * box[3], 2),
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )

    full: dict[str, tuple[Image.Image, list[tuple[int, list[float]]]]] = {}
    for photo in PHOTOS:
        opened = Image.open(data / photo.file)
        image = opened.convert("L" if opened.mode in ("L", "I;16") else "RGB")
        width, height = image.size
        boxes = [(c, list(map(float, b))) for c, b in photo.boxes]
        full[photo.name] = (image, boxes)
        if photo.name == "astronaut":
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=False)
            add(f"{photo.name}.png", buffer.getvalue(), image.size, boxes)
        else:
            add(f"{photo.name}.jpg", _jpeg(image), image.size, boxes)
        for index in range(photo.crops):
            scale = rng.uniform(0.55, 0.8)
            cw, ch = int(width * scale), int(height * scale)
            # One crop per corner, jittered: overlapping crops would be near-duplicates.
            left = int((width - cw) * (index % 2) * rng.uniform(0.85, 1.0))
            top = int((height - ch) * (index // 2) * rng.uniform(0.85, 1.0))
            window = (left, top, left + cw, top + ch)
            crop = image.crop(window)
            add(
                f"{photo.name}_crop{index}.jpg",
                _jpeg(crop),
                crop.size,
                _crop_boxes(photo.boxes, window),
            )
    for file in UNLABELLED:
        thumb = Image.open(data / file).convert("RGB")
        thumb.thumbnail((640, 640))
        add(f"unlabelled/{Path(file).stem}.jpg", _jpeg(thumb), thumb.size, [])

    # Planted problems for the later stages.
    add("cat_copy.jpg", files["cat.jpg"], full["cat"][0].size, full["cat"][1])  # exact duplicate
    for name, factor, quality in (("coffee", 0.5, 70), ("motorcycle", 0.75, 80)):
        image, boxes = full[name]
        small = image.resize(
            (round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS
        )
        scaled = [(c, [v * factor for v in b]) for c, b in boxes]
        add(f"{name}_small.jpg", _jpeg(small, quality), small.size, scaled)  # near-duplicates
    image, boxes = full["astronaut"]
    add("astronaut_recompressed.jpg", _jpeg(image, 60), image.size, boxes)  # re-encoded copy
    payload = files["launchpad_crop1.jpg"]
    add(
        "launchpad_truncated.jpg",
        payload[: len(payload) * 3 // 5],  # truncated file
        full["launchpad"][0].size,
        [],
    )
    cameraman = next(i["id"] for i in images if i["file_name"] == "cameraman.jpg")
    for ann in annotations:  # a box past the right edge of the 512 px wide image
        if ann["image_id"] == cameraman:
            ann["bbox"][2] = 530.0
            ann["area"] = 530.0 * ann["bbox"][3]
    files["notes.jpg"] = b"This is a text file with a .jpg name, not an image.\n"  # not an image
    images.append({"id": len(images) + 1, "file_name": "notes.jpg", "width": 640, "height": 480})

    for name, payload in files.items():
        path = tmp / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    document = {
        "info": {
            "description": "pixelpipe demo: scikit-image sample photographs",
            "url": "https://scikit-image.org/docs/stable/api/skimage.data.html",
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    (tmp / "annotations.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(
        "Demo dataset made by `pixelpipe demo` from scikit-image's bundled sample photos\n"
        "(see skimage/data/README.txt for their sources and licenses).\n",
        encoding="utf-8",
    )
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return {"images": len(images), "annotations": len(annotations), "path": str(out)}
