"""Reading VOC from a tree: the layout, its splits and images, and the class map.

The full layout (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``,
``labelmap.txt``) or a folder of loose XML files with each image next to its XML. Class
ids are the order of the ``classes`` option, else of ``labelmap.txt``, else of the
sorted names.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from pixelpipe.dataset import Annotation, Category
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import (
    Item,
    LabelSet,
    Problems,
    ReadOptions,
    Removal,
    canonical_split,
    has_extension,
)
from pixelpipe.formats.voc.conventions import ANNOTATIONS, IMAGES, LABELMAP, SETS, to_bbox
from pixelpipe.formats.voc.document import VocFile, parse, parse_labelmap
from pixelpipe.sources import Tree, join

NAME = "voc"
_PER_CLASS = re.compile(r"^(.*\S)\s+-?[01]$")


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
