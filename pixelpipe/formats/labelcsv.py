"""Image-level class labels from CSV: one row per image, annotator and label.

The header names the columns (case and surrounding spaces ignored): ``item`` (or
``image``), the image's path; ``annotator``, who gave the label; ``label``, a class name.
Other columns are ignored. Every row names its annotator, so a CSV file, like a Label
Studio export, names the annotator of every label itself. A row with a blank label
records that the annotator saw the image and gave no label. An image with several rows
gets one whole-image label per row (multi-label); a repeated row is counted once. Class
ids are the order of the ``classes`` option, else of the sorted names, from 0. Paths are
matched to the tree's images as an :class:`~pixelpipe.formats.base.ImageFinder` does
(exact, path suffix, unique name).
"""

from __future__ import annotations

import csv
import io
import posixpath

from pixelpipe.dataset import Annotation, Category
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import (
    ImageFinder,
    Item,
    LabelSet,
    Problems,
    ReadOptions,
    Removal,
    has_extension,
    unlisted,
)
from pixelpipe.formats.imagefolder import image_label
from pixelpipe.sources import Tree, safe_relative

NAME = "csv"
ITEM_COLUMNS = ("item", "image")


def discover(tree: Tree) -> list[str]:
    """The CSV files at the root of a tree."""
    return [f for f in tree.files if "/" not in f and f.lower().endswith(".csv")]


def _files(tree: Tree, options: ReadOptions) -> list[str]:
    if options.annotations:
        files = list(options.annotations)
        problems = Problems()
        for name in files:
            if not tree.exists(name):
                problems.add("CSV file not found", file=tree.shown(name), key="annotations")
        problems.raise_if_any()
        return files
    if tree.hint and tree.hint.lower().endswith(".csv"):
        return [tree.hint]
    files = discover(tree)
    if not files:
        raise PixelpipeError(f"{tree.display}: no CSV file found at the root")
    return files


def _columns(header: list[str], shown: str, line: int, problems: Problems) -> tuple[int, int, int]:
    """Indices of the item, label and annotator columns (-1 for a missing one)."""
    names = [h.strip().lower() for h in header]
    item = next((names.index(c) for c in ITEM_COLUMNS if c in names), -1)
    label = names.index("label") if "label" in names else -1
    annotator = names.index("annotator") if "annotator" in names else -1
    missing = [c for c, i in (("item", item), ("annotator", annotator), ("label", label)) if i < 0]
    if missing:
        problems.add(
            f"missing column {' and '.join(repr(m) for m in missing)} (the header is "
            f"{', '.join(repr(h) for h in header)}; it needs item, annotator and label)",
            file=shown,
            line=line,
        )
    return item, label, annotator


class _Reader:
    """The state of one read: items by path, labels waiting for ids, problems."""

    def __init__(self, tree: Tree, options: ReadOptions) -> None:
        self.tree = tree
        self.problems = Problems()
        self.finder = ImageFinder(f for f in tree.files if has_extension(f, options.extensions))
        self.items: dict[str, Item] = {}
        self.removed: dict[str, Removal] = {}
        self.pending: list[tuple[Annotation, str, str, int]] = []
        self.seen: set[tuple[str, str, str]] = set()
        self.duplicates = 0
        self.ambiguous: list[str] = []

    def file(self, rel: str) -> None:
        shown = self.tree.shown(rel)
        try:
            text = self.tree.read_text(rel)
        except PixelpipeError as exc:
            self.problems.extend(exc)
            return
        rows = csv.reader(io.StringIO(text, newline=""), strict=True)
        columns: tuple[int, int, int] | None = None
        try:
            for row in rows:
                if not any(cell.strip() for cell in row):
                    continue
                if columns is None:
                    columns = _columns(row, shown, rows.line_num, self.problems)
                    if min(columns) < 0:
                        return
                    continue
                self.row(row, columns, shown, rows.line_num)
        except csv.Error as exc:
            self.problems.add(f"invalid CSV: {exc}", file=shown, line=rows.line_num)
            return
        if columns is None:
            self.problems.add("the file is empty (it needs a header: item,annotator,label)", shown)

    def row(self, row: list[str], columns: tuple[int, int, int], shown: str, line: int) -> None:
        def cell(index: int) -> str:
            return row[index].strip() if 0 <= index < len(row) else ""

        written, label, annotator = (cell(index) for index in columns)
        if not written or not annotator:
            empty = "item" if not written else "annotator"
            self.problems.add(f"the {empty} is empty", file=shown, line=line)
            return
        rel = safe_relative(written)
        if rel is None:
            detail = f"{shown}:{line}: the path leads outside the source"
            self.removed.setdefault(written, Removal(written, "unsafe_path", detail))
            return
        path = self.locate(rel)
        if (path, annotator, label) in self.seen:
            self.duplicates += 1
            return
        self.seen.add((path, annotator, label))
        item = self.items.get(path)
        if item is None:
            item = self.items[path] = Item(image=path, normalized=True, origin=f"{shown}:{line}")
        if annotator not in item.annotators:
            item.annotators.append(annotator)
        if label:
            annotation = image_label(-1)
            annotation.annotator = annotator
            item.annotations.append(annotation)
            self.pending.append((annotation, label, shown, line))

    def locate(self, rel: str) -> str:
        if not self.finder:
            return rel
        hit, candidates = self.finder.resolve(rel)
        if hit is not None:
            return hit
        if candidates:
            more = ", ..." if len(candidates) > 3 else ""
            self.ambiguous.append(f"{rel} ({', '.join(candidates[:3])}{more})")
        return rel


def read(tree: Tree, options: ReadOptions | None = None) -> LabelSet:
    """Read image-level labels from CSV files.

    Args:
        tree: The source: a CSV file (its folder is the tree) or a folder.
        options: ``annotations`` (files to read; default: the named file, else the CSV
            files at the root), ``classes`` (names in id order; default: the sorted names
            used), ``extensions``.

    Returns:
        One normalized item per image with a whole-image label per row (``annotator``
        set), the annotators who saw it in ``annotators``; ``unsafe_path`` removals for
        paths with ``..`` and ``unlisted`` for images of the listed images' folders that
        no row names.

    Raises:
        PixelpipeError: Listing every problem with its file and line: a missing column,
            an empty item, invalid CSV, a class not in ``classes``.
    """
    options = options or ReadOptions()
    reader = _Reader(tree, options)
    for rel in _files(tree, options):
        reader.file(rel)
    classes = list(options.classes) or sorted({name for _, name, _, _ in reader.pending})
    ids = {name: index for index, name in enumerate(classes)}
    for annotation, name, shown, line in reader.pending:
        if name in ids:
            annotation.category_id = ids[name]
        else:
            reader.problems.add(f"class '{name}' is not in `classes`", file=shown, line=line)
    reader.problems.raise_if_any()
    warnings = []
    if reader.ambiguous:
        more = f" and {len(reader.ambiguous) - 5} more" if len(reader.ambiguous) > 5 else ""
        listing = "; ".join(reader.ambiguous[:5])
        warnings.append(f"image paths that fit several files, kept as written: {listing}{more}")
    image_dirs = sorted({posixpath.dirname(p) for p in reader.items if p in reader.finder.files})
    removed = dict(reader.removed)
    for removal in unlisted(
        tree.files, image_dirs, [*reader.items], options.extensions, "image file is in no CSV row"
    ):
        removed.setdefault(removal.id, removal)
    return LabelSet(
        format=NAME,
        categories=[Category(index, name) for index, name in enumerate(classes)],
        items=[reader.items[k] for k in sorted(reader.items)],
        removed=[removed[k] for k in sorted(removed)],
        image_dirs=image_dirs,
        lists_images=True,
        notes={"csv_duplicate_rows": reader.duplicates} if reader.duplicates else {},
        warnings=warnings,
    )
