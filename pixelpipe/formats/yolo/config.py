"""The file that describes a YOLO dataset, and the layout it gives.

:func:`find_config` finds it: an Ultralytics YAML with ``names`` (``data.yaml``), a
Darknet ``obj.data``, or a names file (``obj.names``, ``classes.txt``, ``*.names``).
:func:`ultralytics`, :func:`darknet` and :func:`loose` turn it into a :class:`Layout`:
the class names, the images of each split and the folders that hold label files.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import (
    Problems,
    ReadOptions,
    Removal,
    canonical_split,
    has_extension,
    split_like,
)
from pixelpipe.safeyaml import parse
from pixelpipe.sources import Tree, join

SPLIT_KEYS = ("train", "val", "test")
NAMES_FILES = ("obj.names", "classes.txt", "classes.names", "coco.names")
MAX_CLASS_INDEX = 2**63 - 1  # category ids are signed 64-bit integers in the manifest
_WHOLE = re.compile(r"\s*([+-]?)([0-9]+)\s*\Z")


@dataclass
class Layout:
    """What a YOLO dataset file describes.

    Attributes:
        kind: ``ultralytics``, ``darknet`` or ``loose``.
        config: The dataset file (the YAML, ``obj.data`` or the names file).
        names: Class index to name.
        splits: Split (``None`` for none) to the image paths in the tree, in order.
        label_dirs: The folders where label files of these images may be.
        keypoints: True when the YAML declares ``kpt_shape`` (keypoints are not read).
    """

    kind: str
    config: str | None
    names: dict[int, str]
    # split -> image paths (tree paths), in order
    splits: dict[str | None, list[str]] = field(default_factory=dict)
    label_dirs: list[str] = field(default_factory=list)
    keypoints: bool = False


def load_yaml(tree: Tree, rel: str, problems: Problems) -> dict[str, Any] | None:
    """Load an Ultralytics YAML file; problems are recorded, not raised.

    The file is read as plain YAML (:func:`pixelpipe.safeyaml.parse`): a tag, a duplicate
    key or an alias bomb is a problem with its line, and nothing is built from it.

    Args:
        tree: The source.
        rel: The YAML file.
        problems: Where problems go (invalid YAML with its line, not a mapping).

    Returns:
        The mapping, or ``None`` when the file is not a YAML mapping.
    """
    shown = tree.shown(rel)
    try:
        data = parse(tree.read_text(rel), shown).data
    except PixelpipeError as exc:
        problems.extend(exc)
        return None
    if not isinstance(data, dict):
        problems.add("a YOLO dataset file is a mapping with 'names'", file=shown)
        return None
    return data


def _names_from_yaml(data: dict[str, Any], shown: str, problems: Problems) -> dict[int, str]:
    raw = data.get("names")
    names: dict[int, str] = {}
    if isinstance(raw, list):
        names = {index: str(name) for index, name in enumerate(raw)}
    elif isinstance(raw, dict):
        for key, value in raw.items():
            index = _class_index(key)
            written = repr(key) if len(repr(key)) <= 40 else f"{repr(key)[:37]}..."
            if index is None:
                problems.add(
                    f"class index {written} is not a whole number", file=shown, key="names"
                )
            elif index < 0:
                problems.add(f"class index {written} is negative", file=shown, key="names")
            elif index > MAX_CLASS_INDEX:
                problems.add(
                    f"class index {written} does not fit in a signed 64-bit integer",
                    file=shown,
                    key="names",
                )
            else:
                names[index] = str(value)
    else:
        problems.add(
            "required key 'names' (a list or a mapping) is missing", file=shown, key="names"
        )
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        problems.add(f"nc is {nc} but names has {len(names)} classes", file=shown, key="nc")
    return names


def _class_index(key: Any) -> int | None:
    """A ``names`` key as a whole number: an integer, a whole float or a string of digits."""
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, float):
        return int(key) if key.is_integer() else None
    match = _WHOLE.match(key) if isinstance(key, str) else None
    if match is None:
        return None
    sign, digits = match.group(1), match.group(2).lstrip("0") or "0"
    if len(digits) > 19:  # out of range: never convert thousands of digits
        return -MAX_CLASS_INDEX - 1 if sign == "-" else MAX_CLASS_INDEX + 1
    return int(sign + digits)


def _names_file(tree: Tree, rel: str) -> dict[int, str]:
    lines = [line.strip() for line in tree.read_text(rel).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return dict(enumerate(lines))


def _image_list(
    tree: Tree, rel: str, base: str, extensions: Sequence[str], removed: dict[str, Removal]
) -> list[str]:
    """Images named by a list file (one path per line)."""
    found = []
    parent = posixpath.dirname(rel)
    for line_number, line in enumerate(tree.read_text(rel).splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = _resolve_entry(tree, parent if entry.startswith("./") else base, entry)
        if path is None:
            removed.setdefault(
                entry,
                Removal(
                    entry,
                    "unsafe_path",
                    f"{tree.shown(rel)}:{line_number}: the path is absolute or leaves the "
                    "dataset folder",
                ),
            )
            continue
        found.append(path)
    return found


def _resolve_entry(tree: Tree, base: str, entry: str) -> str | None:
    """A path from a YOLO config: relative to ``base``; ``data/...`` as Darknet means it.

    As Ultralytics does, ``../x`` that is not there is retried as ``x``.
    """
    path = join(base, entry)
    retries = [path]
    if entry.startswith("../"):
        retries.append(join(base, entry[3:]))
    if entry.startswith("data/"):  # Darknet runs from its own folder, where data/ is ours
        retries.append(join(base, entry[5:]))
    for candidate in retries:
        if candidate is not None and (tree.exists(candidate) or tree.is_dir(candidate)):
            return candidate
    return path if path is not None else next((r for r in retries if r is not None), None)


def _label_dir(folder: str) -> str:
    padded = f"/{folder}/"
    if "/images/" in padded:
        head, tail = padded.rsplit("/images/", 1)
        return f"{head}/labels/{tail}".strip("/")
    return folder


def ultralytics(
    tree: Tree,
    rel: str,
    data: dict[str, Any],
    options: ReadOptions,
    problems: Problems,
    removed: dict[str, Removal],
    warnings: list[str],
) -> Layout:
    """The layout an Ultralytics YAML describes.

    ``train``/``val``/``test`` name image folders or list files, relative to the YAML's
    folder, or to its ``path`` when that is a folder inside the source.

    Args:
        tree: The source.
        rel: The YAML file.
        data: Its mapping (see :func:`load_yaml`).
        options: ``extensions``.
        problems: Where problems go (bad ``names``, split paths not found).
        removed: Where unsafe list-file entries go, by entry.
        warnings: Where warnings go (``path`` not a folder, keypoints not read).

    Returns:
        The layout.
    """
    shown = tree.shown(rel)
    names = _names_from_yaml(data, shown, problems)
    base = posixpath.dirname(rel)
    path_value = data.get("path")
    if isinstance(path_value, str) and path_value not in ("", "."):
        inside = join(base, path_value)
        if inside is not None and tree.is_dir(inside):
            base = inside
        else:
            warnings.append(
                f"{shown}: path {path_value!r} is not a folder inside the source; "
                "train/val/test are read relative to the YAML file's folder"
            )
    layout = Layout("ultralytics", rel, names, keypoints="kpt_shape" in data)
    if layout.keypoints:
        warnings.append(f"{shown}: keypoints (kpt_shape) are not read; boxes are")
    for key in SPLIT_KEYS:
        value = data.get(key)
        if value is None:
            continue
        entries = value if isinstance(value, list) else [value]
        images: list[str] = []
        for entry in entries:
            if not isinstance(entry, str) or not entry:
                problems.add("must be a path or a list of paths", file=shown, key=key)
                continue
            path = _resolve_entry(tree, base, entry)
            if path is None:
                problems.add(
                    f"{entry!r} is absolute or leaves the dataset folder", file=shown, key=key
                )
            elif tree.is_dir(path):
                images += [f for f in tree.under(path) if has_extension(f, options.extensions)]
                layout.label_dirs.append(_label_dir(path))
            elif tree.exists(path) and path.endswith(".txt"):
                listed = _image_list(tree, path, base, options.extensions, removed)
                images += listed
                layout.label_dirs += sorted({_label_dir(posixpath.dirname(p)) for p in listed})
            else:
                problems.add(f"{entry!r} not found (resolved to {path!r})", file=shown, key=key)
        layout.splits[key] = images
    if not layout.splits and not problems:
        problems.add("no 'train', 'val' or 'test' key names the images", file=shown)
    return layout


def darknet(
    tree: Tree, rel: str, problems: Problems, removed: dict[str, Removal], options: ReadOptions
) -> Layout:
    """The layout a Darknet ``obj.data`` describes (``names``, ``train``, ``valid``, ``test``).

    Args:
        tree: The source.
        rel: The ``.data`` file.
        problems: Where problems go (bad lines, names or list files not found).
        removed: Where unsafe list-file entries go, by entry.
        options: ``extensions``.

    Returns:
        The layout: splits from the list files, label folders those of the images.
    """
    shown = tree.shown(rel)
    base = posixpath.dirname(rel)
    values: dict[str, tuple[str, int]] = {}
    for line_number, line in enumerate(tree.read_text(rel).splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "=" not in stripped:
            problems.add("expected 'key = value'", file=shown, line=line_number)
            continue
        key, value = (p.strip() for p in stripped.split("=", 1))
        values[key] = (value, line_number)
    names: dict[int, str] = {}
    if "names" not in values:
        problems.add("required key 'names' is missing", file=shown, key="names")
    else:
        value, line_number = values["names"]
        path = _resolve_entry(tree, base, value)
        if path is None or not tree.exists(path):
            problems.add(f"names file {value!r} not found", file=shown, line=line_number)
        else:
            names = _names_file(tree, path)
    classes = values.get("classes")
    count = _class_index(classes[0]) if classes is not None else None
    if classes is not None and count is not None and count != len(names) and names:
        problems.add(
            f"classes is {classes[0][:40]} but the names file has {len(names)}",
            file=shown,
            line=classes[1],
        )
    layout = Layout("darknet", rel, names)
    for key, split in (("train", "train"), ("valid", "val"), ("test", "test")):
        if key not in values:
            continue
        value, line_number = values[key]
        path = _resolve_entry(tree, base, value)
        if path is None or not tree.exists(path):
            problems.add(f"list file {value!r} not found", file=shown, line=line_number)
            continue
        listed = _image_list(tree, path, base, options.extensions, removed)
        layout.splits[split] = listed
        layout.label_dirs += sorted({posixpath.dirname(p) for p in listed})
    return layout


def loose(tree: Tree, rel: str, options: ReadOptions) -> Layout:
    """The layout of a names file with images anywhere in the tree.

    A folder called ``train``/``val``/``test`` on an image's path gives its split;
    files under a ``labels`` folder are not images.

    Args:
        tree: The source.
        rel: The names file.
        options: ``extensions``.

    Returns:
        The layout.
    """
    names = _names_file(tree, rel)
    layout = Layout("loose", rel, names)
    for image in tree.files:
        if not has_extension(image, options.extensions):
            continue
        parts = image.split("/")[:-1]
        if "labels" in parts:
            continue
        split = next((canonical_split(p) for p in parts if split_like(p)), None)
        layout.splits.setdefault(split, []).append(image)
    folders = {posixpath.dirname(p) for paths in layout.splits.values() for p in paths}
    layout.label_dirs = sorted({_label_dir(f) for f in folders})
    return layout


def find_config(tree: Tree, options: ReadOptions) -> tuple[str, str]:
    """The YOLO file that describes the dataset, and its kind.

    Returns:
        ``(path, kind)`` with kind ``ultralytics`` (a YAML with ``names``; else a root
        YAML that cannot be read, so that reading it names its problem), ``darknet``
        (``obj.data``) or ``loose`` (a names file).

    Raises:
        PixelpipeError: When none is found, or several YAML files could be it.
    """
    named = list(options.annotations)
    if not named and tree.hint:
        named = [tree.hint]
    if named:
        rel = named[0]
        if not tree.exists(rel):
            raise PixelpipeError(f"{tree.shown(rel)}: YOLO dataset file not found")
        if rel.endswith((".yaml", ".yml")):
            return rel, "ultralytics"
        if rel.endswith(".data"):
            return rel, "darknet"
        return rel, "loose"
    yamls = [f for f in tree.children() if f.endswith((".yaml", ".yml")) and tree.exists(f)]
    has_names = {f: _has_names(tree, f) for f in yamls}
    with_names = [f for f, has in has_names.items() if has]
    if len(with_names) > 1:
        raise PixelpipeError(
            f"{tree.display}: several YOLO dataset files ({', '.join(with_names)}); "
            "name the one to read in `annotations`"
        )
    if with_names:
        return with_names[0], "ultralytics"
    unreadable = [f for f, has in has_names.items() if has is None]
    if unreadable:  # it may be the dataset file: reading it reports why it cannot be read
        return unreadable[0], "ultralytics"
    datas = [f for f in tree.children() if f.endswith(".data") and tree.exists(f)]
    if datas:
        return datas[0], "darknet"
    for name in NAMES_FILES:
        if tree.exists(name):
            return name, "loose"
    others = [f for f in tree.children() if f.endswith(".names") and tree.exists(f)]
    if others:
        return others[0], "loose"
    raise PixelpipeError(
        f"{tree.display}: no YOLO dataset file (data.yaml with names, obj.data, obj.names "
        "or classes.txt)"
    )


def _has_names(tree: Tree, rel: str) -> bool | None:
    """True for a YAML with ``names``; ``None`` for one that cannot be read safely.

    A YAML that cannot be read (a syntax error, a tag, an alias bomb) may be the dataset
    file: when no YAML has ``names``, :func:`find_config` picks it, and reading it reports
    its problem with the line, where skipping it would report that no dataset file was
    found.
    """
    try:
        data = parse(tree.read_text(rel), tree.shown(rel)).data
    except PixelpipeError:
        return None
    return isinstance(data, dict) and "names" in data
