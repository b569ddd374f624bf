"""Which format a folder is in, and reading it in that format.

:func:`detect` looks for each labelled format's own files:

- COCO: ``annotations/instances_*.json``, ``annotations.json``, ``annotations/*.json``,
  ``*/_annotations.coco.json``, or a root JSON file with an ``images`` key;
- VOC: XML files under an ``Annotations`` folder, or loose XML files whose root element
  is ``<annotation>``;
- YOLO: a root YAML with ``names``, ``obj.data``, or a names file (``obj.names``,
  ``classes.txt``, ``*.names``) with ``.txt`` label files.

Exactly one must match; none or several is an error that lists what was found.
Image folders (``imagefolder``) and unlabelled images (``images``) have no files of
their own, so they are never guessed: name them.
"""

from __future__ import annotations

import posixpath

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import coco, imagefolder, voc, yolo
from pixelpipe.formats.base import LabelSet, ReadOptions
from pixelpipe.sources import Tree

FORMATS = ("coco", "voc", "yolo", "imagefolder", "images")


def evidence(tree: Tree) -> dict[str, list[str]]:
    """For each labelled format, the files that suggest it (empty lists left out)."""
    found: dict[str, list[str]] = {}
    hint = tree.hint or ""
    if hint.endswith(".json"):
        return {"coco": [hint]}
    if hint.endswith((".yaml", ".yml", ".data", ".names")):
        return {"yolo": [hint]}
    if hint.endswith(".xml"):
        return {"voc": [hint]}
    coco_files = coco.discover(tree)
    if coco_files:
        found["coco"] = coco_files[:3]
    xmls = [f for f in tree.files if f.lower().endswith(".xml")]
    in_annotations = [f for f in xmls if "Annotations" in f.split("/")[:-1]]
    if in_annotations:
        found["voc"] = in_annotations[:3]
    else:
        loose = [f for f in xmls[:20] if _is_voc_xml(tree, f)]
        if loose:
            found["voc"] = loose[:3]
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


def _is_voc_xml(tree: Tree, rel: str) -> bool:
    try:
        with tree.access.open(rel) as stream:
            head = stream.read(4096)
    except OSError:
        return False
    return b"<annotation" in head


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
            "(`imagefolder` for one folder per class, `images` for unlabelled images)"
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
    if fmt == "imagefolder":
        return imagefolder.read(tree, options)
    if fmt == "images":
        return imagefolder.read_unlabelled(tree, options)
    raise PixelpipeError(f"unknown format {fmt!r}; known: auto, {', '.join(FORMATS)}")
