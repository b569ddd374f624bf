"""Writing CVAT for images 1.1 XML: samples' boxes, polygons and tags, with their scores.

CVAT has no confidence of its own: :func:`write_xml` declares a ``number`` attribute
(``score``, immutable, default 0, values ``min``, ``max`` and ``step`` one a line as CVAT
writes them) on every label and gives each scored shape its value, written as the
shortest text that reads back to the same float. A scored shape is ``source="auto"``, an
unscored one ``manual``. Boxes are continuous corners in pixels (``xtl = x``,
``xbr = x + w``); polygons are ``points="x,y;x,y;..."`` (one ``<polygon>`` per part); a
whole-image class label is a ``<tag>``; a mask without polygons is written as its box.
``occluded`` comes from the annotation's attribute; other attributes are not written.
Images are listed in the order of their names (CVAT's default frame order) with ids
0..N-1, so CVAT matches them by name or by id. The file is written beside its path and
renamed into place.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.formats.base import Problems, number, writable, write_atomic
from pixelpipe.formats.imagefolder import is_image_label

VERSION = "1.1"
STEP = "0.000001"
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _score_range(samples: Sequence[Sample]) -> tuple[str, str]:
    """The declared ``min`` and ``max`` of the score: 0 and 1, widened to hold every score."""
    scores = [
        a.score
        for s in samples
        for a in s.annotations
        if a.score is not None and math.isfinite(a.score)
    ]
    low = min([0.0, *(math.floor(v) for v in scores)])
    high = max([1.0, *(math.ceil(v) for v in scores)])
    return number(low), number(high)


def _meta(
    root: ET.Element,
    name: str,
    size: int,
    categories: Sequence[Category],
    score_attribute: str,
    score_range: tuple[str, str],
) -> None:
    task = _sub(_sub(root, "meta"), "task")
    _sub(task, "name", name)
    _sub(task, "size", str(size))
    _sub(task, "mode", "annotation")
    labels = _sub(task, "labels")
    for category in categories:
        label = _sub(labels, "label")
        _sub(label, "name", category.name)
        attribute = _sub(_sub(label, "attributes"), "attribute")
        _sub(attribute, "name", score_attribute)
        _sub(attribute, "mutable", "False")
        _sub(attribute, "input_type", "number")
        _sub(attribute, "default_value", "0")
        _sub(attribute, "values", "\n".join([*score_range, STEP]))


def _shape(parent: ET.Element, tag: str, label: str, annotation: Annotation) -> ET.Element:
    element = _sub(parent, tag)
    element.set("label", label)
    element.set("source", "auto" if annotation.score is not None else "manual")
    if tag != "tag":
        element.set("occluded", "1" if annotation.attributes.get("occluded") else "0")
    return element


def _finish(element: ET.Element, annotation: Annotation, score_attribute: str) -> None:
    if element.tag != "tag":
        element.set("z_order", "0")
    if annotation.score is not None:
        _sub(element, "attribute", number(annotation.score)).set("name", score_attribute)


def _image(
    root: ET.Element,
    index: int,
    name: str,
    sample: Sample,
    labels: dict[int, str],
    score_attribute: str,
    problems: Problems,
) -> None:
    image = _sub(root, "image")
    image.set("id", str(index))
    image.set("name", name)
    image.set("width", str(sample.width))
    image.set("height", str(sample.height))
    for position, annotation in enumerate(sample.annotations):
        label = labels.get(annotation.category_id)
        if label is None:
            message = f"category id {annotation.category_id} is not in the class map"
            problems.add(message, sample.id, None, f"annotations[{position}]")
            continue
        if not writable(sample.id, position, annotation, problems):
            continue
        if is_image_label(annotation):
            shapes = [_shape(image, "tag", label, annotation)]
        elif annotation.polygons:
            shapes = []
            for points in annotation.polygons:
                shape = _shape(image, "polygon", label, annotation)
                pairs = zip(points[0::2], points[1::2], strict=True)
                shape.set("points", ";".join(f"{number(x)},{number(y)}" for x, y in pairs))
                shapes.append(shape)
        else:
            shape = _shape(image, "box", label, annotation)
            x, y, w, h = annotation.bbox
            for corner, value in (("xtl", x), ("ytl", y), ("xbr", x + w), ("ybr", y + h)):
                shape.set(corner, number(value))
            shapes = [shape]
        for shape in shapes:
            _finish(shape, annotation, score_attribute)


def write_xml(
    path: Path,
    samples: Sequence[Sample],
    categories: Sequence[Category],
    image_name: Callable[[Sample], str],
    *,
    score_attribute: str = "score",
    task_name: str | None = None,
) -> None:
    """Write samples as one CVAT for images 1.1 task's ``annotations.xml``.

    Args:
        path: The XML file to write (its folder is created).
        samples: The samples to review; every annotation is written (select the model's
            or an annotator's before).
        categories: The class map: CVAT's labels, in id order, each declaring the score
            attribute.
        image_name: The ``name`` of a sample's image as the CVAT task knows it.
        score_attribute: The name of the score attribute.
        task_name: The task's ``<name>``; default: the file's stem.

    Raises:
        PixelpipeError: Listing every problem: a category id not in ``categories``, two
            categories or two images with one name, a box, polygon or score that is not
            a finite number, a polygon part of fewer than 3 points, a name holding a
            character XML cannot carry.
    """
    problems = Problems()
    ordered = sorted(categories, key=lambda c: c.id)
    labels: dict[int, str] = {}
    for category in ordered:
        if category.name in labels.values():
            problems.add(f"two categories are named {category.name!r}", key="categories")
        if _ILLEGAL.search(category.name) or not category.name.strip():
            problems.add(
                f"category name {category.name!r} cannot be a CVAT label", key="categories"
            )
        labels[category.id] = category.name
    named: dict[str, Sample] = {}
    for sample in samples:
        name = image_name(sample)
        if name in named:
            problems.add(f"image name {name!r} is also {named[name].id!r}'s", sample.id)
        elif _ILLEGAL.search(name) or not name:
            problems.add(f"image name {name!r} cannot be written in XML", sample.id)
        named[name] = sample
    if _ILLEGAL.search(score_attribute) or not score_attribute.strip():
        problems.add(f"{score_attribute!r} cannot name an attribute", key="score_attribute")
    problems.raise_if_any()
    root = ET.Element("annotations")
    _sub(root, "version", VERSION)
    _meta(root, task_name or path.stem, len(named), ordered, score_attribute, _score_range(samples))
    for index, name in enumerate(sorted(named)):
        _image(root, index, name, named[name], labels, score_attribute, problems)
    problems.raise_if_any()
    ET.indent(root, space="  ")
    text = '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    write_atomic(path, text)
