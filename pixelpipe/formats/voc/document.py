"""One VOC file: an annotation XML document, or ``labelmap.txt``.

XML is parsed with defusedxml (DTDs, entities and external references are refused);
problems name the file, the line and the element (``object[2]/bndbox/xmax``). Objects
keep their class name and corners as written (:class:`VocObject`); ids and the box
convention are applied by :func:`pixelpipe.formats.voc.reader.read`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from pixelpipe.errors import PixelpipeError, Problem
from pixelpipe.formats.base import PixelConvention, Problems, number, parse_number
from pixelpipe.formats.voc.conventions import FLAGS
from pixelpipe.formats.xmlparse import parse_xml


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
        root, lines = parse_xml(data, file)
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
        for flag in FLAGS:
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
