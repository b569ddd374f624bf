"""Image folders for classification: read ``<class>/<image>``, write it with HF metadata.

Reading: each top-level folder is a class (``cat/001.jpg``); when every top-level folder
is a split (``train``, ``val``, ``test``...), the level below is the class
(``train/cat/001.jpg``). Class ids are the order of the ``classes`` option, else of the
sorted folder names (torchvision's ``ImageFolder`` order), from 0. An image directly in
the root or a split folder has no class. A class label is stored as an annotation whose
box is the whole image and whose attribute ``image_label`` is true.

Writing: ``<split>/<class name>/<id>`` (no split level when no sample has one) and, in
each split folder, a Hugging Face ``imagefolder`` ``metadata.jsonl`` with ``file_name``,
``label`` and, for samples with boxes, ``objects`` (``bbox`` as COCO ``[x, y, w, h]``
pixels, ``category`` ids). A sample whose labels name no class or several is not written
(it has no single folder); it is counted and listed in ``skipped.txt``.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import (
    Item,
    LabelSet,
    ReadOptions,
    canonical_split,
    has_extension,
    split_like,
)
from pixelpipe.sources import Tree

NAME = "imagefolder"
IMAGE_LABEL = "image_label"
METADATA = "metadata.jsonl"


def image_label(category_id: int) -> Annotation:
    """A whole-image class label, in normalized coordinates (see :func:`to_pixels`)."""
    return Annotation(
        category_id=category_id, bbox=(0.0, 0.0, 1.0, 1.0), attributes={IMAGE_LABEL: True}
    )


def is_image_label(annotation: Annotation) -> bool:
    """True for a whole-image class label."""
    return bool(annotation.attributes.get(IMAGE_LABEL))


def read(tree: Tree, options: ReadOptions | None = None) -> LabelSet:
    """Read class folders.

    Args:
        tree: The source folder.
        options: ``classes`` (names in id order), ``extensions``.

    Returns:
        One item per image, with a normalized whole-image label when it is in a class
        folder.

    Raises:
        PixelpipeError: When there is no image, or a folder is not in ``classes``.
    """
    options = options or ReadOptions()
    images = [f for f in tree.files if has_extension(f, options.extensions)]
    if not images:
        raise PixelpipeError(f"{tree.display}: no image files")
    top = {f.split("/", 1)[0] for f in images if "/" in f}
    by_split = bool(top) and all(split_like(name) for name in top)
    placed: list[tuple[str, str | None, str | None]] = []
    for image in images:
        parts = image.split("/")
        split = canonical_split(parts[0]) if by_split and len(parts) > 1 else None
        rest = parts[1:] if by_split and len(parts) > 1 else parts
        label = rest[0] if len(rest) > 1 else None
        placed.append((image, split, label))
    found = sorted({label for _, _, label in placed if label is not None})
    classes = list(options.classes) or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise PixelpipeError(
            f"{tree.display}: class folders {unknown} are not in `classes` ({classes})"
        )
    ids = {name: index for index, name in enumerate(classes)}
    items = []
    unlabelled = 0
    for image, split, label in placed:
        annotations = [image_label(ids[label])] if label is not None else []
        unlabelled += label is None
        items.append(
            Item(
                image=image,
                split=split,
                annotations=annotations,
                normalized=True,
                origin=tree.shown(posixpath.dirname(image)),
            )
        )
    warnings = []
    if any(posixpath.basename(f) == METADATA for f in tree.files):
        warnings.append(f"{METADATA} is not read; classes come from the folder names")
    return LabelSet(
        format=NAME,
        categories=[Category(index, name) for index, name in enumerate(classes)],
        items=items,
        image_dirs=[],
        lists_images=False,
        notes={"images_without_class": unlabelled},
        warnings=warnings,
    )


def class_of(sample: Sample) -> int | None:
    """The one class of a sample: its image label, else the class of all its boxes."""
    labels = {a.category_id for a in sample.annotations if is_image_label(a)}
    if not labels:
        labels = {a.category_id for a in sample.annotations}
    return labels.pop() if len(labels) == 1 else None


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    copy_image: Callable[[Sample, Path], bool],
) -> dict[str, int]:
    """Write class folders and ``metadata.jsonl`` into ``out``.

    Args:
        samples: The samples, in id order.
        categories: The class map.
        out: The folder to write.
        copy_image: Copies a sample's image to a path; returns False when there is none.

    Returns:
        Counts: ``images`` and ``skipped_not_single_class``.

    Raises:
        PixelpipeError: When a class name cannot be a folder name.
    """
    names = {c.id: c.name for c in categories}
    for name in names.values():
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name:
            raise PixelpipeError(f"class name {name!r} cannot be a folder name")
    use_splits = any(s.split for s in samples)
    metadata: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    images = 0
    for sample in samples:
        category = class_of(sample)
        if category is None:
            skipped.append(sample.id)
            continue
        folder = (sample.split or "unassigned") if use_splits else ""
        file_name = posixpath.join(names[category], sample.id)
        if copy_image(sample, out / folder / file_name):
            images += 1
        entry: dict[str, Any] = {"file_name": file_name, "label": names[category]}
        boxes = [a for a in sample.annotations if not is_image_label(a)]
        if boxes:
            entry["objects"] = {
                "bbox": [list(a.bbox) for a in boxes],
                "category": [a.category_id for a in boxes],
            }
        metadata.setdefault(folder, []).append(entry)
    out.mkdir(parents=True, exist_ok=True)
    for folder, entries in sorted(metadata.items()):
        path = out / folder / METADATA
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join(
                json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n"
                for e in sorted(entries, key=lambda e: e["file_name"])
            ),
            encoding="utf-8",
        )
    if skipped:
        (out / "skipped.txt").write_text("".join(f"{s}\n" for s in skipped), encoding="utf-8")
    return {"images": images, "skipped_not_single_class": len(skipped)}


def read_unlabelled(tree: Tree, options: ReadOptions | None = None) -> LabelSet:
    """Every image of a tree, without labels (the ``images`` format).

    Raises:
        PixelpipeError: When there is no image.
    """
    options = options or ReadOptions()
    images = [f for f in tree.files if has_extension(f, options.extensions)]
    if not images and not tree.links_out:
        raise PixelpipeError(f"{tree.display}: no image files")
    return LabelSet(
        format="images",
        categories=[],
        items=[Item(image=i, origin=tree.shown(i)) for i in images],
        lists_images=False,
    )
