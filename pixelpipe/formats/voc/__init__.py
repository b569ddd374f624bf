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

Modules: :mod:`~pixelpipe.formats.voc.conventions` holds what reading and writing share
(folder and file names, flags, the box conversion); :mod:`~pixelpipe.formats.voc.document`
parses one XML file or ``labelmap.txt``; :mod:`~pixelpipe.formats.voc.reader` reads a tree
(layout, splits, images) into a :class:`~pixelpipe.formats.base.LabelSet`;
:mod:`~pixelpipe.formats.voc.writer` writes the layout.
"""

from pixelpipe.formats.voc.conventions import (
    ANNOTATIONS,
    IMAGES,
    LABELMAP,
    SETS,
    from_bbox,
    to_bbox,
)
from pixelpipe.formats.voc.document import VocFile, VocObject, parse, parse_labelmap
from pixelpipe.formats.voc.reader import NAME, read
from pixelpipe.formats.voc.writer import dump, write

__all__ = [
    "ANNOTATIONS",
    "IMAGES",
    "LABELMAP",
    "NAME",
    "SETS",
    "VocFile",
    "VocObject",
    "dump",
    "from_bbox",
    "parse",
    "parse_labelmap",
    "read",
    "to_bbox",
    "write",
]
