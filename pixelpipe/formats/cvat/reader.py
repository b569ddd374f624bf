"""Reading CVAT for images 1.1 XML (``annotations.xml``): boxes, polygons and tags.

The labels of ``<meta>`` (task or project) in document order are the class map, ids
0..n-1. Each ``<image name width height [subset]>`` is an item in pixels (CVAT writes
continuous corner coordinates: ``[x, y, w, h] = [xtl, ytl, xbr - xtl, ybr - ytl]``);
``<polygon points="x,y;...">`` is a polygon with its extent as box; ``<tag>`` is a
whole-image class label ``[0, 0, W, H]`` with the attribute ``image_label``. A shape's
``<attribute>`` children become attributes (numbers for ``number`` attributes and
booleans for ``checkbox`` ones, as ``<meta>`` declares them), and so do ``occluded``,
``source``, ``z_order`` and ``group_id``; the ``score`` attribute (CVAT has no confidence
of its own) is the annotation's ``score``, except on a ``source="manual"`` shape, where it
is the value CVAT fills in for a shape a person drew. Polylines, points, ellipses, masks, cuboids,
skeletons and tracks are counted and skipped. CVAT does not say who drew a shape:
``annotator`` is left unset. Image names are relative to ``images/<subset>/`` or
``images/`` beside the XML when that folder exists, else to the XML's folder. XML is
parsed with defusedxml: DTDs and entities are refused.
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pixelpipe.dataset import Annotation, Category
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import (
    Item,
    LabelSet,
    Problems,
    ReadOptions,
    Removal,
    canonical_split,
    number,
    parse_number,
    split_like,
    unlisted,
)
from pixelpipe.formats.imagefolder import IMAGE_LABEL
from pixelpipe.formats.named import label_files
from pixelpipe.formats.xmlparse import parse_xml
from pixelpipe.sources import Tree, join, safe_relative

NAME = "cvat"
SCORE = "score"
"""The shape attribute that holds a model's confidence."""
ROOT = "annotations"
SHAPES = ("box", "polygon", "tag")
_PEEK = 4096
_PROLOG = re.compile(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>", re.S)
_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_INTEGER = re.compile(r"^[+-]?\d+$")


def root_tag(head: bytes) -> str | None:
    """The root element's name from the beginning of an XML document, if it shows."""
    found = _TAG.search(_PROLOG.sub(b"", head))
    return found.group(1).decode("ascii", "replace") if found else None


def looks_like(tree: Tree, rel: str) -> bool:
    """True when ``rel`` is an XML file whose root element is ``<annotations>``."""
    if not rel.lower().endswith(".xml"):
        return False
    try:
        with tree.access.open(rel) as stream:
            return root_tag(stream.read(_PEEK)) == ROOT
    except OSError:
        return False


def discover(tree: Tree) -> list[str]:
    """The CVAT files of a tree: XML files at its root whose root element is ``<annotations>``.

    ``annotations.xml`` and the first 20 other root XML files are looked at.
    """
    xmls = [f for f in tree.files if "/" not in f and f.lower().endswith(".xml")]
    looked = dict.fromkeys([f for f in xmls if f == "annotations.xml"] + xmls[:20])
    return sorted(f for f in looked if looks_like(tree, f))


@dataclass
class Meta:
    """What ``<meta>`` declares.

    Attributes:
        labels: Label names in document order.
        kinds: ``input_type`` of each declared attribute, by (label, attribute name).
        subsets: A task's subset by task id (project exports).
        subset: The subset of a task export.
    """

    labels: list[str] = field(default_factory=list)
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    subsets: dict[str, str] = field(default_factory=dict)
    subset: str | None = None


def parse_meta(root: ET.Element) -> Meta:
    """The labels, attribute types and subsets declared in a document's ``<meta>``."""
    meta = Meta()
    element = root.find("meta")
    if element is None:
        return meta
    for labels in element.iter("labels"):
        for label in labels.findall("label"):
            name = (label.findtext("name") or "").strip()
            if not name:
                continue
            if name not in meta.labels:
                meta.labels.append(name)
            for attribute in label.findall("attributes/attribute"):
                key = (attribute.findtext("name") or "").strip()
                kind = (attribute.findtext("input_type") or "").strip().lower()
                meta.kinds[(name, key)] = kind
    for task in element.iter("task"):
        subset = (task.findtext("subset") or "").strip()
        if subset:
            meta.subsets[(task.findtext("id") or "").strip()] = subset
    single = element.find("task")
    if single is not None:
        meta.subset = (single.findtext("subset") or "").strip() or None
    return meta


def attribute_value(text: str | None, kind: str | None) -> Any:
    """An attribute's value as its declared ``input_type`` says (text when undeclared).

    Raises:
        ValueError: For a ``number`` that is not a finite number, or a ``checkbox`` that
            is not ``true`` or ``false``.
    """
    raw = text or ""
    if kind == "number":
        value = parse_number(raw)
        if value is None:
            raise ValueError(f"must be a number, got {raw!r}")
        return int(raw.strip()) if _INTEGER.match(raw.strip()) else value
    if kind == "checkbox":
        lowered = raw.strip().lower()
        if lowered not in ("true", "false", "1", "0"):
            raise ValueError(f"must be true or false, got {raw!r}")
        return lowered in ("true", "1")
    return raw


def _positive(text: str | None) -> int | None:
    value = (text or "").strip()
    return int(value) if _INTEGER.match(value) and int(value) > 0 else None


def _points(text: str | None) -> list[float]:
    values: list[float] = []
    for pair in (text or "").strip().split(";"):
        xy = [parse_number(v) for v in pair.split(",")]
        if len(xy) != 2 or xy[0] is None or xy[1] is None:
            raise ValueError(f"points must be 'x,y;x,y;...' numbers, got {pair!r}")
        values += [xy[0], xy[1]]
    if len(values) < 6:
        raise ValueError("a polygon needs at least 3 points")
    return values


def _box(element: ET.Element) -> tuple[float, float, float, float]:
    corners = [parse_number(element.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")]
    if any(v is None for v in corners):
        shown = [element.get(k) for k in ("xtl", "ytl", "xbr", "ybr")]
        raise ValueError(f"xtl, ytl, xbr and ybr must be numbers, got {shown}")
    x1, y1, x2, y2 = (float(v or 0.0) for v in corners)
    if x2 < x1 or y2 < y1:
        raise ValueError(
            f"xbr/ybr ({number(x2)}, {number(y2)}) are less than xtl/ytl "
            f"({number(x1)}, {number(y1)})"
        )
    return x1, y1, x2 - x1, y2 - y1


@dataclass
class _Reader:
    """The state of one read: the class map, items by path, counts, problems."""

    tree: Tree
    options: ReadOptions
    problems: Problems = field(default_factory=Problems)
    labels: list[str] = field(default_factory=list)
    items: dict[str, Item] = field(default_factory=dict)
    removed: dict[str, Removal] = field(default_factory=dict)
    image_dirs: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    pending: list[tuple[Annotation, str]] = field(default_factory=list)
    shown: str = ""
    lines: dict[int, int] = field(default_factory=dict)
    score_attribute: str = SCORE

    def bad(self, message: str, element: ET.Element | None, key: str | None = None) -> None:
        line = self.lines.get(id(element)) if element is not None else None
        self.problems.add(message, file=self.shown, line=line, key=key)

    def file(self, rel: str) -> None:
        self.shown = self.tree.shown(rel)
        try:
            root, self.lines = parse_xml(self.tree.read_bytes(rel), self.shown)
        except PixelpipeError as exc:
            self.problems.extend(exc)
            return
        if root.tag != ROOT:
            self.bad(f"the root element is <{root.tag}>, CVAT's is <{ROOT}>", root)
            return
        meta = parse_meta(root)
        self.labels += [name for name in meta.labels if name not in self.labels]
        images, tracks = root.findall("image"), root.findall("track")
        if tracks and not images:
            self.bad("CVAT for video (<track>) is not read; export as CVAT for images 1.1", root)
            return
        self.notes["cvat_skipped_track"] += len(tracks)
        base = posixpath.dirname(rel)
        stem = posixpath.splitext(posixpath.basename(rel))[0]
        folder = self.options.images.strip("/") or join(base, "images") or "images"
        if not (self.options.images or self.tree.is_dir(folder)):
            folder = base
        self.image_dirs.append(folder)
        allowed = set(self.options.classes or meta.labels)
        seen: dict[str, int | None] = {}
        for index, image in enumerate(images, start=1):
            task_subset = meta.subsets.get(image.get("task_id") or "", meta.subset)
            subset = image.get("subset") or task_subset
            split = canonical_split(subset) if subset else canonical_split(stem)
            if not subset and not split_like(stem):
                split = None
            self.image(image, f"image[{index}]", meta, allowed, folder, base, subset, split, seen)

    def image(
        self,
        element: ET.Element,
        key: str,
        meta: Meta,
        allowed: set[str],
        folder: str,
        base: str,
        subset: str | None,
        split: str | None,
        seen: dict[str, int | None],
    ) -> None:
        name = element.get("name") or ""
        width, height = (_positive(element.get(k)) for k in ("width", "height"))
        if not name:
            self.bad("the image has no name", element, f"{key}/@name")
            return
        if width is None or height is None:
            given = f"{element.get('width')!r} and {element.get('height')!r}"
            self.bad(f"width and height must be positive whole numbers, got {given}", element, key)
            return
        path = self.locate(folder, base, name, subset)
        line = self.lines.get(id(element))
        if path is None:
            self.removed.setdefault(
                name, Removal(name, "unsafe_path", f"{self.shown}:{line}: name escapes {folder}/")
            )
            return
        if path in seen:
            self.bad(f"{name!r} is listed twice (line {seen[path]} too)", element, key)
            return
        seen[path] = line
        size = (width, height)
        annotations, rotated = self.shapes(element, key, meta, allowed, size)
        if rotated is not None:
            self.items.pop(path, None)
            detail = f"{rotated}; a rotated box is not an [x, y, w, h] box"
            self.removed.setdefault(path, Removal(path, "rotated", detail, path))
        if path in self.removed:
            return
        known = self.items.get(path)
        if known is None:
            self.items[path] = Item(
                image=path,
                split=split,
                width=size[0],
                height=size[1],
                annotations=annotations,
                origin=f"{self.shown}:{line}",
            )
            return
        if (known.width, known.height) != size:
            self.bad(
                f"{name!r} is {size[0]}x{size[1]} here and {known.width}x{known.height} in "
                f"{known.origin}",
                element,
                key,
            )
        if known.split != split:
            self.bad(
                f"{name!r} is in split {split!r} here and {known.split!r} in {known.origin}",
                element,
                key,
            )
        known.annotations.extend(annotations)

    def locate(self, folder: str, base: str, name: str, subset: str | None) -> str | None:
        if safe_relative(name) is None:
            return None
        candidates = []
        if folder != base:
            inner = join(folder, subset) if subset else None
            if inner and self.tree.is_dir(inner):
                candidates.append(join(inner, name))
            candidates.append(join(folder, name))
        candidates.append(join(base, name))
        found = [c for c in candidates if c is not None]
        return next((c for c in found if self.tree.exists(c)), found[0] if found else None)

    def shapes(
        self, image: ET.Element, key: str, meta: Meta, allowed: set[str], size: tuple[int, int]
    ) -> tuple[list[Annotation], str | None]:
        annotations: list[Annotation] = []
        rotated: str | None = None
        counts: Counter[str] = Counter()
        for element in image:
            kind = element.tag
            counts[kind] += 1
            where = f"{key}/{kind}[{counts[kind]}]"
            if kind not in SHAPES:
                self.notes[f"cvat_skipped_{kind}"] += 1
                continue
            label = element.get("label") or ""
            if not label:
                self.notes["cvat_shapes_without_label"] += 1
                continue
            if label not in allowed:
                known = ", ".join(sorted(allowed)[:10]) or "none"
                self.bad(f"label '{label}' is not declared in <meta> ({known})", element, where)
                continue
            attributes = self.attributes(element, label, meta, where)
            ok, score = self.score(attributes, element, where)
            if not ok:
                continue
            polygons = None
            try:
                if kind == "box":
                    bbox = _box(element)
                    angle = parse_number(element.get("rotation") or "0")
                    if angle is None:
                        raise ValueError(
                            f"rotation must be a number, got {element.get('rotation')!r}"
                        )
                    if angle % 360 != 0 and rotated is None:
                        at = f"{self.shown}:{self.lines.get(id(element))}"
                        rotated = f"{at}: {where} has rotation {number(angle)}"
                elif kind == "polygon":
                    points = _points(element.get("points"))
                    xs, ys = points[0::2], points[1::2]
                    bbox = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
                    polygons = [points]
                else:
                    bbox = (0.0, 0.0, float(size[0]), float(size[1]))
                    attributes[IMAGE_LABEL] = True
            except ValueError as exc:
                self.bad(str(exc), element, where)
                continue
            annotation = Annotation(-1, bbox, polygons=polygons, score=score, attributes=attributes)
            annotations.append(annotation)
            self.pending.append((annotation, label))
        return annotations, rotated

    def score(
        self, attributes: dict[str, Any], element: ET.Element, where: str
    ) -> tuple[bool, float | None]:
        """Take the score out of a shape's attributes: (readable, score or ``None``)."""
        name = self.score_attribute
        if name not in attributes:
            return True, None
        value = attributes.pop(name)
        number_value: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number_value = float(value)
        elif isinstance(value, str):
            number_value = parse_number(value)
        if number_value is None:
            self.bad(
                f"attribute '{name}' (the score) must be a number, got {value!r}", element, where
            )
            return False, None
        if attributes.get("source") == "manual":
            self.notes["cvat_manual_scores_ignored"] += 1
            return True, None
        return True, number_value

    def attributes(self, element: ET.Element, label: str, meta: Meta, where: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if (element.get("occluded") or "").strip().lower() in ("1", "true"):
            found["occluded"] = True
        if element.get("source"):
            found["source"] = element.get("source")
        for name in ("z_order", "group_id"):
            text = (element.get(name) or "").strip()
            if _INTEGER.match(text) and int(text) != 0:
                found[name] = int(text)
        for index, child in enumerate(element.findall("attribute"), start=1):
            name = child.get("name") or ""
            if not name:
                self.bad("an <attribute> needs a name", child, f"{where}/attribute[{index}]")
                continue
            try:
                found[name] = attribute_value(child.text, meta.kinds.get((label, name)))
            except ValueError as exc:
                self.bad(f"attribute '{name}' {exc}", child, f"{where}/attribute[{index}]")
        return found


def read(
    tree: Tree, options: ReadOptions | None = None, *, score_attribute: str = SCORE
) -> LabelSet:
    """Read CVAT for images 1.1 XML files.

    Args:
        tree: The source: an XML file (its folder is the tree) or an export folder.
        options: ``annotations`` (files to read; default: the named file, else
            :func:`discover`), ``images`` (the images folder), ``classes`` (names in id
            order; default: the labels of ``<meta>``), ``extensions``.
        score_attribute: The shape attribute that is the annotation's ``score`` (not
            kept among its attributes; ignored on ``source="manual"`` shapes, counted as
            ``cvat_manual_scores_ignored``).

    Returns:
        One item per image, in pixels with its declared size and split; ``rotated``
        removals for images with a rotated box, ``unsafe_path`` for names that leave the
        images folder, ``unlisted`` for images of that folder that no file lists.

    Raises:
        PixelpipeError: Listing every problem with its file, line and element: invalid
            XML, DTDs and entities, a label not declared in ``<meta>``, malformed
            coordinates or attributes, a score that is not a number, an image listed twice.
    """
    options = options or ReadOptions()
    reader = _Reader(tree, options, score_attribute=score_attribute)
    none = (
        "no CVAT file found (an XML file at the root whose root element is <annotations>, "
        "such as annotations.xml)"
    )
    for rel in label_files(tree, options, "CVAT file", ".xml", discover, none):
        reader.file(rel)
    classes = list(options.classes) or reader.labels
    ids = {name: index for index, name in enumerate(classes)}
    for annotation, label in reader.pending:
        annotation.category_id = ids[label]
    reader.problems.raise_if_any()
    notes = {k: v for k, v in sorted(reader.notes.items()) if v}
    skipped = {k.removeprefix("cvat_skipped_"): v for k, v in notes.items() if "_skipped_" in k}
    warnings = []
    if skipped:
        listing = ", ".join(f"{kind} ({count})" for kind, count in skipped.items())
        warnings.append(f"CVAT elements not read: {listing}")
    if notes.get("cvat_shapes_without_label"):
        warnings.append(f"{notes['cvat_shapes_without_label']} CVAT shapes without a label skipped")
    removed = dict(reader.removed)
    for removal in unlisted(
        tree.files,
        reader.image_dirs,
        [*reader.items, *removed],
        options.extensions,
        "image file is in no CVAT annotation file",
    ):
        removed.setdefault(removal.id, removal)
    return LabelSet(
        format=NAME,
        categories=[Category(index, name) for index, name in enumerate(classes)],
        items=[reader.items[k] for k in sorted(reader.items)],
        removed=[removed[k] for k in sorted(removed)],
        image_dirs=list(dict.fromkeys(reader.image_dirs)),
        lists_images=True,
        notes=notes,
        warnings=warnings,
    )
