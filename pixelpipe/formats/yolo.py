"""YOLO: read the Ultralytics and Darknet layouts, write the Ultralytics one.

Layouts read:

- Ultralytics: a YAML file (``data.yaml``, or any YAML at the root with ``names``) whose
  ``train``/``val``/``test`` name image folders or list files, relative to its folder
  (or to ``path`` inside it); labels are found by replacing the last ``images`` folder
  of an image's path by ``labels`` and its extension by ``.txt``, else next to the image.
- Darknet: ``obj.data`` with ``names``, ``train``, ``valid`` (list files); paths written
  ``data/...`` are relative to the dataset folder. Labels sit next to the images.
- Loose: a names file (``obj.names``, ``classes.txt``, ``*.names``) and images anywhere;
  a folder called ``train``/``val``/``test`` on the way gives the split.

Each label line is ``class cx cy w h`` (a box; a sixth number is a score), or
``class x1 y1 x2 y2 ...`` (a polygon, at least 3 points), all normalized to [0, 1] by
the displayed image's width and height (after EXIF orientation, as Ultralytics does).
pixelpipe converts ``[x, y, w, h] = [(cx - w/2) W, (cy - h/2) H, w W, h H]``. Class
indices are the category ids. Values out of [0, 1] are kept as read (``validate``
reports them). A label file without its image becomes a ``missing`` removal; an image
without a label file is a sample without labels (counted in ``images_without_labels``).

Writing: ``data.yaml`` (``train``/``val``/``test``, ``nc``, ``names`` as a mapping),
``images/<split>/<id>`` and ``labels/<split>/<id stem>.txt``. Boxes are clipped to the
image and written with the shortest digits that read back exactly.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import (
    Item,
    LabelSet,
    Problems,
    ReadOptions,
    Removal,
    canonical_split,
    has_extension,
    number,
    split_like,
)
from pixelpipe.sources import Tree, join

NAME = "yolo"
SPLIT_KEYS = ("train", "val", "test")
NAMES_FILES = ("obj.names", "classes.txt", "classes.names", "coco.names")
YoloTask = Literal["detect", "segment"]


@dataclass
class _Layout:
    kind: str
    config: str | None
    names: dict[int, str]
    # split -> image paths (tree paths), in order
    splits: dict[str | None, list[str]] = field(default_factory=dict)
    label_dirs: list[str] = field(default_factory=list)
    keypoints: bool = False


def _load_yaml(tree: Tree, rel: str, problems: Problems) -> dict[str, Any] | None:
    shown = tree.shown(rel)
    try:
        data = yaml.safe_load(tree.read_text(rel))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        problems.add(
            f"invalid YAML: {exc.problem}",
            file=shown,
            line=mark.line + 1 if mark is not None else None,
        )
        return None
    except yaml.YAMLError as exc:
        problems.add(f"invalid YAML: {exc}", file=shown)
        return None
    if not isinstance(data, dict):
        problems.add("a YOLO dataset file is a mapping with 'names'", file=shown)
        return None
    return data


def _names_from_yaml(data: dict[str, Any], shown: str, problems: Problems) -> dict[int, str]:
    raw = data.get("names")
    names: dict[int, str] = {}
    if isinstance(raw, list):
        names = {index: str(name) for index, name in enumerate(raw)}
    elif isinstance(raw, dict):
        for key, value in raw.items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                problems.add(f"class index {key!r} is not a whole number", file=shown, key="names")
                continue
            if index < 0:
                problems.add(f"class index {index} is negative", file=shown, key="names")
                continue
            names[index] = str(value)
    else:
        problems.add(
            "required key 'names' (a list or a mapping) is missing", file=shown, key="names"
        )
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        problems.add(f"nc is {nc} but names has {len(names)} classes", file=shown, key="nc")
    return names


def _names_file(tree: Tree, rel: str) -> dict[int, str]:
    lines = [line.strip() for line in tree.read_text(rel).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return dict(enumerate(lines))


def _image_list(
    tree: Tree, rel: str, base: str, extensions: Sequence[str], removed: dict[str, Removal]
) -> list[str]:
    """Images named by a list file (one path per line)."""
    found = []
    parent = posixpath.dirname(rel)
    for line_number, line in enumerate(tree.read_text(rel).splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = _resolve_entry(tree, parent if entry.startswith("./") else base, entry)
        if path is None:
            removed.setdefault(
                entry,
                Removal(
                    entry,
                    "unsafe_path",
                    f"{tree.shown(rel)}:{line_number}: the path is absolute or leaves the "
                    "dataset folder",
                ),
            )
            continue
        found.append(path)
    return found


def _resolve_entry(tree: Tree, base: str, entry: str) -> str | None:
    """A path from a YOLO config: relative to ``base``; ``data/...`` as Darknet means it.

    As Ultralytics does, ``../x`` that is not there is retried as ``x``.
    """
    path = join(base, entry)
    retries = [path]
    if entry.startswith("../"):
        retries.append(join(base, entry[3:]))
    if entry.startswith("data/"):  # Darknet runs from its own folder, where data/ is ours
        retries.append(join(base, entry[5:]))
    for candidate in retries:
        if candidate is not None and (tree.exists(candidate) or tree.is_dir(candidate)):
            return candidate
    return path if path is not None else next((r for r in retries if r is not None), None)


def label_candidates(image: str) -> list[str]:
    """Where an image's label file may be: Ultralytics' ``images`` -> ``labels``, then beside."""
    stem = image.rsplit(".", 1)[0] if "." in posixpath.basename(image) else image
    candidates = []
    padded = f"/{stem}"
    if "/images/" in padded:
        head, tail = padded.rsplit("/images/", 1)
        candidates.append(f"{head}/labels/{tail}".lstrip("/") + ".txt")
    if "/JPEGImages/" in padded:
        head, tail = padded.rsplit("/JPEGImages/", 1)
        candidates.append(f"{head}/labels/{tail}".lstrip("/") + ".txt")
    candidates.append(f"{stem}.txt")
    return candidates


def _label_dir(folder: str) -> str:
    padded = f"/{folder}/"
    if "/images/" in padded:
        head, tail = padded.rsplit("/images/", 1)
        return f"{head}/labels/{tail}".strip("/")
    return folder


def _ultralytics(
    tree: Tree,
    rel: str,
    data: dict[str, Any],
    options: ReadOptions,
    problems: Problems,
    removed: dict[str, Removal],
    warnings: list[str],
) -> _Layout:
    shown = tree.shown(rel)
    names = _names_from_yaml(data, shown, problems)
    base = posixpath.dirname(rel)
    path_value = data.get("path")
    if isinstance(path_value, str) and path_value not in ("", "."):
        inside = join(base, path_value)
        if inside is not None and tree.is_dir(inside):
            base = inside
        else:
            warnings.append(
                f"{shown}: path {path_value!r} is not a folder inside the source; "
                "train/val/test are read relative to the YAML file's folder"
            )
    layout = _Layout("ultralytics", rel, names, keypoints="kpt_shape" in data)
    if layout.keypoints:
        warnings.append(f"{shown}: keypoints (kpt_shape) are not read; boxes are")
    for key in SPLIT_KEYS:
        value = data.get(key)
        if value is None:
            continue
        entries = value if isinstance(value, list) else [value]
        images: list[str] = []
        for entry in entries:
            if not isinstance(entry, str) or not entry:
                problems.add("must be a path or a list of paths", file=shown, key=key)
                continue
            path = _resolve_entry(tree, base, entry)
            if path is None:
                problems.add(
                    f"{entry!r} is absolute or leaves the dataset folder", file=shown, key=key
                )
            elif tree.is_dir(path):
                images += [f for f in tree.under(path) if has_extension(f, options.extensions)]
                layout.label_dirs.append(_label_dir(path))
            elif tree.exists(path) and path.endswith(".txt"):
                listed = _image_list(tree, path, base, options.extensions, removed)
                images += listed
                layout.label_dirs += sorted({_label_dir(posixpath.dirname(p)) for p in listed})
            else:
                problems.add(f"{entry!r} not found (resolved to {path!r})", file=shown, key=key)
        layout.splits[key] = images
    if not layout.splits and not problems:
        problems.add("no 'train', 'val' or 'test' key names the images", file=shown)
    return layout


def _darknet(
    tree: Tree, rel: str, problems: Problems, removed: dict[str, Removal], options: ReadOptions
) -> _Layout:
    shown = tree.shown(rel)
    base = posixpath.dirname(rel)
    values: dict[str, tuple[str, int]] = {}
    for line_number, line in enumerate(tree.read_text(rel).splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "=" not in stripped:
            problems.add("expected 'key = value'", file=shown, line=line_number)
            continue
        key, value = (p.strip() for p in stripped.split("=", 1))
        values[key] = (value, line_number)
    names: dict[int, str] = {}
    if "names" not in values:
        problems.add("required key 'names' is missing", file=shown, key="names")
    else:
        value, line_number = values["names"]
        path = _resolve_entry(tree, base, value)
        if path is None or not tree.exists(path):
            problems.add(f"names file {value!r} not found", file=shown, line=line_number)
        else:
            names = _names_file(tree, path)
    classes = values.get("classes")
    if classes is not None and classes[0].isdigit() and int(classes[0]) != len(names) and names:
        problems.add(
            f"classes is {classes[0]} but the names file has {len(names)}",
            file=shown,
            line=classes[1],
        )
    layout = _Layout("darknet", rel, names)
    for key, split in (("train", "train"), ("valid", "val"), ("test", "test")):
        if key not in values:
            continue
        value, line_number = values[key]
        path = _resolve_entry(tree, base, value)
        if path is None or not tree.exists(path):
            problems.add(f"list file {value!r} not found", file=shown, line=line_number)
            continue
        listed = _image_list(tree, path, base, options.extensions, removed)
        layout.splits[split] = listed
        layout.label_dirs += sorted({posixpath.dirname(p) for p in listed})
    return layout


def _loose(tree: Tree, rel: str, options: ReadOptions) -> _Layout:
    names = _names_file(tree, rel)
    layout = _Layout("loose", rel, names)
    for image in tree.files:
        if not has_extension(image, options.extensions):
            continue
        parts = image.split("/")[:-1]
        if "labels" in parts:
            continue
        split = next((canonical_split(p) for p in parts if split_like(p)), None)
        layout.splits.setdefault(split, []).append(image)
    folders = {posixpath.dirname(p) for paths in layout.splits.values() for p in paths}
    layout.label_dirs = sorted({_label_dir(f) for f in folders})
    return layout


def find_config(tree: Tree, options: ReadOptions) -> tuple[str, str]:
    """The YOLO file that describes the dataset, and its kind.

    Returns:
        ``(path, kind)`` with kind ``ultralytics`` (a YAML with ``names``), ``darknet``
        (``obj.data``) or ``loose`` (a names file).

    Raises:
        PixelpipeError: When none is found, or several YAML files could be it.
    """
    named = list(options.annotations)
    if not named and tree.hint:
        named = [tree.hint]
    if named:
        rel = named[0]
        if not tree.exists(rel):
            raise PixelpipeError(f"{tree.shown(rel)}: YOLO dataset file not found")
        if rel.endswith((".yaml", ".yml")):
            return rel, "ultralytics"
        if rel.endswith(".data"):
            return rel, "darknet"
        return rel, "loose"
    yamls = [f for f in tree.children() if f.endswith((".yaml", ".yml")) and tree.exists(f)]
    with_names = [f for f in yamls if _has_names(tree, f)]
    if len(with_names) > 1:
        raise PixelpipeError(
            f"{tree.display}: several YOLO dataset files ({', '.join(with_names)}); "
            "name the one to read in `annotations`"
        )
    if with_names:
        return with_names[0], "ultralytics"
    datas = [f for f in tree.children() if f.endswith(".data") and tree.exists(f)]
    if datas:
        return datas[0], "darknet"
    for name in NAMES_FILES:
        if tree.exists(name):
            return name, "loose"
    others = [f for f in tree.children() if f.endswith(".names") and tree.exists(f)]
    if others:
        return others[0], "loose"
    raise PixelpipeError(
        f"{tree.display}: no YOLO dataset file (data.yaml with names, obj.data, obj.names "
        "or classes.txt)"
    )


def _has_names(tree: Tree, rel: str) -> bool:
    try:
        data = yaml.safe_load(tree.read_text(rel))
    except (yaml.YAMLError, PixelpipeError):
        return False
    return isinstance(data, dict) and "names" in data


def parse_labels(
    text: str, file: str, names: dict[int, str], problems: Problems, keypoints: bool = False
) -> list[Annotation]:
    """Parse one label file into normalized annotations (fractions of the image size)."""
    annotations: list[Annotation] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            raw_class = float(tokens[0])
        except ValueError:
            raw_class = math.nan
        if not math.isfinite(raw_class) or raw_class != int(raw_class):
            problems.add(
                f"class index must be a whole number, got {tokens[0]!r}",
                file=file,
                line=line_number,
            )
            continue
        category = int(raw_class)
        if category not in names:
            problems.add(
                f"class {category} is not in names (0..{max(names) if names else -1})",
                file=file,
                line=line_number,
            )
            continue
        try:
            values = [float(t) for t in tokens[1:]]
        except ValueError:
            problems.add("coordinates must be numbers", file=file, line=line_number)
            continue
        if not all(math.isfinite(v) for v in values):
            problems.add("coordinates must be finite numbers", file=file, line=line_number)
            continue
        score = None
        polygons = None
        if keypoints and len(values) >= 4:
            values = values[:4]
        if len(values) in (4, 5):
            cx, cy, w, h = values[:4]
            score = values[4] if len(values) == 5 else None
            if w < 0 or h < 0:
                problems.add(
                    "box width and height must not be negative", file=file, line=line_number
                )
                continue
            bbox = (cx - w / 2, cy - h / 2, w, h)
        elif len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = values[0::2], values[1::2]
            polygons = [values]
            bbox = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        else:
            problems.add(
                f"expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...', got "
                f"{len(tokens)} values",
                file=file,
                line=line_number,
            )
            continue
        annotations.append(
            Annotation(category_id=category, bbox=bbox, polygons=polygons, score=score)
        )
    return annotations


def read(tree: Tree, options: ReadOptions | None = None) -> LabelSet:
    """Read a YOLO dataset (Ultralytics, Darknet or loose layout).

    Args:
        tree: The source folder.
        options: ``annotations`` (the YAML, ``obj.data`` or names file; default: found),
            ``extensions``.

    Returns:
        Items with normalized annotations (:attr:`Item.normalized`); label files
        without an image as ``missing`` removals.

    Raises:
        PixelpipeError: Listing every problem (bad YAML with its line, a split path
            that does not exist, a bad label line with its file and line number, a class
            index not in ``names``).
    """
    options = options or ReadOptions()
    problems = Problems()
    removed: dict[str, Removal] = {}
    warnings: list[str] = []
    rel, kind = find_config(tree, options)
    if kind == "ultralytics":
        data = _load_yaml(tree, rel, problems)
        layout = (
            _ultralytics(tree, rel, data, options, problems, removed, warnings)
            if data is not None
            else _Layout(kind, rel, {})
        )
    elif kind == "darknet":
        layout = _darknet(tree, rel, problems, removed, options)
    else:
        layout = _loose(tree, rel, options)
    problems.raise_if_any()
    split_of: dict[str, str | None] = {}
    lists = [tuple(v) for v in layout.splits.values()]
    same = len(lists) > 1 and all(v == lists[0] for v in lists)
    doubled = 0
    for split, images in layout.splits.items():
        for image in images:
            if image in split_of:
                doubled += split_of[image] != split
                continue
            split_of[image] = None if same else split
    if doubled and not same:
        warnings.append(
            f"{doubled} images are listed in more than one split; each is kept in the first "
            f"({', '.join(str(s) for s in layout.splits)})"
        )
    items: list[Item] = []
    claimed: set[str] = set()
    without = 0
    for image in sorted(split_of):
        status = tree.status(image)
        label = next((c for c in label_candidates(image) if tree.exists(c)), None)
        annotations: list[Annotation] = []
        if label is not None:
            claimed.add(label)
            annotations = parse_labels(
                tree.read_text(label), tree.shown(label), layout.names, problems, layout.keypoints
            )
        elif status == "ok":
            without += 1
        items.append(
            Item(
                image=image,
                split=split_of[image],
                annotations=annotations,
                normalized=True,
                origin=tree.shown(label) if label else tree.shown(image),
            )
        )
    problems.raise_if_any()
    skip = {rel, *NAMES_FILES}
    expected = {c for image in split_of for c in label_candidates(image)}
    for folder in dict.fromkeys(layout.label_dirs):
        scanned = tree.under(folder) if folder else (f for f in tree.files if "/" not in f)
        for label in scanned:
            if (
                not label.endswith(".txt")
                or label in claimed
                or label in expected
                or label in skip
                or posixpath.basename(label).lower() in ("readme.txt", "license.txt")
                or _is_list_file(tree, label, layout)
            ):
                continue
            removed.setdefault(
                label,
                Removal(label, "missing", f"label file {tree.shown(label)} has no image", label),
            )
    categories = [Category(index, name) for index, name in sorted(layout.names.items())]
    return LabelSet(
        format=NAME,
        categories=categories,
        items=items,
        removed=[removed[k] for k in sorted(removed)],
        image_dirs=sorted({posixpath.dirname(i) for i in split_of}),
        lists_images=False,
        notes={"images_without_labels": without},
        warnings=warnings,
    )


def _is_list_file(tree: Tree, rel: str, layout: _Layout) -> bool:
    """True for a Darknet/Ultralytics image list (``train.txt``) rather than labels."""
    name = posixpath.basename(rel)[:-4]
    if not (split_like(name) or layout.kind == "darknet"):
        return False
    head = tree.read_text(rel).splitlines()[:1]
    return bool(head) and has_extension(head[0].strip(), (".jpg", ".jpeg", ".png", ".bmp"))


def _clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _merge_parts(parts: list[list[float]]) -> list[float]:
    """One polygon tracing every part, joined at their nearest points (as Ultralytics does)."""
    merged = [(parts[0][i], parts[0][i + 1]) for i in range(0, len(parts[0]), 2)]
    for part in parts[1:]:
        points = [(part[i], part[i + 1]) for i in range(0, len(part), 2)]
        best = min(
            ((a, b) for a in range(len(merged)) for b in range(len(points))),
            key=lambda ab: (
                (merged[ab[0]][0] - points[ab[1]][0]) ** 2
                + (merged[ab[0]][1] - points[ab[1]][1]) ** 2
            ),
        )
        a, b = best
        loop = points[b:] + points[: b + 1]
        merged = merged[: a + 1] + loop + merged[a:]
    return [v for point in merged for v in point]


def _mask_polygon(rle: dict[str, Any]) -> list[float] | None:
    import numpy as np
    from pycocotools import mask as mask_utils
    from skimage import measure

    mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
    contours = measure.find_contours(np.pad(mask, 1), 0.5)  # type: ignore[no-untyped-call]
    if not contours:
        return None
    contour = max(contours, key=len) - 1  # undo the padding
    return [float(v) for point in contour for v in (point[1] + 0.5, point[0] + 0.5)]


def label_lines(
    sample: Sample,
    ids: dict[int, int],
    task: YoloTask = "detect",
    include_crowd: bool = False,
) -> tuple[list[str], dict[str, int]]:
    """The label lines of a sample, and counts of what was clipped or left out."""
    counts = {"boxes": 0, "boxes_clipped": 0, "boxes_outside": 0, "crowd_skipped": 0}
    lines: list[str] = []
    width, height = float(sample.width), float(sample.height)
    for ann in sample.annotations:
        if ann.iscrowd and not include_crowd:
            counts["crowd_skipped"] += 1
            continue
        x, y, w, h = ann.bbox
        if x > width or y > height or x + w < 0 or y + h < 0:
            counts["boxes_outside"] += 1
            continue
        cls = str(ids[ann.category_id])
        polygon: list[float] | None = None
        if task == "segment":
            if ann.polygons:
                polygon = _merge_parts(ann.polygons) if len(ann.polygons) > 1 else ann.polygons[0]
            elif ann.rle is not None:
                polygon = _mask_polygon(ann.rle)
            if polygon is None:
                polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
            values = [_clip(v / (width if i % 2 == 0 else height)) for i, v in enumerate(polygon)]
            lines.append(" ".join([cls, *(number(v) for v in values)]))
            counts["boxes"] += 1
            continue
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, width), min(y + h, height)
        if (x1, y1, x2, y2) != (x, y, x + w, y + h):
            counts["boxes_clipped"] += 1
        cx, cy = _clip((x1 + x2) / 2 / width), _clip((y1 + y2) / 2 / height)
        nw, nh = _clip((x2 - x1) / width), _clip((y2 - y1) / height)
        lines.append(" ".join([cls, number(cx), number(cy), number(nw), number(nh)]))
        counts["boxes"] += 1
    return lines, counts


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    copy_image: Callable[[Sample, Path], bool],
    ids: dict[int, int],
    task: YoloTask = "detect",
    include_crowd: bool = False,
) -> dict[str, int]:
    """Write an Ultralytics layout into ``out``.

    Samples without a split go to ``unassigned`` when others have one; when none has,
    images are in ``images/`` and ``data.yaml`` names it as both ``train`` and ``val``
    (Ultralytics needs ``val``). Without a ``val`` split, ``val`` repeats ``train``.

    Args:
        samples: The samples, in id order.
        categories: The class map.
        out: The folder to write.
        copy_image: Copies a sample's image to a path; returns False when there is none.
        ids: Class-map id to YOLO class index (0..n-1).
        task: ``detect`` writes boxes; ``segment`` writes polygons (masks traced, boxes
            as rectangles).
        include_crowd: Write crowd boxes too (Ultralytics' converter leaves them out).

    Returns:
        Counts: ``images``, ``boxes``, ``boxes_clipped``, ``boxes_outside``,
        ``crowd_skipped``.

    Raises:
        PixelpipeError: When two ids would share a label file (``a.jpg`` and ``a.png``).
    """
    split_names = {s.split for s in samples}
    use_splits = split_names != {None}
    totals = {"images": 0, "boxes": 0, "boxes_clipped": 0, "boxes_outside": 0, "crowd_skipped": 0}
    seen: dict[str, str] = {}
    folders: set[str] = set()
    for sample in samples:
        folder = (sample.split or "unassigned") if use_splits else ""
        folders.add(folder)
        stem = posixpath.splitext(sample.id)[0]
        label_rel = posixpath.join("labels", folder, f"{stem}.txt")
        if label_rel in seen:
            raise PixelpipeError(
                f"YOLO export: '{sample.id}' and '{seen[label_rel]}' would share the label file "
                f"{label_rel}; rename one"
            )
        seen[label_rel] = sample.id
        lines, counts = label_lines(sample, ids, task, include_crowd)
        for key, value in counts.items():
            totals[key] += value
        label = out / label_rel
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        if copy_image(sample, out / "images" / folder / sample.id):
            totals["images"] += 1
    config: dict[str, Any] = {}
    if use_splits:
        ordered = [s for s in ("train", "val", "test") if s in folders] + sorted(
            folders - {"train", "val", "test"}
        )
        for folder in ordered:
            config[folder] = f"images/{folder}"
        if "val" not in config and "train" in config:
            config["val"] = config["train"]
    else:
        config["train"] = "images"
        config["val"] = "images"
    ordered_categories = sorted(categories, key=lambda c: c.id)
    config["nc"] = len(ordered_categories)
    config["names"] = {ids[c.id]: c.name for c in ordered_categories}
    (out / "data.yaml").write_text(
        "# YOLO (Ultralytics) dataset written by pixelpipe; paths are relative to this file.\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False),
        encoding="utf-8",
    )
    (out / "labels").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    return totals
