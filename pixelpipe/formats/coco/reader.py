"""Reading COCO from a tree: which files, which split, which images folder.

:func:`discover` finds the annotation files when none are named, :func:`split_of` tells
the split a file's name gives, :func:`image_root` finds the folder its ``file_name``
values are relative to, and :func:`read` merges every file into one
:class:`~pixelpipe.formats.base.LabelSet` (class maps must agree, an image keeps one
split).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from pixelpipe.dataset import Category
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import (
    Item,
    LabelSet,
    Problems,
    ReadOptions,
    Removal,
    canonical_split,
    has_extension,
    merge_categories,
    split_like,
)
from pixelpipe.formats.coco.document import decode, parse
from pixelpipe.sources import Tree, join

NAME = "coco"
# Task files that share COCO's layout but are not object labels.
OTHER_TASKS = ("captions_", "panoptic_", "image_info_", "labels_", "stuff_")
_PEEK = 1 << 16


def looks_like(tree: Tree, rel: str) -> bool:
    """True when ``rel`` is a JSON file whose beginning has COCO's ``images`` key."""
    if not rel.lower().endswith(".json"):
        return False
    try:
        with tree.access.open(rel) as stream:
            head = stream.read(_PEEK)
    except OSError:
        return False
    return b'"images"' in head or (len(head) == _PEEK and b'"annotations"' in head)


def discover(tree: Tree) -> list[str]:
    """The COCO files of a tree, when none are named.

    ``instances_*.json`` files when there are any; else ``annotations.json``,
    ``annotations/*.json`` and Roboflow's ``<split>/_annotations.coco.json`` (without
    ``annotations.json`` when ``annotations/<split>.json`` files are there: it is their
    union, as ``publish`` writes it); else JSON files at the root that look like COCO.
    Task files that are not object labels (``captions_*``, ``panoptic_*``...) are skipped.
    """
    shallow = [f for f in tree.files if f.lower().endswith(".json") and f.count("/") <= 2]
    labels = [f for f in shallow if not posixpath.basename(f).startswith(OTHER_TASKS)]
    instances = [f for f in labels if posixpath.basename(f).startswith("instances_")]
    if instances:
        return instances
    preferred = [
        f
        for f in labels
        if posixpath.basename(f) in ("annotations.json", "_annotations.coco.json")
        or posixpath.basename(posixpath.dirname(f)) == "annotations"
    ]
    per_split = [f for f in preferred if split_of(f) is not None]
    if per_split and "annotations.json" in preferred:
        # pixelpipe's own export: annotations.json is the union of the split files
        preferred = [f for f in preferred if f != "annotations.json"]
    if preferred:
        return preferred
    return [f for f in labels if "/" not in f and looks_like(tree, f)]


def split_of(rel: str) -> str | None:
    """The split a COCO file's name tells (``instances_val2017.json`` is ``val``)."""
    stem = posixpath.basename(rel)[: -len(".json")]
    if stem == "_annotations.coco":
        parent = posixpath.basename(posixpath.dirname(rel))
        return canonical_split(parent) if split_like(parent) else None
    for prefix in ("instances_", "person_keypoints_"):
        if stem.startswith(prefix):
            stem = stem[len(prefix) :]
            break
    return canonical_split(stem) if split_like(stem) else None


def _subset_name(rel: str) -> str | None:
    stem = posixpath.basename(rel)[: -len(".json")]
    for prefix in ("instances_", "person_keypoints_"):
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem if split_like(stem) else None


def image_root(tree: Tree, rel: str, names: Sequence[str], given: str = "") -> str:
    """The folder a COCO file's ``file_name`` values are relative to.

    Args:
        tree: The source.
        rel: The COCO file.
        names: Its ``file_name`` values.
        given: The folder named in options, if any (used as is).

    Returns:
        The candidate folder where the most ``file_name`` values exist (first wins a
        tie): the JSON's folder, then ``images/<subset>``, ``<subset>``, ``images``,
        ``data``, ``JPEGImages`` and the folder itself under the JSON's folder, its
        parent and the root.
    """
    if given:
        return given.strip("/")
    folder = posixpath.dirname(rel)
    subset = _subset_name(rel)
    candidates: list[str] = [folder]
    for base in dict.fromkeys([folder, posixpath.dirname(folder), ""]):
        for sub in ([f"images/{subset}", subset] if subset else []) + [
            "images",
            "data",
            "JPEGImages",
            "",
        ]:
            candidates.append(posixpath.join(base, sub).strip("/") if sub else base)
    best, best_score = candidates[0], -1
    sample = list(names)
    for candidate in dict.fromkeys(candidates):
        if candidate and not tree.is_dir(candidate):
            continue
        score = sum(1 for n in sample if (p := join(candidate, n)) and tree.status(p) != "missing")
        if score > best_score:
            best, best_score = candidate, score
    return best


def read(tree: Tree, options: ReadOptions | None = None) -> LabelSet:
    """Read the COCO files of a tree.

    Args:
        tree: The source folder.
        options: ``annotations`` (files to read; default: :func:`discover`),
            ``images`` (the images folder; default: found per file), ``extensions``.

    Returns:
        The labels; an image listed in two files has the annotations of both.

    Raises:
        PixelpipeError: When no COCO file is found, or listing every problem of every
            file (invalid JSON with line and column, malformed elements, unknown
            category ids, duplicate annotation ids, an image in two splits).
    """
    options = options or ReadOptions()
    problems = Problems()
    if options.annotations:
        files = list(options.annotations)
        for name in files:
            if not tree.exists(name):
                problems.add("COCO file not found", file=tree.shown(name), key="annotations")
        problems.raise_if_any()
    elif tree.hint and tree.hint.lower().endswith(".json"):
        files = [tree.hint]
    else:
        files = discover(tree)
    if not files:
        raise PixelpipeError(
            f"{tree.display}: no COCO file found (looked for annotations/instances_*.json, "
            "annotations.json, annotations/*.json, */_annotations.coco.json, *.json)"
        )
    found_categories: list[tuple[Category, str]] = []
    items: dict[str, Item] = {}
    removed: dict[str, Removal] = {}
    image_dirs: list[str] = []
    warnings: list[str] = []
    for rel in files:
        shown = tree.shown(rel)
        try:
            parsed = parse(decode(tree.read_bytes(rel), shown), shown, problems)
        except PixelpipeError as exc:
            problems.extend(exc)
            continue
        found_categories += [(c, shown) for c in parsed.categories]
        root = image_root(tree, rel, [i.file_name for i in parsed.images], options.images)
        image_dirs.append(root)
        split = split_of(rel)
        for index, image in enumerate(parsed.images):
            where = f"{shown} images[{index}]"
            path = join(root, image.file_name)
            if path is None:
                removed.setdefault(
                    image.file_name,
                    Removal(
                        image.file_name,
                        "unsafe_path",
                        f"{where}: file_name escapes the images folder",
                    ),
                )
                continue
            annotations = parsed.annotations.get(image.id, [])
            known = items.get(path)
            if known is None:
                items[path] = Item(
                    image=path,
                    split=split,
                    width=image.width,
                    height=image.height,
                    annotations=list(annotations),
                    origin=where,
                )
                continue
            if known.split != split:
                problems.add(
                    f"{image.file_name!r} is in split {split!r} here and {known.split!r} in "
                    f"{known.origin}",
                    file=shown,
                    key=f"images[{index}]",
                )
            if (image.width, image.height) != (known.width, known.height):
                problems.add(
                    f"{image.file_name!r} is {image.width}x{image.height} here and "
                    f"{known.width}x{known.height} in {known.origin}",
                    file=shown,
                    key=f"images[{index}]",
                )
            known.annotations.extend(annotations)
    categories = merge_categories(found_categories, problems)
    problems.raise_if_any()
    listed = set(items)
    for folder in dict.fromkeys(image_dirs):
        prefix = f"{folder}/" if folder else ""
        for rel in tree.files:
            if (
                rel.startswith(prefix)
                and rel not in listed
                and has_extension(rel, options.extensions)
            ):
                listed.add(rel)
                removed.setdefault(
                    rel,
                    Removal(rel, "unlisted", "image file is in no COCO annotation file", rel),
                )
    return LabelSet(
        format=NAME,
        categories=categories,
        items=[items[k] for k in sorted(items)],
        removed=[removed[k] for k in sorted(removed)],
        image_dirs=list(dict.fromkeys(image_dirs)),
        lists_images=True,
        warnings=warnings,
    )
