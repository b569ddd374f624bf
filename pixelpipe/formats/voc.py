"""Pascal VOC: read and write.

Layout: ``Annotations/<id>.xml`` (one per image), ``JPEGImages/<filename>``,
``ImageSets/Main/<split>.txt`` (``train``, ``val``, ``test``; ``trainval`` only when
neither ``train`` nor ``val`` is there; ``<class>_<split>.txt`` files are ignored) and
an optional ``labelmap.txt`` (CVAT, Datumaro). A folder of loose XML files (labelImg,
Roboflow) is read too: each image is found next to its XML.

Boxes: ``pixel_convention`` says what the four numbers mean.

- ``corners`` (default): continuous corner coordinates, as CVAT, labelImg, Roboflow and
  Datumaro write them: ``[x, y, w, h] = [xmin, ymin, xmax - xmin, ymax - ymin]``.
- ``inclusive``: the official devkit's 1-based inclusive pixel indices:
  ``[x, y, w, h] = [xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]``.

Floats are kept. ``difficult``, ``truncated``, ``occluded`` and ``pose`` become
attributes, and so do CVAT's ``<attributes>``, Datumaro's ``<part>`` and ``<actions>``.
Category ids: VOC names classes without ids; ids are the order of the ``classes``
option, else of ``labelmap.txt``, else of the sorted names, from 0.

XML is parsed with defusedxml (DTDs, entities and external references are refused);
problems name the file, the line and the element (``object[2]/bndbox/xmax``).
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as DET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError, Problem
from pixelpipe.formats.base import (
    Item,
    LabelSet,
    PixelConvention,
    Problems,
    ReadOptions,
    Removal,
    canonical_split,
    has_extension,
    number,
    parse_number,
)
from pixelpipe.sources import Tree, join

NAME = "voc"
ANNOTATIONS = "Annotations"
IMAGES = "JPEGImages"
SETS = "ImageSets/Main"
LABELMAP = "labelmap.txt"
_FLAGS = ("difficult", "truncated", "occluded")
_PER_CLASS = re.compile(r"^(.*\S)\s+-?[01]$")


@dataclass
class VocObject:
    """One ``<object>`` as written, before classes get ids."""

    name: str
    corners: tuple[float, float, float, float]
    attributes: dict[str, Any]
    line: int | None
    where: str


@dataclass
class VocFile:
    """A parsed VOC XML file.

    Attributes:
        filename: ``<filename>``, if given.
        width: ``<size><width>``, if given and positive.
        height: ``<size><height>``, if given and positive.
        objects: The objects in file order.
    """

    filename: str | None
    width: int | None
    height: int | None
    objects: list[VocObject] = field(default_factory=list)


class _LineBuilder(ET.TreeBuilder):
    """A tree builder that remembers the line each element starts on."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: Any = None
        self.lines: dict[int, int] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        element = super().start(tag, attrs)
        if self.parser is not None:
            self.lines[id(element)] = int(self.parser.parser.CurrentLineNumber)
        return element


def _parse_xml(data: bytes, file: str) -> tuple[ET.Element, dict[int, int]]:
    builder = _LineBuilder()
    parser = DET.DefusedXMLParser(target=builder, forbid_dtd=True)
    builder.parser = parser
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        line, column = exc.position
        raise PixelpipeError(
            _problem(f"invalid XML at column {column + 1}: {exc.msg}", file, line)
        ) from None
    except DefusedXmlException as exc:
        line = int(parser.parser.CurrentLineNumber)
        raise PixelpipeError(
            _problem(
                f"refused: {type(exc).__name__} (DTDs and entities are not allowed)", file, line
            )
        ) from None
    return root, builder.lines


def _problem(message: str, file: str, line: int | None, key: str | None = None) -> Problem:
    return Problem(message, file=file, line=line, key=key)


def _flag(text: str | None) -> bool | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    number_value = parse_number(value)
    return bool(number_value) if number_value is not None else None


def _value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    parsed = parse_number(text)
    if parsed is not None and text.strip().lstrip("-").replace(".", "", 1).isdigit():
        return int(parsed) if parsed == int(parsed) and "." not in text else parsed
    return text


def _box(
    element: ET.Element | None,
    where: str,
    lines: dict[int, int],
    parent_line: int | None,
    file: str,
    problems: Problems,
    convention: PixelConvention,
) -> tuple[float, float, float, float] | None:
    if element is None:
        problems.add("the object has no <bndbox>", file=file, line=parent_line, key=where)
        return None
    line = lines.get(id(element), parent_line)
    values: list[float] = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        child = element.find(key)
        value = parse_number(child.text if child is not None else None)
        if value is None:
            shown = None if child is None else child.text
            problems.add(
                f"<{key}> must be a number, got {shown!r}",
                file=file,
                line=lines.get(id(child), line) if child is not None else line,
                key=f"{where}/bndbox/{key}",
            )
            return None
        values.append(value)
    x1, y1, x2, y2 = values
    slack = 1.0 if convention == "inclusive" else 0.0  # inclusive: xmax = xmin - 1 is empty
    if x2 < x1 - slack or y2 < y1 - slack:
        problems.add(
            f"xmax/ymax ({number(x2)}, {number(y2)}) are less than xmin/ymin "
            f"({number(x1)}, {number(y1)})",
            file=file,
            line=line,
            key=f"{where}/bndbox",
        )
        return None
    return x1, y1, x2, y2


def parse(
    data: bytes, file: str, problems: Problems, convention: PixelConvention = "corners"
) -> VocFile | None:
    """Parse one VOC XML document; problems are recorded, not raised.

    Args:
        data: The file's bytes.
        file: Its name, for messages.
        problems: Where problems go (with line and element path).
        convention: The box convention (it decides which boxes are empty or inverted).

    Returns:
        The parsed file, or ``None`` when it is not usable at all.
    """
    try:
        root, lines = _parse_xml(data, file)
    except PixelpipeError as exc:
        problems.extend(exc)
        return None
    if root.tag != "annotation":
        problems.add(f"the root element is <{root.tag}>, VOC's is <annotation>", file=file, line=1)
        return None
    filename = (root.findtext("filename") or "").strip() or None
    size = root.find("size")
    width = height = None
    if size is not None:
        w = parse_number(size.findtext("width"))
        h = parse_number(size.findtext("height"))
        width = int(w) if w is not None and w > 0 and w == int(w) else None
        height = int(h) if h is not None and h > 0 and h == int(h) else None
    result = VocFile(filename, width, height)
    for index, element in enumerate(root.findall("object"), start=1):
        where = f"object[{index}]"
        line = lines.get(id(element))
        name = (element.findtext("name") or "").strip()
        if not name:
            problems.add("the object has no <name>", file=file, line=line, key=f"{where}/name")
            continue
        corners = _box(element.find("bndbox"), where, lines, line, file, problems, convention)
        if corners is None:
            continue
        attributes: dict[str, Any] = {}
        for flag in _FLAGS:
            value = _flag(element.findtext(flag))
            if value is not None:
                attributes[flag] = value
        pose = (element.findtext("pose") or "").strip()
        if pose and pose != "Unspecified":
            attributes["pose"] = pose
        for attribute in element.findall("attributes/attribute"):
            key = (attribute.findtext("name") or "").strip()
            if key:
                attributes[key] = _value(attribute.findtext("value") or "")
        parts = []
        for part_index, part in enumerate(element.findall("part"), start=1):
            part_where = f"{where}/part[{part_index}]"
            part_box = _box(
                part.find("bndbox"),
                part_where,
                lines,
                lines.get(id(part), line),
                file,
                problems,
                convention,
            )
            if part_box is not None:
                parts.append({"name": (part.findtext("name") or "").strip(), "corners": part_box})
        if parts:
            attributes["parts"] = parts
        actions = element.find("actions")
        if actions is not None:
            attributes["actions"] = {
                child.tag: bool(_flag(child.text)) for child in actions if child.tag
            }
        result.objects.append(VocObject(name, corners, attributes, line, where))
    return result


def to_bbox(
    corners: tuple[float, float, float, float], convention: PixelConvention
) -> tuple[float, float, float, float]:
    """VOC corners to pixelpipe's ``[x, y, w, h]``."""
    x1, y1, x2, y2 = corners
    if convention == "inclusive":
        return x1 - 1.0, y1 - 1.0, x2 - x1 + 1.0, y2 - y1 + 1.0
    return x1, y1, x2 - x1, y2 - y1


def from_bbox(
    bbox: Sequence[float], convention: PixelConvention
) -> tuple[float, float, float, float]:
    """Turn a pixelpipe ``[x, y, w, h]`` into VOC corners."""
    x, y, w, h = (float(v) for v in bbox)
    if convention == "inclusive":
        return x + 1.0, y + 1.0, x + w, y + h
    return x, y, x + w, y + h


def parse_labelmap(text: str, file: str, problems: Problems) -> list[str]:
    """Class names of a ``labelmap.txt`` (``name:color:parts:actions`` per line)."""
    names: list[str] = []
    for number_, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name = stripped.split(":", 1)[0].strip()
        if not name:
            problems.add("a label needs a name before ':'", file=file, line=number_)
        elif name in names:
            problems.add(f"label '{name}' is listed twice", file=file, line=number_)
        else:
            names.append(name)
    return names


def _voc_root(rel: str) -> str | None:
    """The folder holding ``Annotations/`` for an XML under it, else ``None``."""
    parts = rel.split("/")
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == ANNOTATIONS:
            return "/".join(parts[:index])
    return None


def _find_image(tree: Tree, folder: str, stem: str, extensions: Sequence[str]) -> str | None:
    for ext in extensions:
        for candidate in (f"{stem}{ext}", f"{stem}{ext.upper()}"):
            path = join(folder, candidate)
            if path and tree.exists(path):
                return path
    return None


def _splits(tree: Tree, voc_root: str, problems: Problems) -> dict[str, tuple[str, str, int]]:
    """VOC id -> (split, list file, line) from ``ImageSets/Main``."""
    folder = posixpath.join(voc_root, SETS) if voc_root else SETS
    lists = {
        posixpath.basename(f)[:-4]: f
        for f in tree.under(folder)
        if f.endswith(".txt")
        and "/" not in f[len(folder) + 1 :]
        and "_" not in posixpath.basename(f)[:-4]
    }
    if "train" in lists or "val" in lists:
        lists.pop("trainval", None)
    found: dict[str, tuple[str, str, int]] = {}
    for name, rel in sorted(lists.items()):
        split = canonical_split(name) or name
        shown = tree.shown(rel)
        for line_number, line in enumerate(tree.read_text(rel).splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            per_class = _PER_CLASS.match(stripped)
            voc_id = per_class.group(1) if per_class else stripped
            known = found.get(voc_id)
            if known is not None and known[0] != split:
                problems.add(
                    f"'{voc_id}' is in split '{split}' here and '{known[0]}' in "
                    f"{tree.shown(known[1])}:{known[2]}",
                    file=shown,
                    line=line_number,
                )
                continue
            found.setdefault(voc_id, (split, rel, line_number))
    return found


def read(tree: Tree, options: ReadOptions | None = None) -> LabelSet:
    """Read the VOC XML files of a tree.

    Args:
        tree: The source folder.
        options: ``pixel_convention``, ``classes``, ``extensions``.

    Returns:
        The labels, with a ``missing`` removal for an id listed in ``ImageSets`` that
        has neither an XML nor an image, and ``unlisted`` for images no XML describes.

    Raises:
        PixelpipeError: Listing every problem (invalid XML with its line, a box with a
            missing or non-numeric corner, an unknown class, an image described twice).
    """
    options = options or ReadOptions()
    problems = Problems()
    xmls = [f for f in tree.files if f.lower().endswith(".xml")]
    if any(_voc_root(f) is not None for f in xmls):  # the full layout: only Annotations/
        xmls = [f for f in xmls if _voc_root(f) is not None]
    if tree.hint and tree.hint.lower().endswith(".xml"):
        xmls = [tree.hint]
    if not xmls:
        raise PixelpipeError(f"{tree.display}: no VOC XML file found")
    roots = sorted({r for r in (_voc_root(f) for f in xmls) if r is not None})
    classes: list[str] = list(options.classes)
    if not classes:
        for folder in [*roots, ""]:
            rel = posixpath.join(folder, LABELMAP) if folder else LABELMAP
            if tree.exists(rel):
                names = parse_labelmap(tree.read_text(rel), tree.shown(rel), problems)
                if classes and names != classes:
                    problems.add("labelmap differs from another labelmap.txt", file=tree.shown(rel))
                classes = classes or names
    parsed: list[tuple[str, str | None, VocFile]] = []
    for rel in sorted(xmls):
        result = parse(tree.read_bytes(rel), tree.shown(rel), problems, options.pixel_convention)
        if result is not None:
            parsed.append((rel, _voc_root(rel), result))
    names_found = sorted({o.name for _, _, f in parsed for o in f.objects})
    if not classes:
        classes = names_found
    ids = {name: index for index, name in enumerate(classes)}
    splits: dict[str | None, dict[str, tuple[str, str, int]]] = {
        root: _splits(tree, root, problems) for root in roots
    }
    items: dict[str, Item] = {}
    removed: dict[str, Removal] = {}
    image_dirs: list[str] = []
    described: dict[str | None, set[str]] = {root: set() for root in roots}
    for rel, root, voc in parsed:
        shown = tree.shown(rel)
        if root is not None:
            folder = posixpath.join(root, IMAGES) if root else IMAGES
            annotations_dir = posixpath.join(root, ANNOTATIONS) if root else ANNOTATIONS
            voc_id = rel[len(annotations_dir) + 1 : -4]
            described[root].add(voc_id)
        else:
            folder = posixpath.dirname(rel)
            voc_id = posixpath.basename(rel)[:-4]
        image_dirs.append(folder)
        if voc.filename:
            image = join(folder, voc.filename)
            if image is None:
                removed.setdefault(
                    voc.filename,
                    Removal(voc.filename, "unsafe_path", f"{shown}: <filename> escapes {folder}/"),
                )
                continue
        else:
            image = _find_image(tree, folder, voc_id, options.extensions) or join(
                folder, f"{voc_id}.jpg"
            )
            assert image is not None
        annotations: list[Annotation] = []
        for obj in voc.objects:
            if obj.name not in ids:
                problems.add(
                    f"class '{obj.name}' is not in the class map ({', '.join(classes[:10])}"
                    f"{', ...' if len(classes) > 10 else ''})",
                    file=shown,
                    line=obj.line,
                    key=f"{obj.where}/name",
                )
                continue
            attributes = dict(obj.attributes)
            for part in attributes.get("parts", []):
                part["bbox"] = list(to_bbox(part.pop("corners"), options.pixel_convention))
            iscrowd = bool(attributes.pop("iscrowd", False))
            score = attributes.pop("score", None)
            annotations.append(
                Annotation(
                    category_id=ids[obj.name],
                    bbox=to_bbox(obj.corners, options.pixel_convention),
                    iscrowd=iscrowd,
                    score=float(score) if isinstance(score, int | float) else None,
                    attributes=attributes,
                )
            )
        split_info = splits.get(root, {}).get(voc_id) if root is not None else None
        if image in items:
            problems.add(f"image {image} is also described by {items[image].origin}", file=shown)
            continue
        items[image] = Item(
            image=image,
            split=split_info[0] if split_info else None,
            width=voc.width,
            height=voc.height,
            annotations=annotations,
            origin=shown,
        )
    for root in roots:
        folder = posixpath.join(root, IMAGES) if root else IMAGES
        for voc_id, (split, list_file, line) in sorted(splits[root].items()):
            if voc_id in described[root]:
                continue
            image = _find_image(tree, folder, voc_id, options.extensions)
            where = f"{tree.shown(list_file)}:{line}"
            if image is None:
                key = join(folder, voc_id) or voc_id
                removed.setdefault(
                    key,
                    Removal(
                        key,
                        "missing",
                        f"{where} lists '{voc_id}', which has neither an XML file nor an image",
                    ),
                )
            elif image not in items:
                items[image] = Item(image=image, split=split, origin=where)
    problems.raise_if_any()
    listed = set(items)
    for folder in dict.fromkeys(image_dirs):
        # JPEGImages/ claims every image below it; a folder of loose XML files only its own.
        deep = posixpath.basename(folder) == IMAGES
        prefix = f"{folder}/" if folder else ""
        for rel in tree.files:
            if (
                rel.startswith(prefix)
                and (deep or "/" not in rel[len(prefix) :])
                and rel not in listed
                and has_extension(rel, options.extensions)
            ):
                listed.add(rel)
                removed.setdefault(
                    rel, Removal(rel, "unlisted", "image file is in no VOC annotation file", rel)
                )
    return LabelSet(
        format=NAME,
        categories=[Category(index, name) for index, name in enumerate(classes)],
        items=[items[k] for k in sorted(items)],
        removed=[removed[k] for k in sorted(removed)],
        image_dirs=list(dict.fromkeys(image_dirs)),
        lists_images=True,
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
        for flag in _FLAGS:
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

    ``Annotations/<id stem>.xml``, ``JPEGImages/<id>``, ``ImageSets/Main/<split>.txt``
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
        stem = posixpath.splitext(sample.id)[0]
        if stem in stems:
            raise PixelpipeError(
                f"VOC export: '{sample.id}' and '{stems[stem]}' would share the annotation "
                f"file Annotations/{stem}.xml; rename one"
            )
        stems[stem] = sample.id
    counts = {"images": 0, "boxes": 0, "masks_not_written": 0}
    splits: dict[str, list[str]] = {}
    for sample in samples:
        stem = posixpath.splitext(sample.id)[0]
        xml = out / ANNOTATIONS / f"{stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_bytes(dump(sample, names, sample.id, convention))
        if copy_image(sample, out / IMAGES / sample.id):
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
