"""One COCO instances document: validating it and converting it to pixelpipe's model.

:func:`parse` checks a decoded document element by element (``images[3].file_name``,
``annotations[7].category_id``...) and returns a :class:`CocoFile`: boxes unchanged,
polygons and RLE masks kept (uncompressed RLE counts are compressed), ``iscrowd``,
``score``, ``attributes`` and ``keypoints`` kept. :func:`decode` and :func:`load` turn
bytes or a file into a document, with the line and column of a JSON syntax error.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from pixelpipe.dataset import Annotation, Category
from pixelpipe.errors import PixelpipeError, Problem
from pixelpipe.formats.base import Problems


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
    """

    categories: list[Category]
    images: list[CocoImage]
    annotations: dict[Any, list[Annotation]] = field(default_factory=dict)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = int(sys.float_info.max)


def _number(value: Any) -> TypeGuard[int | float]:
    """A JSON number that is a float, or an integer a float can hold."""
    if isinstance(value, bool):
        return False
    return isinstance(value, float) or (isinstance(value, int) and abs(value) <= _FLOAT_MAX)


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """``repr(value)``, cut to 40 characters (an id can be thousands of digits long)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _id_error(name: str, value: Any, strings: bool = False) -> str | None:
    """Why ``value`` cannot be an id, or ``None`` when it can.

    Ids are whole numbers that fit in a signed 64-bit integer (the manifest's type);
    not floats (``1.5``, ``1.0``) nor booleans. Image and annotation ids (``strings``)
    may also be strings: they only link annotations to images.
    """
    if _whole(value):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return f"{name} {_shown(value)} does not fit in a signed 64-bit integer"
    if strings and isinstance(value, str):
        return None
    kind = "a whole number or a string" if strings else "a whole number"
    return f"{name} must be {kind}, got {_shown(value)}"


def _compress_rle(rle: dict[str, Any]) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    size = rle["size"]
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(_whole(v) and 0 <= v <= INT64_MAX for v in size)
    ):
        raise ValueError(f"size must be [height, width] whole numbers, got {_shown(size)}")
    counts = rle["counts"]
    if isinstance(counts, list):
        encoded = mask_utils.frPyObjects({"size": size, "counts": counts}, size[0], size[1])
        counts = encoded["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if not isinstance(counts, str):
        raise ValueError("counts must be a list of run lengths or an RLE string")
    mask_utils.area({"size": size, "counts": counts.encode("ascii")})  # validates
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
    raw: dict[str, Any], where: str, problems: Problems, file: str
) -> Annotation | None:
    def bad(message: str, key: str = where) -> None:
        problems.add(message, file=file, key=key)

    error = _id_error("category_id", raw.get("category_id"))
    if error is not None:
        bad(error, f"{where}.category_id")
        return None
    category: int = raw["category_id"]
    segmentation = raw.get("segmentation")
    polygons: list[list[float]] | None = None
    rle: dict[str, Any] | None = None
    if isinstance(segmentation, list) and segmentation:
        parts = segmentation if isinstance(segmentation[0], list) else [segmentation]
        if not all(isinstance(p, list) and all(_number(v) for v in p) for p in parts):
            bad("segmentation polygons must be lists of numbers", f"{where}.segmentation")
            return None
        if any(len(p) < 6 or len(p) % 2 for p in parts):
            bad(
                "a polygon needs an even number of coordinates, at least 3 points",
                f"{where}.segmentation",
            )
            return None
        polygons = [[float(v) for v in p] for p in parts]
    elif isinstance(segmentation, dict):
        if "size" not in segmentation or "counts" not in segmentation:
            bad("segmentation RLE needs 'size' and 'counts'", f"{where}.segmentation")
            return None
        try:
            rle = _compress_rle(segmentation)
        except Exception as exc:
            bad(f"segmentation RLE is malformed: {exc}", f"{where}.segmentation")
            return None
    elif segmentation not in (None, [], {}):
        bad("segmentation must be a list of polygons or an RLE object", f"{where}.segmentation")
        return None
    bbox = raw.get("bbox")
    area = raw.get("area")
    if bbox is None and rle is not None:
        bbox, mask_area = _rle_bbox_area(rle)
        area = area if _number(area) else mask_area
    elif bbox is None and polygons:
        bbox = _polygon_bbox(polygons)
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
        bad(f"bbox must be [x, y, width, height] numbers, got {_shown(bbox)}", f"{where}.bbox")
        return None
    if bbox[2] < 0 or bbox[3] < 0:
        bad(f"bbox width and height must not be negative, got {_shown(bbox)}", f"{where}.bbox")
        return None
    raw_attributes = raw.get("attributes")
    attributes: dict[str, Any] = dict(raw_attributes) if isinstance(raw_attributes, dict) else {}
    if isinstance(raw.get("keypoints"), list):
        attributes["keypoints"] = raw["keypoints"]
        if _whole(raw.get("num_keypoints")):
            attributes["num_keypoints"] = raw["num_keypoints"]
    score = raw.get("score")
    return Annotation(
        category_id=category,
        bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
        polygons=polygons,
        rle=rle,
        iscrowd=bool(raw.get("iscrowd", 0)),
        area=float(area) if _number(area) else None,
        score=float(score) if _number(score) else None,
        attributes=attributes,
    )


def parse(data: Any, file: str, problems: Problems | None = None) -> CocoFile:
    """Validate and convert a decoded COCO document.

    Args:
        data: The decoded JSON.
        file: Its name, for messages.
        problems: Where to record problems; when omitted they are raised here.

    Raises:
        PixelpipeError: Listing every malformed element (``images[3].file_name``,
            ``annotations[7].category_id``...), when ``problems`` is omitted.
    """
    own = problems is None
    problems = problems if problems is not None else Problems()
    if not isinstance(data, dict):
        problems.add("a COCO file is a JSON object with 'images'", file=file)
        if own:
            problems.raise_if_any()
        return CocoFile([], [])
    categories: list[Category] = []
    raw_categories = data.get("categories")
    if raw_categories is not None and not isinstance(raw_categories, list):
        problems.add("'categories' must be a list", file=file, key="categories")
        raw_categories = []
    for index, raw in enumerate(raw_categories or []):
        where = f"categories[{index}]"
        if not isinstance(raw, dict) or "id" not in raw or not isinstance(raw.get("name"), str):
            problems.add("a category needs an integer 'id' and a 'name'", file=file, key=where)
            continue
        error = _id_error("category id", raw["id"])
        if error is not None:
            problems.add(error, file=file, key=f"{where}.id")
            continue
        parent = raw.get("supercategory")
        categories.append(
            Category(raw["id"], raw["name"], parent if isinstance(parent, str) and parent else None)
        )
    seen_ids: dict[int, str] = {}
    for index, cat in enumerate(categories):
        if cat.id in seen_ids:
            problems.add(
                f"category id {cat.id} is used twice ('{seen_ids[cat.id]}' and '{cat.name}')",
                file=file,
                key=f"categories[{index}].id",
            )
        seen_ids[cat.id] = cat.name
    images: list[CocoImage] = []
    image_ids: set[Any] = set()
    names: dict[str, int] = {}
    if not isinstance(data.get("images"), list):
        problems.add("required key 'images' (a list) is missing", file=file, key="images")
    for index, raw in enumerate(data.get("images") or []):
        where = f"images[{index}]"
        if not isinstance(raw, dict) or "id" not in raw:
            problems.add("an image needs an 'id'", file=file, key=where)
            continue
        error = _id_error("image id", raw["id"], strings=True)
        if error is not None:
            problems.add(error, file=file, key=f"{where}.id")
            continue
        name = raw.get("file_name")
        if not isinstance(name, str) or not name:
            problems.add("required key is missing or empty", file=file, key=f"{where}.file_name")
            continue
        if raw["id"] in image_ids:
            problems.add(
                f"image id {_shown(raw['id'])} is used twice", file=file, key=f"{where}.id"
            )
            continue
        if name in names:
            problems.add(
                f"file_name {name!r} is listed twice (images[{names[name]}] too)",
                file=file,
                key=f"{where}.file_name",
            )
            continue
        names[name] = index
        image_ids.add(raw["id"])
        width, height = raw.get("width"), raw.get("height")
        images.append(
            CocoImage(
                raw["id"],
                name,
                width if _whole(width) and width > 0 else None,
                height if _whole(height) and height > 0 else None,
            )
        )
    result = CocoFile(categories=categories, images=images)
    annotation_ids: dict[Any, int] = {}
    raw_annotations = data.get("annotations")
    if raw_annotations is not None and not isinstance(raw_annotations, list):
        problems.add("'annotations' must be a list", file=file, key="annotations")
        raw_annotations = []
    for index, raw in enumerate(raw_annotations or []):
        where = f"annotations[{index}]"
        if not isinstance(raw, dict):
            problems.add("an annotation is a JSON object", file=file, key=where)
            continue
        error = _id_error("image_id", raw.get("image_id"), strings=True)
        if error is not None:
            problems.add(error, file=file, key=f"{where}.image_id")
            continue
        if raw["image_id"] not in image_ids:
            problems.add(
                f"image_id {_shown(raw['image_id'])} is not in 'images'",
                file=file,
                key=f"{where}.image_id",
            )
            continue
        if "id" in raw:
            key = raw["id"]
            error = _id_error("annotation id", key, strings=True)
            if error is not None:
                problems.add(error, file=file, key=f"{where}.id")
                continue
            if key in annotation_ids:
                problems.add(
                    f"annotation id {_shown(key)} is used twice "
                    f"(annotations[{annotation_ids[key]}] too)",
                    file=file,
                    key=f"{where}.id",
                )
            annotation_ids.setdefault(key, index)
        annotation = _annotation(raw, where, problems, file)
        if annotation is None:
            continue
        if annotation.category_id not in seen_ids:
            problems.add(
                f"category id {annotation.category_id} is not in 'categories'",
                file=file,
                key=f"{where}.category_id",
            )
            continue
        result.annotations.setdefault(raw["image_id"], []).append(annotation)
    if own:
        problems.raise_if_any()
    return result


def decode(data: bytes, name: str) -> Any:
    """Decode a JSON document, reporting the line and column of a syntax error.

    Raises:
        PixelpipeError: On invalid JSON or text that is not UTF-8.
    """
    try:
        return json.loads(data.decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise PixelpipeError(
            Problem(f"invalid JSON at column {exc.colno}: {exc.msg}", file=name, line=exc.lineno)
        ) from None
    except UnicodeDecodeError as exc:
        raise PixelpipeError(Problem(f"not UTF-8 text (byte {exc.start})", file=name)) from None
    except ValueError:  # Python refuses to convert an integer of thousands of digits
        digits = sys.get_int_max_str_digits()
        raise PixelpipeError(
            Problem(f"invalid JSON: a number has more than {digits} digits", file=name)
        ) from None
    except RecursionError:
        raise PixelpipeError(
            Problem("invalid JSON: arrays or objects nest too deeply", file=name)
        ) from None


def load(path: Path, shown_as: str | None = None) -> CocoFile:
    """Read one COCO instances file from disk.

    Args:
        path: The JSON file.
        shown_as: The name to use in messages.

    Raises:
        PixelpipeError: On unreadable or invalid JSON (with line and column) or a
            malformed COCO structure.
    """
    name = shown_as or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PixelpipeError(Problem(f"cannot read: {exc}", file=name)) from None
    return parse(decode(data, name), name)
