"""CVAT for images 1.1 XML: read task, job and project exports, write tasks to review.

CVAT writes boxes as continuous corners in pixels (``xtl ytl xbr ybr``), so they map to
``[x, y, w, h]`` exactly both ways. The reader (:mod:`~pixelpipe.formats.cvat.reader`)
reads boxes, polygons and tags with their attributes; the writer
(:mod:`~pixelpipe.formats.cvat.writer`) writes samples with their scores in a declared
``number`` attribute (CVAT has no confidence of its own), which the reader maps back to
``score``, and :func:`~pixelpipe.formats.cvat.writer.write` the export folder
(``annotations.xml`` and ``images/<sample id>``, splits as each image's ``subset``).
"""

from pixelpipe.formats.cvat.reader import (
    NAME,
    ROOT,
    SCORE,
    SHAPES,
    Meta,
    attribute_value,
    discover,
    looks_like,
    parse_meta,
    read,
    root_tag,
)
from pixelpipe.formats.cvat.writer import write, write_xml

__all__ = [
    "NAME",
    "ROOT",
    "SCORE",
    "SHAPES",
    "Meta",
    "attribute_value",
    "discover",
    "looks_like",
    "parse_meta",
    "read",
    "root_tag",
    "write",
    "write_xml",
]
