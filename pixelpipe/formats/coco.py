"""COCO instances JSON: load and dump.

Boxes are COCO's own convention (``[x, y, w, h]``, absolute float pixels, origin at the
top-left corner of the top-left pixel), so they pass through unchanged. Category ids are
kept as given, gaps and 0 included. Polygons (several parts per object) and RLE masks
(compressed or not; uncompressed counts are compressed on load) are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError, Problem


@dataclass(frozen=True)
class CocoImage:
    """An ``images[]`` entry.

    Attributes:
        id: The COCO image id.
        file_name: Path of the image relative to the images folder.
        width: Declared width, if given.
        height: Declared height, if given.
    """

    id: Any
    file_name: str
    width: int | None
    height: int | None


@dataclass
class CocoFile:
    """A parsed COCO file.

    Attributes:
        categories: The class map, ids as given.
        images: The images, in file order.
        annotations: Annotations by COCO image id.
        unknown_category: Annotations whose category id is not in the class map.
    """

    categories: list[Category]
    images: list[CocoImage]
    annotations: dict[Any, list[Annotation]] = field(default_factory=dict)
    unknown_category: int = 0


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compress_rle(rle: dict[str, Any]) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    size = [int(v) for v in rle["size"]]
    counts = rle["counts"]
    if isinstance(counts, list):
        encoded = mask_utils.frPyObjects({"size": size, "counts": counts}, size[0], size[1])
        counts = encoded["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": size, "counts": counts}


def _rle_bbox_area(rle: dict[str, Any]) -> tuple[list[float], float]:
    from pycocotools import mask as mask_utils

    encoded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return [float(v) for v in mask_utils.toBbox(encoded)], float(mask_utils.area(encoded))


def _polygon_bbox(polygons: list[list[float]]) -> list[float]:
    xs = [v for part in polygons for v in part[0::2]]
    ys = [v for part in polygons for v in part[1::2]]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _annotation(
    raw: dict[str, Any], where: str, problems: list[Problem], file: str
) -> Annotation | None:
    def bad(message: str) -> None:
        problems.append(Problem(message, file=file, key=where))

    category = raw.get("category_id")
    if not isinstance(category, int) or isinstance(category, bool):
        bad(f"category_id must be a whole number, got {category!r}")
        return None
    segmentation = raw.get("segmentation")
    polygons: list[list[float]] | None = None
    rle: dict[str, Any] | None = None
    if isinstance(segmentation, list) and segmentation:
        parts = segmentation if isinstance(segmentation[0], list) else [segmentation]
        if not all(isinstance(p, list) and all(_number(v) for v in p) for p in parts):
            bad("segmentation polygons must be lists of numbers")
            return None
        polygons = [[float(v) for v in p] for p in parts]
    elif isinstance(segmentation, dict):
        if "size" not in segmentation or "counts" not in segmentation:
            bad("segmentation RLE needs 'size' and 'counts'")
            return None
        try:
            rle = _compress_rle(segmentation)
        except Exception as exc:
            bad(f"segmentation RLE is malformed: {exc}")
            return None
    bbox = raw.get("bbox")
    area = raw.get("area")
    if bbox is None and rle is not None:
        bbox, mask_area = _rle_bbox_area(rle)
        area = area if _number(area) else mask_area
    elif bbox is None and polygons:
        bbox = _polygon_bbox(polygons)
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
        bad(f"bbox must be [x, y, width, height] numbers, got {bbox!r}")
        return None
    attributes = raw.get("attributes")
    score = raw.get("score")
    return Annotation(
        category_id=category,
        bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
        polygons=polygons,
        rle=rle,
        iscrowd=bool(raw.get("iscrowd", 0)),
        area=float(area) if _number(area) else None,
        score=float(score) if _number(score) else None,
        attributes=dict(attributes) if isinstance(attributes, dict) else {},
    )


def parse(data: Any, file: str) -> CocoFile:
    """Validate and convert a decoded COCO document.

    Args:
        data: The decoded JSON.
        file: Its name, for messages.

    Raises:
        PixelpipeError: Listing every malformed element (``images[3].file_name`` ...).
    """
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise PixelpipeError(Problem("a COCO file is a JSON object with 'images'", file=file))
    categories: list[Category] = []
    for index, raw in enumerate(data.get("categories") or []):
        where = f"categories[{index}]"
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("id"), int)
            or not isinstance(raw.get("name"), str)
        ):
            problems.append(
                Problem("a category needs an integer 'id' and a 'name'", file=file, key=where)
            )
            continue
        parent = raw.get("supercategory")
        categories.append(Category(raw["id"], raw["name"], parent if parent else None))
    seen_ids: dict[int, str] = {}
    for cat in categories:
        if cat.id in seen_ids:
            problems.append(
                Problem(
                    f"category id {cat.id} is used twice ('{seen_ids[cat.id]}' and '{cat.name}')",
                    file=file,
                    key="categories",
                )
            )
        seen_ids[cat.id] = cat.name
    images: list[CocoImage] = []
    image_ids: set[Any] = set()
    if not isinstance(data.get("images"), list):
        problems.append(
            Problem("required key 'images' (a list) is missing", file=file, key="images")
        )
    for index, raw in enumerate(data.get("images") or []):
        where = f"images[{index}]"
        if not isinstance(raw, dict) or "id" not in raw:
            problems.append(Problem("an image needs an 'id'", file=file, key=where))
            continue
        name = raw.get("file_name")
        if not isinstance(name, str) or not name:
            problems.append(Problem("required key is missing", file=file, key=f"{where}.file_name"))
            continue
        if raw["id"] in image_ids:
            problems.append(
                Problem(f"image id {raw['id']!r} is used twice", file=file, key=f"{where}.id")
            )
            continue
        image_ids.add(raw["id"])
        width, height = raw.get("width"), raw.get("height")
        images.append(
            CocoImage(
                raw["id"],
                name,
                width if isinstance(width, int) else None,
                height if isinstance(height, int) else None,
            )
        )
    result = CocoFile(categories=categories, images=images)
    annotation_ids: set[Any] = set()
    for index, raw in enumerate(data.get("annotations") or []):
        where = f"annotations[{index}]"
        if not isinstance(raw, dict):
            problems.append(Problem("an annotation is a JSON object", file=file, key=where))
            continue
        if raw.get("image_id") not in image_ids:
            problems.append(
                Problem(
                    f"image_id {raw.get('image_id')!r} is not in 'images'",
                    file=file,
                    key=f"{where}.image_id",
                )
            )
            continue
        if "id" in raw:
            if raw["id"] in annotation_ids:
                problems.append(
                    Problem(
                        f"annotation id {raw['id']!r} is used twice", file=file, key=f"{where}.id"
                    )
                )
            annotation_ids.add(raw["id"])
        annotation = _annotation(raw, where, problems, file)
        if annotation is None:
            continue
        if annotation.category_id not in seen_ids:
            result.unknown_category += 1
        result.annotations.setdefault(raw["image_id"], []).append(annotation)
    if problems:
        raise PixelpipeError(
            problems[:50]
            + (
                [Problem(f"... and {len(problems) - 50} more", file=file)]
                if len(problems) > 50
                else []
            )
        )
    return result


def load(path: Path, shown_as: str | None = None) -> CocoFile:
    """Read a COCO instances file.

    Args:
        path: The JSON file.
        shown_as: The name to use in messages.

    Raises:
        PixelpipeError: On unreadable or invalid JSON (with line and column) or a
            malformed COCO structure.
    """
    name = shown_as or str(path)
    try:
        with path.open("rb") as stream:
            data = json.load(stream)
    except json.JSONDecodeError as exc:
        raise PixelpipeError(
            Problem(f"invalid JSON at column {exc.colno}: {exc.msg}", file=name, line=exc.lineno)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PixelpipeError(Problem(f"cannot read: {exc}", file=name)) from None
    return parse(data, name)


def dump(
    samples: Iterable[Sample],
    categories: Iterable[Category],
    file_name: Callable[[Sample], str],
) -> dict[str, Any]:
    """Build a COCO instances document.

    Image ids are 1..N in the order given, annotation ids 1..M; category ids are the
    class map's, unchanged.

    Args:
        samples: The samples to export, in the order wanted.
        categories: The class map.
        file_name: The ``file_name`` to write for a sample.
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, sample in enumerate(samples, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": file_name(sample),
                "width": sample.width,
                "height": sample.height,
            }
        )
        for ann in sample.annotations:
            entry: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": ann.category_id,
                "bbox": list(ann.bbox),
                "area": ann.area if ann.area is not None else ann.bbox[2] * ann.bbox[3],
                "iscrowd": int(ann.iscrowd),
                "segmentation": ann.rle if ann.rle is not None else (ann.polygons or []),
            }
            if ann.score is not None:
                entry["score"] = ann.score
            if ann.attributes:
                entry["attributes"] = ann.attributes
            annotations.append(entry)
    return {
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": c.id, "name": c.name, "supercategory": c.parent or ""}
            for c in sorted(categories, key=lambda c: c.id)
        ],
    }
