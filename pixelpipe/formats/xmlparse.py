"""Parsing XML a dataset gives (VOC, CVAT) safely, with the line of every element.

defusedxml refuses DTDs and entities before anything expands (billion laughs, external
entities); a malformed file is one problem with its file, line and column.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import defusedxml.ElementTree as DET  # type: ignore[import-untyped]
from defusedxml import DefusedXmlException

from pixelpipe.errors import PixelpipeError, Problem


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


def parse_xml(data: bytes, file: str) -> tuple[ET.Element, dict[int, int]]:
    """Parse XML safely, with the line each element starts on (by ``id(element)``).

    Raises:
        PixelpipeError: For malformed XML (with its line and column) and for DTDs and
            entities (refused before anything expands).
    """
    builder = _LineBuilder()
    parser = DET.DefusedXMLParser(target=builder, forbid_dtd=True)
    builder.parser = parser
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        line, column = exc.position
        message = f"invalid XML at column {column + 1}: {exc.msg}"
        raise PixelpipeError(Problem(message, file=file, line=line)) from None
    except DefusedXmlException as exc:
        line = int(parser.parser.CurrentLineNumber)
        message = f"refused: {type(exc).__name__} (DTDs and entities are not allowed)"
        raise PixelpipeError(Problem(message, file=file, line=line)) from None
    return root, builder.lines
