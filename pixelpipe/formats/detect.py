"""Which format a folder is in, and reading it in that format.

:func:`detect` looks for each labelled format's own files:

- COCO: ``annotations/instances_*.json``, ``annotations.json``, ``annotations/*.json``,
  ``*/_annotations.coco.json``, or a root JSON file with an ``images`` key;
- Label Studio: a root JSON file that is a list (of tasks), or one task object (``data``
  and ``annotations``);
- VOC: XML files under an ``Annotations`` folder, or loose XML files whose root element
  is ``<annotation>``;
- CVAT: ``annotations.xml`` (or another root XML file) whose root element is
  ``<annotations>``;
- YOLO: a root YAML with ``names``, ``obj.data``, or a names file (``obj.names``,
  ``classes.txt``, ``*.names``) with ``.txt`` label files.

A file named as the source decides by its content: ``.json`` is Label Studio or COCO,
``.xml`` is CVAT or VOC, ``.csv`` is a label CSV. Exactly one format must match; none or
several is an error that lists what was found. Image folders (``imagefolder``), label CSVs
in a folder and unlabelled images (``images``) are never guessed: name them.
"""

from __future__ import annotations

import posixpath

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import coco, cvat, imagefolder, labelcsv, labelstudio, voc, yolo
from pixelpipe.formats.base import LabelSet, ReadOptions
from pixelpipe.sources import Tree

FORMATS = ("coco", "voc", "yolo", "labelstudio", "cvat", "csv", "imagefolder", "images")


def evidence(tree: Tree) -> dict[str, list[str]]:
    """For each labelled format, the files that suggest it (empty lists left out)."""
    found: dict[str, list[str]] = {}
    if tree.hint:
        fmt = _file_format(tree, tree.hint)
        return {fmt: [tree.hint]} if fmt else {}
    studio = labelstudio.discover(tree)
    coco_files = [f for f in coco.discover(tree) if f not in studio]
    if coco_files:
        found["coco"] = coco_files[:3]
    if studio:
        found["labelstudio"] = studio[:3]
    xmls = [f for f in tree.files if f.lower().endswith(".xml")]
    in_annotations = [f for f in xmls if "Annotations" in f.split("/")[:-1]]
    if in_annotations:
        found["voc"] = in_annotations[:3]
    else:
        loose = [f for f in xmls[:20] if _is_voc_xml(tree, f)]
        if loose:
            found["voc"] = loose[:3]
    cvat_files = cvat.discover(tree)
    if cvat_files:
        found["cvat"] = cvat_files[:3]
    try:
        config, _ = yolo.find_config(tree, ReadOptions())
    except PixelpipeError:
        config = None
    if config is not None and (
        not config.endswith((".txt", ".names"))
        or any(f.endswith(".txt") and f != config for f in tree.files)
    ):
        found["yolo"] = [config]
    return found


def _file_format(tree: Tree, rel: str) -> str | None:
    lower = rel.lower()
    if lower.endswith(".json"):
        return "labelstudio" if labelstudio.looks_like(tree, rel) else "coco"
    if lower.endswith((".yaml", ".yml", ".data", ".names")):
        return "yolo"
    if lower.endswith(".xml"):
        return "cvat" if cvat.looks_like(tree, rel) else "voc"
    if lower.endswith(".csv"):
        return "csv"
    return None


def file_format(tree: Tree, rel: str) -> str:
    """The format of one label file of a tree, by its name and first bytes.

    ``.json``: Label Studio when it starts with ``[`` (or is a task object), else COCO;
    ``.xml``: CVAT when its root element is ``<annotations>``, else VOC; ``.csv``: a label
    CSV; ``.yaml``, ``.yml``, ``.data``, ``.names``: YOLO.

    Raises:
        PixelpipeError: For any other file name.
    """
    fmt = _file_format(tree, rel)
    if fmt is None:
        raise PixelpipeError(
            f"{tree.shown(rel)}: cannot tell the format from the name (.json, .xml, .csv, "
            ".yaml...); set the format"
        )
    return fmt


def _is_voc_xml(tree: Tree, rel: str) -> bool:
    """True when the root element is ``<annotation>`` (CVAT's ``<annotations>`` is not)."""
    try:
        with tree.access.open(rel) as stream:
            head = stream.read(4096)
    except OSError:
        return False
    return cvat.root_tag(head) == "annotation"


def detect(tree: Tree) -> str:
    """The labelled format of a tree.

    Raises:
        PixelpipeError: When no format or more than one matches, naming the files seen.
    """
    found = evidence(tree)
    if len(found) == 1:
        return next(iter(found))
    if not found:
        raise PixelpipeError(
            f"{tree.display}: no COCO, VOC or YOLO annotation files found; set the format "
            "(`imagefolder` for one folder per class, `csv` for a label CSV, `images` for "
            "unlabelled images)"
        )
    listing = "; ".join(
        f"{fmt} ({', '.join(posixpath.basename(f) for f in files)})" for fmt, files in found.items()
    )
    raise PixelpipeError(
        f"{tree.display}: the format is ambiguous, it looks like {listing}; set the format"
    )


def read(tree: Tree, fmt: str, options: ReadOptions | None = None) -> LabelSet:
    """Read a tree in ``fmt`` (``auto`` detects it).

    Raises:
        PixelpipeError: For an unknown format, or from the reader.
    """
    options = options or ReadOptions()
    if fmt == "auto":
        fmt = detect(tree)
    if fmt == "coco":
        return coco.read(tree, options)
    if fmt == "voc":
        return voc.read(tree, options)
    if fmt == "yolo":
        return yolo.read(tree, options)
    if fmt == "labelstudio":
        return labelstudio.read(tree, options)
    if fmt == "cvat":
        return cvat.read(tree, options)
    if fmt == "csv":
        return labelcsv.read(tree, options)
    if fmt == "imagefolder":
        return imagefolder.read(tree, options)
    if fmt == "images":
        return imagefolder.read_unlabelled(tree, options)
    raise PixelpipeError(f"unknown format {fmt!r}; known: auto, {', '.join(FORMATS)}")
