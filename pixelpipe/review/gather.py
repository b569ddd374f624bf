"""Every annotator's labels per image, from label files or a manifest, as the maths takes them.

:func:`from_label_set` reads what a format reader returned (one file per annotator, a Label
Studio export with several annotators per task, a CVAT XML file, a CSV of image labels);
:func:`from_samples` reads a manifest whose annotations carry an ``annotator``. Both give a
:class:`Gathered`: per image, who saw it (an annotator who saw an image and drew nothing
counts against agreement; one who never saw it does not), each annotator's boxes as arrays
and its image-level class labels, and the class names. Classes are compared by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.dataset.schema import ANNOTATED_BY_COLUMN
from pixelpipe.formats.base import LabelSet, to_pixels
from pixelpipe.formats.imagefolder import is_image_label

Boxes = npt.NDArray[np.float64]


@dataclass
class ImageLabels:
    """One image and what each annotator said about it.

    Attributes:
        id: The image's id (sample id, or its path in the label files).
        width: Its width, when known (boxes are pixels then, else fractions of the size).
        height: Its height, when known.
        image: Where its pixels are (a path), for report thumbnails; ``None`` when absent.
        seen: The annotators who labelled it, sorted (drawing nothing counts as labelling).
        boxes: Per annotator who saw it: its boxes ``(n, 4)`` ``[x, y, w, h]`` and labels.
        tags: Per annotator who gave any: its image-level class labels, sorted.
        annotations: Per annotator, its annotations as read (for consensus output).
    """

    id: str
    width: float | None = None
    height: float | None = None
    image: str | None = None
    seen: list[str] = field(default_factory=list)
    boxes: dict[str, tuple[Boxes, list[str]]] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)
    annotations: dict[str, list[Annotation]] = field(default_factory=dict)

    def box_input(self) -> dict[str, tuple[Boxes, list[str]]]:
        """Boxes of every annotator who saw the image (empty arrays for one who drew none)."""
        return {name: self.boxes.get(name, (_EMPTY, [])) for name in self.seen}


_EMPTY: Boxes = np.zeros((0, 4), dtype=np.float64)


@dataclass
class Gathered:
    """Every image with every annotator's labels.

    Attributes:
        images: Sorted by id.
        annotators: Every annotator, sorted.
        classes: Every class name used or declared, sorted.
        notes: Sentences about the input worth a line in the report.
        unnamed: Labels left out because no annotator was named for them.
        categories: The class map the labels came with (ids as the source gives them).
    """

    images: list[ImageLabels]
    annotators: list[str]
    classes: list[str]
    notes: list[str] = field(default_factory=list)
    unnamed: int = 0
    categories: list[Category] = field(default_factory=list)

    def class_map(self) -> list[Category]:
        """The class map for output: the source's, plus any class it lacks (next free ids)."""
        out = list(self.categories)
        known = {c.name for c in out}
        free = max((c.id for c in out), default=0) + 1
        for name in self.classes:
            if name not in known:
                out.append(Category(free, name))
                free += 1
        return sorted(out, key=lambda c: c.id)

    def without(self, annotator: str) -> Gathered:
        """The same images without one annotator (the gold set, scored apart)."""
        return self.only([a for a in self.annotators if a != annotator])

    def only(self, annotators: Sequence[str]) -> Gathered:
        """The same images with these annotators' labels only (images none of them saw go)."""
        keep = set(annotators)
        images = []
        for one in self.images:
            seen = [a for a in one.seen if a in keep]
            if not seen:
                continue
            images.append(
                ImageLabels(
                    one.id,
                    one.width,
                    one.height,
                    one.image,
                    seen,
                    {a: v for a, v in one.boxes.items() if a in keep},
                    {a: v for a, v in one.tags.items() if a in keep},
                    {a: v for a, v in one.annotations.items() if a in keep},
                )
            )
        return Gathered(
            images,
            [a for a in self.annotators if a in keep],
            self.classes,
            list(self.notes),
            self.unnamed,
            self.categories,
        )

    def has_boxes(self) -> bool:
        """True when any annotator drew a box."""
        return any(one.boxes for one in self.images)

    def has_tags(self) -> bool:
        """True when any annotator gave an image-level class label."""
        return any(one.tags for one in self.images)


def _image(
    image_id: str,
    width: float | None,
    height: float | None,
    path: str | None,
    annotations: Iterable[Annotation],
    seen: Iterable[str],
    names: dict[int, str],
) -> tuple[ImageLabels, int]:
    by_annotator: dict[str, list[Annotation]] = {}
    unnamed = 0
    for ann in annotations:
        if ann.annotator is None:
            unnamed += 1
            continue
        by_annotator.setdefault(ann.annotator, []).append(ann)
    who = set(seen) | set(by_annotator)
    one = ImageLabels(image_id, width, height, path, sorted(who))
    for name in one.seen:
        anns = by_annotator.get(name, [])
        one.annotations[name] = anns
        boxes = [a for a in anns if not is_image_label(a)]
        tags = sorted(
            {names.get(a.category_id, str(a.category_id)) for a in anns if is_image_label(a)}
        )
        if tags:
            one.tags[name] = tags
        if boxes:
            one.boxes[name] = (
                np.array([a.bbox for a in boxes], dtype=np.float64).reshape(-1, 4),
                [names.get(a.category_id, str(a.category_id)) for a in boxes],
            )
    return one, unnamed


def _finish(
    images: list[ImageLabels], categories: list[Category], unnamed: int, notes: list[str]
) -> Gathered:
    names = {c.id: c.name for c in categories}
    images.sort(key=lambda one: one.id)
    annotators = sorted({a for one in images for a in one.seen})
    used = {label for one in images for _, labels in one.boxes.values() for label in labels}
    used |= {label for one in images for tags in one.tags.values() for label in tags}
    if unnamed:
        notes.append(
            f"{unnamed} labels name no annotator and are left out (tag each file with its "
            "annotator)"
        )
    classes = sorted(set(names.values()) | used)
    return Gathered(images, annotators, classes, notes, unnamed, list(categories))


def from_label_set(labels: LabelSet) -> Gathered:
    """Gather a label set (annotators tagged and items merged, see ``formats.annotators``).

    Args:
        labels: What the reader returned.

    Returns:
        The images with every annotator's labels; normalized labels are converted to
        pixels where the size is declared (IoU is the same either way).
    """
    names = labels.category_names()
    images: list[ImageLabels] = []
    unnamed = 0
    for item in labels.items:
        annotations = item.annotations
        if item.normalized and item.width and item.height:
            annotations = to_pixels(annotations, item.width, item.height)
        one, skipped = _image(
            item.image,
            item.width,
            item.height,
            None,
            annotations,
            item.annotators,
            names,
        )
        unnamed += skipped
        if one.seen:
            images.append(one)
    return _finish(images, labels.categories, unnamed, [])


def from_samples(samples: Iterable[Sample], categories: list[Category]) -> Gathered:
    """Gather a manifest's samples; who saw an image is its ``annotated_by`` column if any.

    Args:
        samples: The manifest's samples.
        categories: The class map.
    """
    names = {c.id: c.name for c in categories}
    images: list[ImageLabels] = []
    unnamed = 0
    for sample in samples:
        seen = sample.extra.get(ANNOTATED_BY_COLUMN) or []
        one, skipped = _image(
            sample.id,
            sample.width,
            sample.height,
            sample.image,
            sample.annotations,
            seen,
            names,
        )
        unnamed += skipped
        if one.seen:
            images.append(one)
    return _finish(images, categories, unnamed, [])
