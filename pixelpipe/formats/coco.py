"""COCO instances JSON: read and write.

Boxes are COCO's own convention (``[x, y, w, h]``, absolute float pixels, origin at the
top-left corner of the top-left pixel), so they pass through unchanged. Category ids are
kept as given, gaps and 0 included; ``supercategory`` becomes the category's parent.
Polygons (several parts per object) and RLE masks (compressed or not; uncompressed
counts are compressed on load) are kept, and so are ``iscrowd``, ``score``,
``attributes`` (CVAT, Datumaro) and ``keypoints``. Images without annotations are
samples without labels.

Several files may be read at once (``annotations/instances_train.json`` and
``instances_val.json``...): their class maps must agree, each file's split comes from its
name, and the images folder of each file is found by looking where its ``file_name``
values exist (next to the JSON, ``images/<split>/``, ``<split>/``, ``images/``...).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError, Problem
from pixelpipe.formats.base import (
    Item,
    LabelSet,
    Problems,
    ReadOptions,
    Removal,
    canonical_split,
    has_extension,
    merge_categories,
    split_like,
)
from pixelpipe.sources import Tree, join

NAME = "coco"
# Task files that share COCO's layout but are not object labels.
OTHER_TASKS = ("captions_", "panoptic_", "image_info_", "labels_", "stuff_")
_PEEK = 1 << 16


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


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _compress_rle(rle: dict[str, Any]) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    size = [int(v) for v in rle["size"]]
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

    category = raw.get("category_id")
    if not _whole(category):
        bad(f"category_id must be a whole number, got {category!r}", f"{where}.category_id")
        return None
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
        bad(f"bbox must be [x, y, width, height] numbers, got {bbox!r}", f"{where}.bbox")
        return None
    if bbox[2] < 0 or bbox[3] < 0:
        bad(f"bbox width and height must not be negative, got {bbox!r}", f"{where}.bbox")
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
        if (
            not isinstance(raw, dict)
            or not _whole(raw.get("id"))
            or not isinstance(raw.get("name"), str)
        ):
            problems.add("a category needs an integer 'id' and a 'name'", file=file, key=where)
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
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), int | str):
            problems.add("an image needs an 'id'", file=file, key=where)
            continue
        name = raw.get("file_name")
        if not isinstance(name, str) or not name:
            problems.add("required key is missing or empty", file=file, key=f"{where}.file_name")
            continue
        if raw["id"] in image_ids:
            problems.add(f"image id {raw['id']!r} is used twice", file=file, key=f"{where}.id")
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
        if raw.get("image_id") not in image_ids:
            problems.add(
                f"image_id {raw.get('image_id')!r} is not in 'images'",
                file=file,
                key=f"{where}.image_id",
            )
            continue
        if "id" in raw:
            key = raw["id"]
            if key in annotation_ids:
                problems.add(
                    f"annotation id {key!r} is used twice (annotations[{annotation_ids[key]}] too)",
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


def looks_like(tree: Tree, rel: str) -> bool:
    """True when ``rel`` is a JSON file whose beginning has COCO's ``images`` key."""
    if not rel.lower().endswith(".json"):
        return False
    try:
        with tree.access.open(rel) as stream:
            head = stream.read(_PEEK)
    except OSError:
        return False
    return b'"images"' in head or (len(head) == _PEEK and b'"annotations"' in head)


def discover(tree: Tree) -> list[str]:
    """The COCO files of a tree, when none are named.

    ``instances_*.json`` files when there are any; else ``annotations.json``,
    ``annotations/*.json`` and Roboflow's ``<split>/_annotations.coco.json`` (without
    ``annotations.json`` when ``annotations/<split>.json`` files are there: it is their
    union, as ``publish`` writes it); else JSON files at the root that look like COCO.
    Task files that are not object labels (``captions_*``, ``panoptic_*``...) are skipped.
    """
    shallow = [f for f in tree.files if f.lower().endswith(".json") and f.count("/") <= 2]
    labels = [f for f in shallow if not posixpath.basename(f).startswith(OTHER_TASKS)]
    instances = [f for f in labels if posixpath.basename(f).startswith("instances_")]
    if instances:
        return instances
    preferred = [
        f
        for f in labels
        if posixpath.basename(f) in ("annotations.json", "_annotations.coco.json")
        or posixpath.basename(posixpath.dirname(f)) == "annotations"
    ]
    per_split = [f for f in preferred if split_of(f) is not None]
    if per_split and "annotations.json" in preferred:
        # pixelpipe's own export: annotations.json is the union of the split files
        preferred = [f for f in preferred if f != "annotations.json"]
    if preferred:
        return preferred
    return [f for f in labels if "/" not in f and looks_like(tree, f)]


def split_of(rel: str) -> str | None:
    """The split a COCO file's name tells (``instances_val2017.json`` is ``val``)."""
    stem = posixpath.basename(rel)[: -len(".json")]
    if stem == "_annotations.coco":
        parent = posixpath.basename(posixpath.dirname(rel))
        return canonical_split(parent) if split_like(parent) else None
    for prefix in ("instances_", "person_keypoints_"):
        if stem.startswith(prefix):
            stem = stem[len(prefix) :]
            break
    return canonical_split(stem) if split_like(stem) else None


def _subset_name(rel: str) -> str | None:
    stem = posixpath.basename(rel)[: -len(".json")]
    for prefix in ("instances_", "person_keypoints_"):
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem if split_like(stem) else None


def image_root(tree: Tree, rel: str, names: Sequence[str], given: str = "") -> str:
    """The folder a COCO file's ``file_name`` values are relative to.

    Args:
        tree: The source.
        rel: The COCO file.
        names: Its ``file_name`` values.
        given: The folder named in options, if any (used as is).

    Returns:
        The candidate folder where the most ``file_name`` values exist (first wins a
        tie): the JSON's folder, then ``images/<subset>``, ``<subset>``, ``images``,
        ``data``, ``JPEGImages`` and the folder itself under the JSON's folder, its
        parent and the root.
    """
    if given:
        return given.strip("/")
    folder = posixpath.dirname(rel)
    subset = _subset_name(rel)
    candidates: list[str] = [folder]
    for base in dict.fromkeys([folder, posixpath.dirname(folder), ""]):
        for sub in ([f"images/{subset}", subset] if subset else []) + [
            "images",
            "data",
            "JPEGImages",
            "",
        ]:
            candidates.append(posixpath.join(base, sub).strip("/") if sub else base)
    best, best_score = candidates[0], -1
    sample = list(names)
    for candidate in dict.fromkeys(candidates):
        if candidate and not tree.is_dir(candidate):
            continue
        score = sum(1 for n in sample if (p := join(candidate, n)) and tree.status(p) != "missing")
        if score > best_score:
            best, best_score = candidate, score
    return best


def read(tree: Tree, options: ReadOptions | None = None) -> LabelSet:
    """Read the COCO files of a tree.

    Args:
        tree: The source folder.
        options: ``annotations`` (files to read; default: :func:`discover`),
            ``images`` (the images folder; default: found per file), ``extensions``.

    Returns:
        The labels; an image listed in two files has the annotations of both.

    Raises:
        PixelpipeError: When no COCO file is found, or listing every problem of every
            file (invalid JSON with line and column, malformed elements, unknown
            category ids, duplicate annotation ids, an image in two splits).
    """
    options = options or ReadOptions()
    problems = Problems()
    if options.annotations:
        files = list(options.annotations)
        for name in files:
            if not tree.exists(name):
                problems.add("COCO file not found", file=tree.shown(name), key="annotations")
        problems.raise_if_any()
    elif tree.hint and tree.hint.lower().endswith(".json"):
        files = [tree.hint]
    else:
        files = discover(tree)
    if not files:
        raise PixelpipeError(
            f"{tree.display}: no COCO file found (looked for annotations/instances_*.json, "
            "annotations.json, annotations/*.json, */_annotations.coco.json, *.json)"
        )
    found_categories: list[tuple[Category, str]] = []
    items: dict[str, Item] = {}
    removed: dict[str, Removal] = {}
    image_dirs: list[str] = []
    warnings: list[str] = []
    for rel in files:
        shown = tree.shown(rel)
        try:
            parsed = parse(decode(tree.read_bytes(rel), shown), shown, problems)
        except PixelpipeError as exc:
            problems.extend(exc)
            continue
        found_categories += [(c, shown) for c in parsed.categories]
        root = image_root(tree, rel, [i.file_name for i in parsed.images], options.images)
        image_dirs.append(root)
        split = split_of(rel)
        for index, image in enumerate(parsed.images):
            where = f"{shown} images[{index}]"
            path = join(root, image.file_name)
            if path is None:
                removed.setdefault(
                    image.file_name,
                    Removal(
                        image.file_name,
                        "unsafe_path",
                        f"{where}: file_name escapes the images folder",
                    ),
                )
                continue
            annotations = parsed.annotations.get(image.id, [])
            known = items.get(path)
            if known is None:
                items[path] = Item(
                    image=path,
                    split=split,
                    width=image.width,
                    height=image.height,
                    annotations=list(annotations),
                    origin=where,
                )
                continue
            if known.split != split:
                problems.add(
                    f"{image.file_name!r} is in split {split!r} here and {known.split!r} in "
                    f"{known.origin}",
                    file=shown,
                    key=f"images[{index}]",
                )
            if (image.width, image.height) != (known.width, known.height):
                problems.add(
                    f"{image.file_name!r} is {image.width}x{image.height} here and "
                    f"{known.width}x{known.height} in {known.origin}",
                    file=shown,
                    key=f"images[{index}]",
                )
            known.annotations.extend(annotations)
    categories = merge_categories(found_categories, problems)
    problems.raise_if_any()
    listed = set(items)
    for folder in dict.fromkeys(image_dirs):
        prefix = f"{folder}/" if folder else ""
        for rel in tree.files:
            if (
                rel.startswith(prefix)
                and rel not in listed
                and has_extension(rel, options.extensions)
            ):
                listed.add(rel)
                removed.setdefault(
                    rel,
                    Removal(rel, "unlisted", "image file is in no COCO annotation file", rel),
                )
    return LabelSet(
        format=NAME,
        categories=categories,
        items=[items[k] for k in sorted(items)],
        removed=[removed[k] for k in sorted(removed)],
        image_dirs=list(dict.fromkeys(image_dirs)),
        lists_images=True,
        warnings=warnings,
    )


def dump(
    samples: Iterable[Sample],
    categories: Iterable[Category],
    file_name: Callable[[Sample], str],
    ids: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """Build a COCO instances document.

    Image ids are 1..N in the order given, annotation ids 1..M; category ids are the
    class map's, unchanged unless ``ids`` maps them.

    Args:
        samples: The samples to export, in the order wanted.
        categories: The class map (every category is written, used or not).
        file_name: The ``file_name`` to write for a sample.
        ids: Class-map id to written id (see :func:`pixelpipe.formats.base.id_map`).
    """
    cats = sorted(categories, key=lambda c: c.id)
    mapping = dict(ids) if ids is not None else {c.id: c.id for c in cats}
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
                "category_id": mapping.get(ann.category_id, ann.category_id),
                "bbox": list(ann.bbox),
                "area": ann.area if ann.area is not None else ann.bbox[2] * ann.bbox[3],
                "iscrowd": int(ann.iscrowd),
                "segmentation": ann.rle if ann.rle is not None else (ann.polygons or []),
            }
            if ann.score is not None:
                entry["score"] = ann.score
            attributes = dict(ann.attributes)
            if isinstance(attributes.get("keypoints"), list):
                entry["keypoints"] = attributes.pop("keypoints")
                if "num_keypoints" in attributes:
                    entry["num_keypoints"] = attributes.pop("num_keypoints")
            if attributes:
                entry["attributes"] = attributes
            annotations.append(entry)
    return {
        "info": {"description": "exported by pixelpipe"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": mapping[c.id], "name": c.name, "supercategory": c.parent or ""} for c in cats
        ],
    }


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write a COCO document compactly, as UTF-8, with a final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8"
    )


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    copy_image: Callable[[Sample, Path], bool],
    ids: Mapping[int, int] | None = None,
) -> dict[str, int]:
    """Write a COCO layout into ``out``.

    ``images/<id>``, ``annotations.json`` with every sample and, when samples have
    splits, ``annotations/<split>.json`` per split. ``file_name`` is ``images/<id>``,
    relative to ``out``. Every file holds the whole class map.

    Args:
        samples: The samples, in id order.
        categories: The class map.
        out: The folder to write.
        copy_image: Copies a sample's image to a path; returns False when there is none.
        ids: Class-map id to written id.

    Returns:
        Counts: ``images``, ``boxes``.
    """

    def file_name(sample: Sample) -> str:
        return posixpath.join("images", sample.id)

    images = 0
    for sample in samples:
        if copy_image(sample, out / file_name(sample)):
            images += 1
    write_json(out / "annotations.json", dump(samples, categories, file_name, ids))
    splits: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.split:
            splits.setdefault(sample.split, []).append(sample)
    for split, members in sorted(splits.items()):
        write_json(out / "annotations" / f"{split}.json", dump(members, categories, file_name, ids))
    return {"images": images, "boxes": sum(len(s.annotations) for s in samples)}
