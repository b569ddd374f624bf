"""Writing VOC: one XML document per sample, and the whole layout.

:func:`dump` builds a sample's ``Annotations`` XML (boxes in the chosen convention;
masks are not written); :func:`write` writes ``Annotations/``, ``JPEGImages/``,
``ImageSets/Main/<split>.txt`` and ``labelmap.txt``.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pixelpipe.dataset import Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import PixelConvention, flat_name, number
from pixelpipe.formats.voc.conventions import (
    ANNOTATIONS,
    FLAGS,
    IMAGES,
    LABELMAP,
    SETS,
    from_bbox,
)


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number(value)
    return str(value)


def dump(
    sample: Sample,
    names: dict[int, str],
    filename: str,
    convention: PixelConvention = "corners",
) -> bytes:
    """One VOC XML document for a sample.

    Args:
        sample: The sample.
        names: Category id to class name.
        filename: The ``<filename>`` to write (relative to ``JPEGImages/``).
        convention: The box convention to write.

    Returns:
        UTF-8 XML with a declaration; masks are not written (VOC boxes have none).
    """
    root = ET.Element("annotation")
    _sub(root, "filename", filename)
    size = _sub(root, "size")
    _sub(size, "width", str(sample.width))
    _sub(size, "height", str(sample.height))
    _sub(root, "segmented", "0")
    for ann in sample.annotations:
        obj = _sub(root, "object")
        _sub(obj, "name", names[ann.category_id])
        attributes = dict(ann.attributes)
        pose = attributes.pop("pose", None)
        _sub(obj, "pose", str(pose) if pose else "Unspecified")
        for flag in FLAGS:
            value = attributes.pop(flag, None)
            if value is not None or flag != "occluded":
                _sub(obj, flag, "1" if value else "0")
        box = _sub(obj, "bndbox")
        for key, value in zip(
            ("xmin", "ymin", "xmax", "ymax"), from_bbox(ann.bbox, convention), strict=True
        ):
            _sub(box, key, number(value))
        parts = attributes.pop("parts", None) or []
        actions = attributes.pop("actions", None)
        attributes.pop("keypoints", None)
        attributes.pop("num_keypoints", None)
        if ann.iscrowd:
            attributes["iscrowd"] = True
        if ann.score is not None:
            attributes["score"] = ann.score
        for part in parts:
            if isinstance(part, dict) and isinstance(part.get("bbox"), list):
                element = _sub(obj, "part")
                _sub(element, "name", str(part.get("name", "")))
                part_box = _sub(element, "bndbox")
                for key, value in zip(
                    ("xmin", "ymin", "xmax", "ymax"),
                    from_bbox(part["bbox"], convention),
                    strict=True,
                ):
                    _sub(part_box, key, number(value))
        if isinstance(actions, dict):
            element = _sub(obj, "actions")
            for key, value in sorted(actions.items()):
                _sub(element, key, "1" if value else "0")
        if attributes:
            element = _sub(obj, "attributes")
            for key, value in sorted(attributes.items()):
                attribute = _sub(element, "attribute")
                _sub(attribute, "name", key)
                _sub(attribute, "value", _attribute_text(value))
    ET.indent(root, space="  ")
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    copy_image: Callable[[Sample, Path], bool],
    convention: PixelConvention = "corners",
) -> dict[str, int]:
    """Write a VOC layout into ``out``.

    ``Annotations/<stem>.xml``, ``JPEGImages/<name>`` (the name is the sample id with its
    folders folded in: :func:`~pixelpipe.formats.base.flat_name`), ``ImageSets/Main/<split>.txt``
    (plus ``trainval.txt`` when there are ``train`` and ``val``) and ``labelmap.txt``
    (the class map in id order, so reading it back keeps every class and its order).

    Args:
        samples: The samples, in id order.
        categories: The class map.
        out: The folder to write.
        copy_image: Copies a sample's image to a path; returns False when there is none.
        convention: The box convention to write.

    Returns:
        Counts: ``images``, ``boxes``, ``masks_not_written``.

    Raises:
        PixelpipeError: When two ids share a stem (``a.jpg`` and ``a.png``) or a class
            name holds ``:`` (``labelmap.txt`` cannot hold it).
    """
    names = {c.id: c.name for c in categories}
    for category in categories:
        if ":" in category.name or "\n" in category.name:
            raise PixelpipeError(
                f"class name {category.name!r} cannot be written to VOC's labelmap.txt"
            )
    stems: dict[str, str] = {}
    for sample in samples:
        stem = posixpath.splitext(flat_name(sample.id))[0]
        if stem in stems:
            raise PixelpipeError(
                f"VOC export: '{sample.id}' and '{stems[stem]}' would share the annotation "
                f"file Annotations/{stem}.xml; rename one"
            )
        stems[stem] = sample.id
    counts = {"images": 0, "boxes": 0, "masks_not_written": 0}
    splits: dict[str, list[str]] = {}
    for sample in samples:
        name = flat_name(sample.id)
        stem = posixpath.splitext(name)[0]
        xml = out / ANNOTATIONS / f"{stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_bytes(dump(sample, names, name, convention))
        if copy_image(sample, out / IMAGES / name):
            counts["images"] += 1
        counts["boxes"] += len(sample.annotations)
        counts["masks_not_written"] += sum(
            1 for a in sample.annotations if a.polygons or a.rle is not None
        )
        if sample.split:
            splits.setdefault(sample.split, []).append(stem)
    if "train" in splits and "val" in splits and "trainval" not in splits:
        splits["trainval"] = sorted(splits["train"] + splits["val"])
    sets = out / SETS
    for split, stems_in in sorted(splits.items()):
        sets.mkdir(parents=True, exist_ok=True)
        (sets / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems_in), encoding="utf-8")
    ordered = sorted(categories, key=lambda c: c.id)
    (out / LABELMAP).write_text(
        "# label:color_rgb:parts:actions\n" + "".join(f"{c.name}:::\n" for c in ordered),
        encoding="utf-8",
    )
    return counts
