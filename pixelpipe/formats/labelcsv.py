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

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import Item, LabelSet, Problems, ReadOptions, Removal
from pixelpipe.formats.imagefolder import image_label
from pixelpipe.formats.named import NamedReader, label_files
from pixelpipe.sources import Tree, safe_relative

NAME = "csv"
ITEM_COLUMNS = ("item", "image")


def discover(tree: Tree) -> list[str]:
    """The CSV files at the root of a tree."""
    return [f for f in tree.files if "/" not in f and f.lower().endswith(".csv")]


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


class _Reader(NamedReader):
    """The state of one read, and the rows already seen."""

    def __init__(self, tree: Tree, options: ReadOptions) -> None:
        super().__init__(tree, options)
        self.seen: set[tuple[str, str, str]] = set()
        self.duplicates = 0

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
            self.pending.append((annotation, label, (shown, line, None)))


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
    for rel in label_files(
        tree, options, "CSV file", ".csv", discover, "no CSV file found at the root"
    ):
        reader.file(rel)
    return reader.finish(
        NAME, "image file is in no CSV row", {"csv_duplicate_rows": reader.duplicates}
    )
