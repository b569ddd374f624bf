"""What the review tools' readers share: the files to read, label sets of named classes.

Label Studio exports and label CSVs name classes, not ids, and name images by paths that
may not be the tree's (an upload URL, a path from another machine). :class:`NamedReader`
keeps what such a reader collects (items by path, labels waiting for their class id,
removals, images that fit several files) and :meth:`NamedReader.finish` numbers the classes
(``classes`` in that order, else sorted names, from 0) and builds the label set.
:func:`label_files` is the choice of files every such reader (and CVAT's) makes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

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
from pixelpipe.sources import Tree

Where = tuple[str, int | None, str | None]
"""Where a label was read: file, line, key path (for the problem a bad class gives)."""
SHOWN = 5


def label_files(
    tree: Tree,
    options: ReadOptions,
    what: str,
    suffix: str,
    discover: Callable[[Tree], list[str]],
    none_found: str,
) -> list[str]:
    """The files to read: those named, the file the tree was opened on, or those found.

    ``options.annotations`` names files; else a tree opened on a file reads that file; else
    ``discover`` finds them.

    Args:
        tree: The source.
        options: The read options.
        what: The kind of file, for messages (``CVAT file``).
        suffix: The ending of such a file (``.xml``).
        discover: Finds the files when none is named.
        none_found: The message when there is none, after the tree's name.

    Raises:
        PixelpipeError: When a named file is missing (every one listed), or none is found.
    """
    if options.annotations:
        files = list(options.annotations)
        problems = Problems()
        for name in files:
            if not tree.exists(name):
                problems.add(f"{what} not found", file=tree.shown(name), key="annotations")
        problems.raise_if_any()
        return files
    if tree.hint and tree.hint.lower().endswith(suffix):
        return [tree.hint]
    files = discover(tree)
    if not files:
        raise PixelpipeError(f"{tree.display}: {none_found}")
    return files


class NamedReader:
    """The state of one read of files that name classes and images by path.

    Args:
        tree: The source.
        options: The read options.
    """

    def __init__(self, tree: Tree, options: ReadOptions) -> None:
        self.tree = tree
        self.options = options
        self.problems = Problems()
        self.finder = ImageFinder(f for f in tree.files if has_extension(f, options.extensions))
        self.items: dict[str, Item] = {}
        self.removed: dict[str, Removal] = {}
        self.pending: list[tuple[Annotation, str, Where]] = []
        self.ambiguous: list[str] = []

    def locate(self, path: str, *others: str | None) -> str:
        """The tree file ``path`` names (else one of ``others``), or ``path`` as written.

        A path that fits several files is kept as written and reported once.
        """
        if not self.finder:
            return path
        hit, candidates = self.finder.resolve(path)
        for other in others:
            if hit is not None or candidates:
                break
            if other is not None and other != path:
                hit, candidates = self.finder.resolve(other)
        if hit is not None:
            return hit
        if candidates:
            more = ", ..." if len(candidates) > 3 else ""
            self.ambiguous.append(f"{path} ({', '.join(candidates[:3])}{more})")
        return path

    def finish(
        self,
        fmt: str,
        unlisted_detail: str,
        notes: dict[str, int] | None = None,
        warnings: list[str] | None = None,
    ) -> LabelSet:
        """Number the classes and build the label set.

        Args:
            fmt: The format's name.
            unlisted_detail: Why an image file no label names is removed.
            notes: Counts worth reporting.
            warnings: Sentences worth logging.

        Raises:
            PixelpipeError: With every problem found, a class not in ``classes`` among them.
        """
        names = list(self.options.classes) or sorted({name for _, name, _ in self.pending})
        ids = {name: index for index, name in enumerate(names)}
        for annotation, name, (file, line, key) in self.pending:
            if name in ids:
                annotation.category_id = ids[name]
            else:
                self.problems.add(f"class '{name}' is not in `classes`", file, line, key)
        self.problems.raise_if_any()
        said = list(warnings or [])
        if self.ambiguous:
            more = len(self.ambiguous) - SHOWN
            said.append(
                "image paths that fit several files, kept as written: "
                f"{'; '.join(self.ambiguous[:SHOWN])}{f' and {more} more' if more > 0 else ''}"
            )
        image_dirs = sorted({posixpath.dirname(p) for p in self.items if p in self.finder.files})
        removed = dict(self.removed)
        listed = [*self.items, *removed]
        for removal in unlisted(
            self.tree.files, image_dirs, listed, self.options.extensions, unlisted_detail
        ):
            removed.setdefault(removal.id, removal)
        return LabelSet(
            format=fmt,
            categories=[Category(index, name) for index, name in enumerate(names)],
            items=[self.items[k] for k in sorted(self.items)],
            removed=[removed[k] for k in sorted(removed)],
            image_dirs=image_dirs,
            lists_images=True,
            notes={k: v for k, v in sorted((notes or {}).items()) if v},
            warnings=said,
        )
