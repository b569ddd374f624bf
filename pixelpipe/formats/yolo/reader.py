"""Reading YOLO: label files, and a whole tree in any of the three layouts.

:func:`parse_labels` parses one label file into normalized annotations,
:func:`label_candidates` says where an image's label file may be, and :func:`read`
reads the layout :mod:`~pixelpipe.formats.yolo.config` found into a
:class:`~pixelpipe.formats.base.LabelSet`.
"""

from __future__ import annotations

import math
import posixpath

from pixelpipe.dataset import Annotation, Category
from pixelpipe.formats.base import (
    Item,
    LabelSet,
    Problems,
    ReadOptions,
    Removal,
    has_extension,
    split_like,
)
from pixelpipe.formats.yolo.config import (
    NAMES_FILES,
    Layout,
    darknet,
    find_config,
    load_yaml,
    loose,
    ultralytics,
)
from pixelpipe.sources import Tree

NAME = "yolo"


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
        data = load_yaml(tree, rel, problems)
        layout = (
            ultralytics(tree, rel, data, options, problems, removed, warnings)
            if data is not None
            else Layout(kind, rel, {})
        )
    elif kind == "darknet":
        layout = darknet(tree, rel, problems, removed, options)
    else:
        layout = loose(tree, rel, options)
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


def _is_list_file(tree: Tree, rel: str, layout: Layout) -> bool:
    """True for a Darknet/Ultralytics image list (``train.txt``) rather than labels."""
    name = posixpath.basename(rel)[:-4]
    if not (split_like(name) or layout.kind == "darknet"):
        return False
    head = tree.read_text(rel).splitlines()[:1]
    return bool(head) and has_extension(head[0].strip(), (".jpg", ".jpeg", ".png", ".bmp"))
