"""Writing CVAT for images 1.1: one task's ``annotations.xml``, and the export folder.

CVAT has no confidence of its own: :func:`write_xml` declares a ``number`` attribute
(``score``, immutable, default 0, values ``min``, ``max`` and ``step`` one a line as CVAT
writes them) on every label and gives each scored shape its value, written as the
shortest text that reads back to the same float. A scored shape is ``source="auto"``, an
unscored one ``manual``. Boxes are continuous corners in pixels (``xtl = x``,
``xbr = x + w``); polygons are ``points="x,y;x,y;..."``, one ``<polygon>`` per part, the
parts of one polygon sharing a ``group_id`` (1, 2... in each image: CVAT's way of making
one object of several shapes; the reader reads each part as an annotation, with its
``group_id`` attribute); a whole-image class label is a ``<tag>``; a mask without
polygons is written as its box.
``occluded`` comes from the annotation's attribute; other attributes are not written.
Images are listed in the order of their names (CVAT's default frame order) with ids
0..N-1, so CVAT matches them by name or by id. Asked to write splits, the document is a
project's, as CVAT exports a project: ``<meta><project>`` lists a task per subset, and each
``<image>`` has its ``subset`` and ``task_id`` (Datumaro reads a task's document as one
subset named after the file and skips every ``<image>`` of another subset). The document
is written image by image (memory holds the image names, not the document) into a file
beside its path, renamed into place once every image was written.

:func:`write` writes the folder CVAT's "CVAT for images 1.1" export with images has:
``annotations.xml`` and ``images/<sample id>``, so a task created from ``images/`` takes
the annotations uploaded as "CVAT 1.1", and the readers (pixelpipe's, Datumaro's) read the
folder back.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.formats.base import UNASSIGNED, Problems, number, split_name, writable
from pixelpipe.formats.imagefolder import is_image_label

VERSION = "1.1"
STEP = "0.000001"
ANNOTATIONS = "annotations.xml"
IMAGES = "images"
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_INDENT = "  "


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _meta(
    name: str,
    size: int,
    categories: Sequence[Category],
    score_attribute: str,
    score_range: tuple[str, str],
    tasks: dict[str, int],
) -> ET.Element:
    """A task's ``<meta>``; with ``tasks`` (images per subset), a project's listing them."""
    meta = ET.Element("meta")
    if tasks:
        owner = _sub(meta, "project")
        _sub(owner, "name", name)
    else:
        owner = _sub(meta, "task")
        _sub(owner, "name", name)
        _sub(owner, "size", str(size))
        _sub(owner, "mode", "annotation")
    labels = _sub(owner, "labels")
    for category in categories:
        label = _sub(labels, "label")
        _sub(label, "name", category.name)
        attribute = _sub(_sub(label, "attributes"), "attribute")
        _sub(attribute, "name", score_attribute)
        _sub(attribute, "mutable", "False")
        _sub(attribute, "input_type", "number")
        _sub(attribute, "default_value", "0")
        _sub(attribute, "values", "\n".join([*score_range, STEP]))
    if tasks:
        listing = _sub(owner, "tasks")
        for task_id, (subset, images) in enumerate(tasks.items()):
            task = _sub(listing, "task")
            _sub(task, "id", str(task_id))
            _sub(task, "name", subset)
            _sub(task, "size", str(images))
            _sub(task, "mode", "annotation")
            _sub(task, "subset", subset)
        _sub(owner, "subsets", "\n".join(tasks))
    return meta


def _shape(parent: ET.Element, tag: str, label: str, annotation: Annotation) -> ET.Element:
    element = _sub(parent, tag)
    element.set("label", label)
    element.set("source", "auto" if annotation.score is not None else "manual")
    if tag != "tag":
        element.set("occluded", "1" if annotation.attributes.get("occluded") else "0")
    return element


def _finish(element: ET.Element, annotation: Annotation, score_attribute: str, group: int) -> None:
    if element.tag != "tag":
        element.set("z_order", "0")
    if group:
        element.set("group_id", str(group))
    if annotation.score is not None:
        _sub(element, "attribute", number(annotation.score)).set("name", score_attribute)


def _image(
    index: int,
    name: str,
    sample: Sample,
    labels: dict[int, str],
    score_attribute: str,
    task: tuple[str, int] | None,
    problems: Problems,
    counts: Counter[str],
) -> ET.Element:
    image = ET.Element("image")
    image.set("id", str(index))
    image.set("name", name)
    if task is not None:
        image.set("subset", task[0])
        image.set("task_id", str(task[1]))
    image.set("width", str(sample.width))
    image.set("height", str(sample.height))
    groups = 0
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
            counts["tags"] += 1
        elif annotation.polygons:
            shapes = []
            for points in annotation.polygons:
                shape = _shape(image, "polygon", label, annotation)
                pairs = zip(points[0::2], points[1::2], strict=True)
                shape.set("points", ";".join(f"{number(x)},{number(y)}" for x, y in pairs))
                shapes.append(shape)
            counts["polygons"] += len(shapes)
            groups += int(len(shapes) > 1)
        else:
            shape = _shape(image, "box", label, annotation)
            x, y, w, h = annotation.bbox
            for corner, value in (("xtl", x), ("ytl", y), ("xbr", x + w), ("ybr", y + h)):
                shape.set(corner, number(value))
            shapes = [shape]
            counts["boxes"] += 1
            counts["masks_as_boxes"] += int(annotation.rle is not None)
        group = groups if len(shapes) > 1 else 0
        for shape in shapes:
            _finish(shape, annotation, score_attribute, group)
    return image


def _labels(categories: Sequence[Category], problems: Problems) -> dict[int, str]:
    """Category id to label name; names CVAT cannot take are problems."""
    labels: dict[int, str] = {}
    for category in categories:
        if category.name in labels.values():
            problems.add(f"two categories are named {category.name!r}", key="categories")
        if _ILLEGAL.search(category.name) or not category.name.strip():
            problems.add(
                f"category name {category.name!r} cannot be a CVAT label", key="categories"
            )
        labels[category.id] = category.name
    return labels


@contextmanager
def _staged(path: Path) -> Iterator[TextIO]:
    """A text stream into a file beside ``path``, renamed to ``path`` at the block's end.

    When the block raises, the file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with staged.open("w", encoding="utf-8", newline="\n") as stream:
            yield stream
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def _indented(element: ET.Element) -> str:
    """An element as text, indented as a child of the document's root."""
    ET.indent(element, space=_INDENT, level=1)
    return ET.tostring(element, encoding="unicode")


def write_xml(
    path: Path,
    samples: Sequence[Sample],
    categories: Sequence[Category],
    image_name: Callable[[Sample], str],
    *,
    score_attribute: str = "score",
    task_name: str | None = None,
    subsets: bool = False,
) -> dict[str, int]:
    """Write samples as one CVAT for images 1.1 ``annotations.xml``.

    A task's document; with ``subsets`` and a sample with a split, a project's, as CVAT
    exports a project: ``<meta><project>`` lists one task per subset (``<tasks>``, each
    with its ``<subset>``, and ``<subsets>``), and each ``<image>`` has its subset (its
    sample's split, :data:`~pixelpipe.formats.base.UNASSIGNED` for a sample without one:
    an ``<image>`` without a subset belongs to every subset for Datumaro) and ``task_id``.

    Args:
        path: The XML file to write (its folder is created).
        samples: The samples to review; every annotation is written (select the model's
            or an annotator's before).
        categories: The class map: CVAT's labels, in id order, each declaring the score
            attribute.
        image_name: The ``name`` of a sample's image as the CVAT task knows it.
        score_attribute: The name of the score attribute.
        task_name: The task's (or project's) ``<name>``; default: the file's stem.
        subsets: Write the samples' splits as subsets (when one has a split).

    Returns:
        Shapes written: ``boxes``, ``polygons`` (one per polygon part), ``tags`` and
        ``masks_as_boxes`` (masks without polygons, among ``boxes``).

    Raises:
        PixelpipeError: Listing every problem: a category id not in ``categories``, two
            categories or two images with one name, a box, polygon or score that is not
            a finite number, a polygon part of fewer than 3 points, a name or split
            holding a character XML cannot carry.
    """
    problems = Problems()
    ordered = sorted(categories, key=lambda c: c.id)
    labels = _labels(ordered, problems)
    named: dict[str, int] = {}
    tasks: Counter[str] = Counter()
    low, high = 0.0, 1.0
    for index, sample in enumerate(samples):
        name = image_name(sample)
        if name in named:
            problems.add(f"image name {name!r} is also {samples[named[name]].id!r}'s", sample.id)
        elif _ILLEGAL.search(name) or not name:
            problems.add(f"image name {name!r} cannot be written in XML", sample.id)
        else:
            named[name] = index
        if subsets and sample.split and _ILLEGAL.search(sample.split):
            problems.add(f"split {sample.split!r} cannot be written in XML", sample.id)
        tasks[split_name(sample)] += 1
        for annotation in sample.annotations:
            if annotation.score is not None and math.isfinite(annotation.score):
                low = min(low, math.floor(annotation.score))
                high = max(high, math.ceil(annotation.score))
    if _ILLEGAL.search(score_attribute) or not score_attribute.strip():
        problems.add(f"{score_attribute!r} cannot name an attribute", key="score_attribute")
    problems.raise_if_any()
    counts: Counter[str] = Counter(boxes=0, polygons=0, tags=0, masks_as_boxes=0)
    projects = subsets and sum(tasks.values()) > tasks[UNASSIGNED]  # a sample has a split
    listed = {subset: tasks[subset] for subset in sorted(tasks)} if projects else {}
    task_ids = {subset: task_id for task_id, subset in enumerate(listed)}
    scores = (number(low), number(high))
    meta = _meta(task_name or path.stem, len(named), ordered, score_attribute, scores, listed)
    with _staged(path) as stream:
        stream.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n')
        stream.write(f"{_INDENT}<version>{VERSION}</version>\n{_INDENT}{_indented(meta)}")
        for index, name in enumerate(sorted(named)):
            sample = samples[named[name]]
            subset = split_name(sample)
            task = (subset, task_ids[subset]) if listed else None
            element = _image(index, name, sample, labels, score_attribute, task, problems, counts)
            stream.write(f"\n{_INDENT}{_indented(element)}")
        stream.write("\n</annotations>\n")
        problems.raise_if_any()  # before the file is put in place
    return dict(counts)


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    copy_image: Callable[[Sample, Path], bool],
) -> dict[str, int]:
    """Write a CVAT for images 1.1 export folder into ``out``.

    ``annotations.xml`` (:func:`write_xml`: images named by sample id; when a sample has a
    split, a project's document with the splits as subsets) and ``images/<sample id>``:
    the layout of CVAT's own export of a task with its images. To review it, create a task
    from ``images/`` and upload ``annotations.xml`` as "CVAT 1.1"; export it back as "CVAT
    for images 1.1" (with or without images) and read it as ``cvat``. (CVAT's own project
    export puts images in ``images/<subset>/``; the readers take both layouts.)

    Args:
        samples: The samples, in id order.
        categories: The class map (CVAT's labels, in id order).
        out: The folder to write.
        copy_image: Copies a sample's image to a path; returns False when there is none.

    Returns:
        Counts: ``images`` (files written), ``boxes`` (shapes: boxes and polygon parts),
        ``tags`` (whole-image labels), ``masks_as_boxes`` (masks without polygons,
        written as their box).

    Raises:
        PixelpipeError: From :func:`write_xml`, before any image is written.
    """
    shapes = write_xml(out / ANNOTATIONS, samples, categories, lambda s: s.id, subsets=True)
    images = sum(1 for sample in samples if copy_image(sample, out / IMAGES / sample.id))
    return {
        "images": images,
        "boxes": shapes["boxes"] + shapes["polygons"],
        "tags": shapes["tags"],
        "masks_as_boxes": shapes["masks_as_boxes"],
    }
