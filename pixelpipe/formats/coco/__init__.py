"""COCO instances JSON: read and write.

Boxes are COCO's own convention (``[x, y, w, h]``, absolute float pixels, origin at the
top-left corner of the top-left pixel), so they pass through unchanged. Category ids are
kept as given, gaps and 0 included; ``supercategory`` becomes the category's parent.
Polygons (several parts per object) and RLE masks (compressed or not; uncompressed
counts are compressed on load) are kept, and so are ``iscrowd``, ``score``,
``attributes`` (CVAT, Datumaro) and ``keypoints``. Images without annotations are
samples without labels.

Several files may be read at once (``annotations/instances_train.json`` and
``instances_val.json``...): their class maps must agree, each file's split comes from its
name, and the images folder of each file is found by looking where its ``file_name``
values exist (next to the JSON, ``images/<split>/``, ``<split>/``, ``images/``...).

Modules: :mod:`~pixelpipe.formats.coco.document` validates and converts one JSON
document; :mod:`~pixelpipe.formats.coco.reader` finds the files of a tree, their splits and
images folders, and reads them into a :class:`~pixelpipe.formats.base.LabelSet`;
:mod:`~pixelpipe.formats.coco.writer` builds documents and writes the layout.
"""

from pixelpipe.formats.coco.document import CocoFile, CocoImage, decode, load, parse
from pixelpipe.formats.coco.reader import (
    NAME,
    OTHER_TASKS,
    discover,
    image_root,
    looks_like,
    read,
    split_of,
)
from pixelpipe.formats.coco.writer import dump, write, write_json

__all__ = [
    "NAME",
    "OTHER_TASKS",
    "CocoFile",
    "CocoImage",
    "decode",
    "discover",
    "dump",
    "image_root",
    "load",
    "looks_like",
    "parse",
    "read",
    "split_of",
    "write",
    "write_json",
]
