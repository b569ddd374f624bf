"""Model predictions as labels: a COCO results file, and the checks every predictions file passes.

A prediction is an annotation with a ``score`` (the model's confidence, in [0, 1]) and
``annotator`` = the model's name, kept beside the human labels of the same image. Three
formats carry them: a COCO results file (``[{image_id, category_id, bbox, score}]``, the
file cocoapi's ``loadRes`` reads; its image and category ids are those of a COCO file that
lists the images), YOLO label files with a sixth column (read by the YOLO reader), and
Label Studio ``predictions`` (read by its reader). :func:`as_predictions` names the model
and checks what every format must hold: a score in [0, 1] on every label, images the
dataset has, classes it knows; each problem is one line with the file and the entry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection
from typing import Any

from pixelpipe.dataset import Annotation
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import Item, LabelSet, Problems, ReadOptions
from pixelpipe.formats.coco.document import decode, parse
from pixelpipe.formats.coco.reader import image_root
from pixelpipe.sources import Tree, join

NAME = "coco_results"
_PEEK = 4096


def looks_like(tree: Tree, rel: str) -> bool:
    """True when ``rel`` is a JSON list whose first entry has ``image_id`` and ``score``."""
    try:
        with tree.access.open(rel) as stream:
            head = stream.read(_PEEK)
    except OSError:
        return False
    text = head.lstrip()
    return text.startswith(b"[") and b'"image_id"' in text and b'"score"' in text


def read_coco_results(tree: Tree, rel: str, reference: str, options: ReadOptions) -> LabelSet:
    """Read a COCO results file against the COCO file that lists its images.

    Args:
        tree: The source.
        rel: The results file, in the tree.
        reference: The COCO file whose image and category ids the results use.
        options: ``images`` (the images folder, as for COCO).

    Returns:
        One item per image with predictions, each box with its ``score``.

    Raises:
        PixelpipeError: Every problem at once: invalid JSON (with its line), an entry that
            is not an object, an unknown image or category id, a malformed box or score.
    """
    shown, ref_shown = tree.shown(rel), tree.shown(reference)
    if not tree.exists(rel):
        raise PixelpipeError(f"{shown}: predictions file not found")
    if not tree.exists(reference):
        raise PixelpipeError(f"{ref_shown}: COCO file of the predictions' image ids not found")
    problems = Problems()
    coco = parse(decode(tree.read_bytes(reference), ref_shown), ref_shown, problems)
    problems.raise_if_any()
    root = image_root(tree, reference, [i.file_name for i in coco.images], options.images)
    paths = {image.id: join(root, image.file_name) for image in coco.images}
    sizes = {image.id: (image.width, image.height) for image in coco.images}
    known = {c.id for c in coco.categories}
    entries = decode(tree.read_bytes(rel), shown)
    if not isinstance(entries, list):
        raise PixelpipeError(f"{shown}: a COCO results file is a JSON list of detections")
    items: dict[str, Item] = {}
    for index, entry in enumerate(entries):
        key = f"[{index}]"
        if not isinstance(entry, dict):
            problems.add(
                "a detection is an object {image_id, category_id, bbox, score}", shown, key=key
            )
            continue
        image_id, category = entry.get("image_id"), entry.get("category_id")
        path = paths.get(image_id)
        if path is None:
            problems.add(f"image_id {image_id!r} is not an image of {ref_shown}", shown, key=key)
            continue
        if category not in known:
            problems.add(
                f"category_id {category!r} is not a category of {ref_shown}", shown, key=key
            )
            continue
        box = entry.get("bbox")
        if not (
            isinstance(box, list)
            and len(box) == 4
            and all(_number(v) for v in box)
            and box[2] >= 0
            and box[3] >= 0
        ):
            problems.add(f"bbox must be [x, y, w, h] with w, h >= 0, got {box!r}", shown, key=key)
            continue
        item = items.get(path)
        if item is None:
            width, height = sizes[image_id]
            item = items[path] = Item(image=path, width=width, height=height, origin=shown)
        item.annotations.append(
            Annotation(
                category_id=int(category),
                bbox=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                score=entry.get("score"),  # checked with every format's in as_predictions
            )
        )
    problems.raise_if_any()
    return LabelSet(
        format=NAME,
        categories=list(coco.categories),
        items=[items[k] for k in sorted(items)],
        lists_images=True,
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def as_predictions(
    labels: LabelSet,
    model: str,
    shown: str,
    images: Collection[str],
    classes: Collection[str] | None,
) -> LabelSet:
    """A predictions file's labels, checked and named after the model.

    Args:
        labels: What the reader returned.
        model: The model's name: every label's ``annotator``.
        shown: The file, for messages.
        images: The images of the dataset (tree paths): a prediction elsewhere is a problem.
        classes: The dataset's class names (``None``: any class is known).

    Returns:
        The labels with ``annotator`` = ``model``; every image counts as seen by it.

    Raises:
        PixelpipeError: Every problem at once: a label without a score or with a score
            outside [0, 1], an image the dataset does not have, a class it does not know.
    """
    problems = Problems()
    names = labels.category_names()
    items = []
    for item in labels.items:
        where = item.origin or shown
        if item.image not in images:
            problems.add(f"predictions for {item.image!r}, which the dataset does not have", where)
            continue
        for ann in item.annotations:
            name = names.get(ann.category_id, str(ann.category_id))
            if ann.score is None or not _number(ann.score) or not 0.0 <= ann.score <= 1.0:
                problems.add(
                    f"{item.image}: a {name} box has score {ann.score!r}; a prediction's score "
                    "is a number in [0, 1]",
                    where,
                )
            if classes is not None and name not in classes:
                problems.add(f"{item.image}: class {name!r} is not a class of the dataset", where)
        annotations = [dataclasses.replace(a, annotator=model) for a in item.annotations]
        items.append(dataclasses.replace(item, annotations=annotations, annotators=[model]))
    problems.raise_if_any()
    return dataclasses.replace(labels, items=items, removed=[])
