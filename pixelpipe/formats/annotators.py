"""Several annotators' label sets of the same images: naming them, and joining them.

:func:`tag` names the annotator of a label set read from one annotator's file (CVAT XML,
COCO, VOC...; not the formats of :data:`NAMES_ANNOTATORS`, which name their own).
:func:`merge` joins several label sets into one: classes are matched by name (each file
may number them differently), items by image path, with every annotation kept beside the
others (nothing is voted or averaged here: consensus is :mod:`pixelpipe.quality`'s job).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from pixelpipe.dataset import Annotation, Category
from pixelpipe.formats.base import Item, LabelSet, Problems, Removal, to_pixels

NAMES_ANNOTATORS = frozenset({"labelstudio", "csv"})
"""Formats whose files name the annotator of every label themselves (no :func:`tag`)."""


def tag(labels: LabelSet, annotator: str) -> LabelSet:
    """``labels`` with ``annotator`` named where the source did not say.

    Annotations without an annotator get ``annotator``; every item counts as seen by
    ``annotator`` (added to :attr:`~pixelpipe.formats.base.Item.annotators`), even one
    without labels: a per-annotator file lists what that annotator looked at.

    Args:
        labels: What a reader returned (left unchanged).
        annotator: The annotator's name (a file stem, a user name...).

    Returns:
        A new label set.
    """
    items = []
    for item in labels.items:
        annotations = [
            a if a.annotator is not None else dataclasses.replace(a, annotator=annotator)
            for a in item.annotations
        ]
        seen = item.annotators + ([] if annotator in item.annotators else [annotator])
        items.append(dataclasses.replace(item, annotations=annotations, annotators=seen))
    return dataclasses.replace(labels, items=items)


def _class_maps(
    parts: Sequence[LabelSet], problems: Problems
) -> tuple[list[Category], list[dict[int, int]]]:
    """One class map by name, and for each part the map from its ids to the merged ids.

    A name keeps the id of the first part that names it; a name new in a later part keeps
    its own id when no earlier class has it, else gets the next id after the highest in use.
    """
    merged: dict[str, Category] = {}
    used: set[int] = set()
    maps: list[dict[int, int]] = []
    for number, part in enumerate(parts, start=1):
        mapping: dict[int, int] = {}
        ordered = sorted(part.categories, key=lambda c: c.id)
        names: dict[str, int] = {}
        for category in ordered:
            if category.name in names:
                problems.add(
                    f"part {number} ({part.format}) names class '{category.name}' twice "
                    f"(ids {names[category.name]} and {category.id})",
                    key="categories",
                )
            names.setdefault(category.name, category.id)
        new = [c for c in ordered if c.name not in merged and names[c.name] == c.id]
        taken = [c for c in new if c.id in used]
        for category in new:
            if category.id not in used:
                merged[category.name] = category
                used.add(category.id)
        for category in taken:
            free = max(used) + 1
            merged[category.name] = Category(free, category.name, category.parent)
            used.add(free)
        for category in ordered:
            known = merged[category.name]
            mapping[category.id] = known.id
            if known.parent is None and category.parent is not None:
                merged[category.name] = Category(known.id, known.name, category.parent)
            elif category.parent not in (None, known.parent):
                problems.add(
                    f"class '{category.name}' has parent '{category.parent}' in part {number} "
                    f"({part.format}) but '{known.parent}' before",
                    key="categories",
                )
        maps.append(mapping)
    return sorted(merged.values(), key=lambda c: c.id), maps


def _remap(item: Item, mapping: dict[int, int], problems: Problems) -> list[Annotation]:
    out = []
    for annotation in item.annotations:
        if annotation.category_id not in mapping:
            problems.add(
                f"category id {annotation.category_id} is not in its label set's class map",
                file=item.origin or item.image,
            )
            continue
        out.append(dataclasses.replace(annotation, category_id=mapping[annotation.category_id]))
    return out


def _join(first: Item, other: Item, annotations: list[Annotation], problems: Problems) -> None:
    """Add ``other`` (its ``annotations`` remapped) to ``first``, checking size and split."""
    if None not in (first.width, other.width) and (first.width, first.height) != (
        other.width,
        other.height,
    ):
        problems.add(
            f"{first.image} is {other.width}x{other.height} in {other.origin} but "
            f"{first.width}x{first.height} in {first.origin}",
            key="width/height",
        )
    elif first.width is None:
        first.width, first.height = other.width, other.height
    if None not in (first.split, other.split) and first.split != other.split:
        problems.add(
            f"{first.image} is in split '{other.split}' in {other.origin} but "
            f"'{first.split}' in {first.origin}",
            key="split",
        )
    first.split = first.split or other.split
    if first.normalized != other.normalized:
        size = (first.width, first.height)
        if size[0] is None or size[1] is None:
            problems.add(
                f"{first.image} has labels in fractions of the image in "
                f"{(first if first.normalized else other).origin} and in pixels in "
                f"{(other if first.normalized else first).origin}, but no file declares its size",
                key="width/height",
            )
        elif first.normalized:
            first.annotations = to_pixels(first.annotations, size[0], size[1])
            first.normalized = False
        else:
            annotations = to_pixels(annotations, size[0], size[1])
    first.annotations.extend(annotations)
    first.annotators.extend(a for a in other.annotators if a not in first.annotators)


def merge(parts: Sequence[LabelSet]) -> LabelSet:
    """One label set from several annotators' label sets of the same images.

    - Classes are matched by name: a name keeps the id of the first part that names it;
      a name new in a later part keeps its own id when free, else gets the next free id
      (one more than the highest in use). Every annotation is remapped.
    - Items are matched by image path: annotations are concatenated in part order and
      ``annotators`` joined in order; declared sizes must agree, the split is the first
      given (two different splits are a problem). An image labelled in fractions in one
      part and in pixels in another gets pixels, scaled by the declared size.
    - Removals are kept once per id; an ``unlisted`` removal is dropped when another part
      lists the image; any other removal of an image removes it from the result (with a
      warning): one annotator's labels of it could not be read. Notes are summed,
      warnings concatenated.

    Args:
        parts: The label sets, in a fixed order (it decides ids and annotation order).

    Returns:
        The merged label set, items sorted by image path.

    Raises:
        PixelpipeError: Listing every conflict (a class named twice in one part, two
            parents for one class, sizes or splits that disagree, fractions and pixels
            without a declared size), naming the files.
    """
    problems = Problems()
    categories, maps = _class_maps(parts, problems)
    items: dict[str, Item] = {}
    for part, mapping in zip(parts, maps, strict=True):
        for item in part.items:
            annotations = _remap(item, mapping, problems)
            known = items.get(item.image)
            if known is None:
                items[item.image] = dataclasses.replace(
                    item, annotations=annotations, annotators=list(item.annotators)
                )
            else:
                _join(known, item, annotations, problems)
    problems.raise_if_any()
    removed: dict[str, Removal] = {}
    for part in parts:
        for removal in part.removed:
            if removal.reason == "unlisted" and (removal.path or removal.id) in items:
                continue
            removed.setdefault(removal.id, removal)
    notes: Counter[str] = Counter()
    for part in parts:
        notes.update(part.notes)
    warnings = [w for part in parts for w in part.warnings]
    for removal in removed.values():
        if removal.path is not None and items.pop(removal.path, None) is not None:
            # One annotator's labels of this image could not be read: the others alone
            # would look like a disagreement, so the image goes.
            notes["images_removed_by_another_part"] += 1
            warnings.append(
                f"{removal.path} is removed ({removal.reason}) by one label set; "
                "its labels from the others are not used"
            )
    formats = list(dict.fromkeys(part.format for part in parts))
    return LabelSet(
        format="+".join(formats),
        categories=categories,
        items=[items[k] for k in sorted(items)],
        removed=[removed[k] for k in sorted(removed)],
        image_dirs=list(dict.fromkeys(d for part in parts for d in part.image_dirs)),
        lists_images=any(part.lists_images for part in parts),
        notes=dict(sorted(notes.items())),
        warnings=warnings,
    )
