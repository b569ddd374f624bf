"""What every format reader returns, and helpers they share.

A reader turns a :class:`~pixelpipe.sources.Tree` into a :class:`LabelSet`: the class
map, one :class:`Item` per image (its path in the tree, declared size, split and
annotations in pixelpipe's convention) and :class:`Removal` entries for what cannot
become a sample (a label file without its image, a path that escapes the folder...).
Malformed files raise one :class:`~pixelpipe.errors.PixelpipeError` listing every
:class:`~pixelpipe.errors.Problem` with its file and line or element.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError, Problem

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
PixelConvention = Literal["corners", "inclusive"]
IdPolicy = Literal["auto", "preserve", "zero_based", "one_based"]
MAX_PROBLEMS = 50
UNASSIGNED = "unassigned"
"""The split every export writes samples without a split under (and the plots count)."""
_SPLIT = re.compile(r"^(train|val|valid|validation|test|trainval|dev)(\d{4})?$", re.I)
_SPLIT_ALIASES = {"valid": "val", "validation": "val", "dev": "val"}


@dataclass
class Item:
    """One image of a labelled source.

    Attributes:
        image: The image's path in the tree (relative posix path), found or not.
        split: ``train``, ``val``, ``test``... when the layout says.
        width: Width declared by the label file, if any.
        height: Height declared by the label file, if any.
        annotations: The labels, boxes in pixelpipe's convention (see ``normalized``).
        normalized: True when coordinates are fractions of the displayed image size
            (YOLO, whole-image class labels); :func:`to_pixels` scales them.
        origin: The label file (and element) it came from, for messages.
        annotators: Annotators who labelled this image, including those who drew
            nothing; empty when the source does not say.
    """

    image: str
    split: str | None = None
    width: int | None = None
    height: int | None = None
    annotations: list[Annotation] = field(default_factory=list)
    normalized: bool = False
    origin: str = ""
    annotators: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Removal:
    """Something found that cannot become a sample.

    Attributes:
        id: Its id in ``removed.parquet`` (a path in the tree, or the name as written).
        reason: Short machine-readable reason (``missing``, ``unsafe_path``...).
        detail: A sentence for people, naming the file.
        path: The path in the tree it concerns, when there is one.
    """

    id: str
    reason: str
    detail: str
    path: str | None = None


@dataclass
class LabelSet:
    """What a reader found.

    Attributes:
        format: The format's name.
        categories: The class map, ids as the source gives them.
        items: One per image, in a deterministic order.
        removed: Things that cannot become samples, with reasons.
        image_dirs: Folders (tree paths) the images live in; images there that no label
            file lists are reported as ``unlisted`` by formats that list images.
        lists_images: True when the label files list the images (COCO, VOC); false
            when the images are found by scanning folders (YOLO, image folders).
        notes: Counts worth reporting (``images_without_labels``...).
        warnings: Sentences worth logging.
    """

    format: str
    categories: list[Category]
    items: list[Item]
    removed: list[Removal] = field(default_factory=list)
    image_dirs: list[str] = field(default_factory=list)
    lists_images: bool = True
    notes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def category_names(self) -> dict[int, str]:
        """Category id to name."""
        return {c.id: c.name for c in self.categories}


@dataclass
class ReadOptions:
    """Options every reader accepts (each uses the ones that apply to it).

    Attributes:
        annotations: Label files to read, relative to the tree (COCO JSON files, a YOLO
            ``data.yaml`` or ``obj.data``); empty: find them.
        images: COCO: the images folder, relative to the tree; empty: find it.
        classes: Class names in id order (ids 0..n-1) for formats that name classes
            without ids (VOC, image folders); empty: ``labelmap.txt`` or sorted names.
        pixel_convention: VOC box convention (``corners`` or ``inclusive``).
        extensions: File endings that are images.
        predictions: Label Studio: read the tasks' ``predictions`` (annotator = the
            prediction's ``model_version``, ``score`` kept, 0.0 included) instead of their
            ``annotations``.
    """

    annotations: Sequence[str] = ()
    images: str = ""
    classes: Sequence[str] = ()
    pixel_convention: PixelConvention = "corners"
    extensions: Sequence[str] = IMAGE_EXTENSIONS
    predictions: bool = False


class Problems:
    """Collects problems and raises them together.

    Args:
        limit: How many to list before summarizing the rest.
    """

    def __init__(self, limit: int = MAX_PROBLEMS) -> None:
        self.items: list[Problem] = []
        self.limit = limit

    def add(
        self, message: str, file: str | None = None, line: int | None = None, key: str | None = None
    ) -> None:
        """Record one problem."""
        self.items.append(Problem(message, file=file, line=line, key=key))

    def extend(self, error: PixelpipeError) -> None:
        """Record the problems of an error."""
        self.items.extend(error.problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        """Raise every recorded problem as one error.

        Raises:
            PixelpipeError: When any problem was recorded.
        """
        if not self.items:
            return
        shown = self.items[: self.limit]
        if len(self.items) > self.limit:
            shown.append(Problem(f"... and {len(self.items) - self.limit} more problems"))
        raise PixelpipeError(shown)


def split_name(sample: Sample) -> str:
    """The split a sample is exported under: its own, else :data:`UNASSIGNED`."""
    return sample.split or UNASSIGNED


SPLIT_ORDER = ("train", "val", "test")


def split_order(names: Iterable[str]) -> list[str]:
    """Each split name once, as exports list them: train, val, test, then by name."""
    found = set(names)
    return [s for s in SPLIT_ORDER if s in found] + sorted(found - set(SPLIT_ORDER))


def canonical_split(name: str | None) -> str | None:
    """A split name as pixelpipe writes it: ``valid``/``validation`` become ``val``.

    A year suffix is dropped (``train2017`` is ``train``); other names are kept.
    """
    if not name:
        return None
    match = _SPLIT.match(name)
    if not match:
        return name
    base = match.group(1).lower()
    return _SPLIT_ALIASES.get(base, base)


def split_like(name: str) -> bool:
    """True when ``name`` names a split (``train``, ``val2017``, ``valid``...)."""
    return bool(_SPLIT.match(name))


def has_extension(name: str, extensions: Iterable[str]) -> bool:
    """True when ``name`` ends with one of ``extensions`` (case-insensitive)."""
    lower = name.lower()
    return any(lower.endswith(e.lower()) for e in extensions)


def number(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` (``540`` for 540.0).

    Never in exponent form (``0.00001``, not ``1e-05``): Datumaro's YOLO reader, for one,
    drops a whole label file holding an exponent.
    """
    if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return str(int(value))
    if not math.isfinite(value):
        return repr(float(value))
    return str(np.format_float_positional(float(value), trim="-"))


FLAT = "__"
"""What replaces each ``/`` of a sample id in the file names of flat exports."""


def flat_name(sample_id: str) -> str:
    """The file name a sample has in an export with one folder per split (YOLO, VOC).

    ``unlabelled/retina.jpg`` is ``unlabelled__retina.jpg``: supervision lists only the
    files right in an images folder, and Datumaro's YOLO import takes a subfolder for a
    subset, so a sample id's folders are folded into its name. Two ids that fold to one
    name are refused by the writers.
    """
    return sample_id.replace("/", FLAT)


def parse_number(text: str | None) -> float | None:
    """A finite float from text, or ``None``."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def to_pixels(annotations: list[Annotation], width: int, height: int) -> list[Annotation]:
    """Scale normalized annotations (fractions of the image size) to pixels."""
    out = []
    for ann in annotations:
        x, y, w, h = ann.bbox
        polygons = (
            [[v * (width if i % 2 == 0 else height) for i, v in enumerate(p)] for p in ann.polygons]
            if ann.polygons
            else None
        )
        box = (x * width, y * height, w * width, h * height)
        out.append(
            Annotation(
                category_id=ann.category_id,
                bbox=box,
                polygons=polygons,
                rle=ann.rle,
                iscrowd=ann.iscrowd,
                area=None,
                score=ann.score,
                annotator=ann.annotator,
                attributes=dict(ann.attributes),
            )
        )
    return out


def writable(sample_id: str, index: int, annotation: Annotation, problems: Problems) -> bool:
    """True when an annotation's numbers can be written; else records why, naming the sample.

    Box, polygon and score must be finite numbers; a polygon part needs 3 points or more.
    """
    key = f"annotations[{index}]"
    values = [*annotation.bbox, *(v for p in annotation.polygons or [] for v in p)]
    if annotation.score is not None:
        values.append(annotation.score)
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        problems.add(
            "its box, polygon or score holds a value that is not a finite number",
            sample_id,
            None,
            key,
        )
        return False
    for part, points in enumerate(annotation.polygons or []):
        if len(points) % 2 or len(points) < 6:
            problems.add(
                f"polygon part {part} needs at least 3 x, y pairs, got {len(points)} numbers",
                sample_id,
                None,
                key,
            )
            return False
    return True


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` beside ``path``, then rename it into place (old file or new, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def common_folder(paths: Iterable[str]) -> str:
    """The deepest folder holding every path (``""`` for the tree's root)."""
    folders = [posixpath.dirname(p).split("/") if posixpath.dirname(p) else [] for p in paths]
    if not folders:
        return ""
    common = folders[0]
    for parts in folders[1:]:
        size = 0
        while size < min(len(common), len(parts)) and common[size] == parts[size]:
            size += 1
        common = common[:size]
    return "/".join(common)


def relative_to(path: str, folder: str) -> str:
    """``path`` relative to ``folder`` (both tree paths, ``folder`` an ancestor or ``""``)."""
    return path[len(folder) + 1 :] if folder else path


class ImageFinder:
    """Maps an image path written in a label file to a file of the tree.

    A label file exported from an annotation tool names its images as the tool saw them
    (``images/photo.jpg`` after an upload, a bucket key...). :meth:`resolve` looks for the
    exact path, else the one tree file ending with ``/<path>``, else the one file with the
    same name.

    Args:
        files: The tree's image files (relative posix paths).
    """

    def __init__(self, files: Iterable[str]) -> None:
        self.files = set(files)
        self.by_name: dict[str, list[str]] = {}
        for rel in sorted(self.files):
            self.by_name.setdefault(posixpath.basename(rel), []).append(rel)

    def __bool__(self) -> bool:
        return bool(self.files)

    def resolve(self, path: str) -> tuple[str | None, list[str]]:
        """The tree file ``path`` names, and the candidates when several fit.

        Returns:
            ``(file, [])`` when one file fits, ``(None, candidates)`` when several do (sorted)
            and ``(None, [])`` when none does.
        """
        if path in self.files:
            return path, []
        same = self.by_name.get(posixpath.basename(path), [])
        ending = [rel for rel in same if rel.endswith(f"/{path}")]
        if len(ending) == 1:
            return ending[0], []
        if ending:
            return None, ending
        if len(same) == 1:
            return same[0], []
        return None, list(same)


def unlisted(
    tree_files: Iterable[str],
    image_dirs: Iterable[str],
    listed: Iterable[str],
    extensions: Sequence[str],
    detail: str,
) -> list[Removal]:
    """``unlisted`` removals for the images below ``image_dirs`` that no label file lists.

    Args:
        tree_files: The tree's files.
        image_dirs: Folders (tree paths, ``""`` for the root) whose images a label file
            should list.
        listed: The images the label files list.
        extensions: File endings that are images.
        detail: The sentence each removal carries.

    Returns:
        One removal per such image, sorted by path.
    """
    seen = set(listed)
    prefixes = [f"{folder}/" if folder else "" for folder in dict.fromkeys(image_dirs)]
    found = []
    for rel in tree_files:
        if rel in seen or not has_extension(rel, extensions):
            continue
        if any(rel.startswith(prefix) for prefix in prefixes):
            seen.add(rel)
            found.append(Removal(rel, "unlisted", detail, rel))
    return sorted(found, key=lambda r: r.id)


def merge_categories(found: Iterable[tuple[Category, str]], problems: Problems) -> list[Category]:
    """One class map from several files; the same id with two names is a problem.

    Args:
        found: Each category with the file that declared it.
        problems: Where conflicts are recorded.
    """
    by_id: dict[int, tuple[Category, str]] = {}
    for category, file in found:
        known = by_id.get(category.id)
        if known is None:
            by_id[category.id] = (category, file)
        elif known[0].name != category.name:
            problems.add(
                f"category id {category.id} is '{category.name}' here but '{known[0].name}' "
                f"in {known[1]}",
                file=file,
                key="categories",
            )
    return [c for c, _ in sorted(by_id.values(), key=lambda v: v[0].id)]


def id_map(categories: Sequence[Category], policy: IdPolicy, fmt: str) -> dict[int, int]:
    """Map class-map ids to the ids a format export writes.

    ``preserve`` keeps ids; ``zero_based``/``one_based`` number the categories 0..n-1 or
    1..n in id order; ``auto`` is ``zero_based`` for YOLO (whose class indices must be
    0..n-1) and, for COCO, preserves ids unless one of them is 0 (a class map numbered by a
    reader of a format without ids: VOC, YOLO, image folders, CVAT...), then ``one_based``:
    Datumaro, Detectron2 and torchvision take category 0 for the background.

    Raises:
        PixelpipeError: When the policy cannot hold for the format (YOLO with ids that
            are not 0..n-1 under ``preserve``, or ``one_based``).
    """
    ordered = sorted(categories, key=lambda c: c.id)
    if policy == "auto":
        if fmt == "yolo":
            policy = "zero_based"
        else:
            policy = "one_based" if any(c.id == 0 for c in ordered) else "preserve"
    if policy == "preserve":
        ids = [c.id for c in ordered]
        if fmt == "yolo" and ids != list(range(len(ids))):
            raise PixelpipeError(
                f"YOLO class indices must be 0..{len(ids) - 1}, but the class map's ids are "
                f"{_short(ids)}; use the category id policy `zero_based` (or `auto`)"
            )
        return {c.id: c.id for c in ordered}
    if fmt == "yolo" and policy == "one_based":
        raise PixelpipeError(
            "YOLO class indices start at 0; use the category id policy `zero_based` (or `auto`)"
        )
    start = 0 if policy == "zero_based" else 1
    return {c.id: index for index, c in enumerate(ordered, start=start)}


def _short(ids: Sequence[int]) -> str:
    text = ", ".join(str(i) for i in ids[:8])
    return f"[{text}{', ...' if len(ids) > 8 else ''}]"


def id_folder(labels: LabelSet, extensions: Sequence[str]) -> str:
    """The folder sample ids are relative to: the deepest one holding every image.

    Images listed by the labels and images reported as removed both count, so an id
    never needs ``..``. For a COCO file and its ``images/`` folder, the ids are the
    ``file_name`` values.
    """
    paths = [item.image for item in labels.items]
    paths += [r.path for r in labels.removed if r.path and has_extension(r.path, extensions)]
    return common_folder(paths)


def sample_id(path: str, folder: str) -> str:
    """The sample id of the image at tree path ``path``."""
    return relative_to(path, folder) if not folder or path.startswith(f"{folder}/") else path


def removal_id(removal: Removal, folder: str, extensions: Sequence[str]) -> str:
    """The id a removal gets: a sample id for an image, else its own id."""
    if removal.path and has_extension(removal.path, extensions):
        return sample_id(removal.path, folder)
    return removal.id
