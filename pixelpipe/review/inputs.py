"""Several annotators' label files (or a dataset directory) read into one :class:`Gathered`.

Each input is a label file in any format pixelpipe reads (COCO, VOC, YOLO, Label Studio
JSON, CVAT for images 1.1 XML, a CSV of ``item,annotator,label``) or a dataset directory
(``data/<stage>``). A file whose format does not name annotators (COCO, CVAT, VOC...) is one
annotator, named by the file's stem; Label Studio (``completed_by``) and the CSV name their
own. Classes are matched by name across files. Images are matched by their path; when the
files spell the paths differently (a Label Studio upload path against a COCO
``file_name``) but every file's base names are unique, by base name.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path

from pixelpipe.dataset import Dataset
from pixelpipe.dataset.schema import SAMPLES_FILE
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import annotators, detect
from pixelpipe.formats.base import LabelSet
from pixelpipe.review.gather import Gathered, from_label_set, from_samples
from pixelpipe.sources import open_tree

NAMES_ANNOTATORS = frozenset({"labelstudio", "csv"})
"""Formats whose files name the annotator of every label themselves."""


def read_file(path: str, fmt: str = "auto", annotator: str | None = None) -> LabelSet:
    """One label file, its labels tagged with their annotator.

    Args:
        path: The file (or a format's folder, such as a CVAT export).
        fmt: Its format; ``auto`` detects it.
        annotator: The annotator's name; default: the file's stem, unless the format names
            annotators itself.

    Raises:
        PixelpipeError: When the file cannot be read, naming it.
    """
    if "://" not in path and not Path(path).exists():
        raise PixelpipeError(f"{path}: no such file")
    tree = open_tree(path, Path.cwd())
    labels = detect.read(tree, fmt)
    if not labels.items:
        raise PixelpipeError(f"{path}: lists no image ({labels.format})")
    if labels.format in NAMES_ANNOTATORS and annotator is None:
        return labels
    name = annotator or Path(path.rstrip("/")).stem
    return annotators.tag(labels, name)


def _check_names(paths: Sequence[str], parts: Sequence[LabelSet]) -> None:
    """Two files named alike would merge into one annotator: refuse, naming both."""
    named: dict[str, str] = {}
    for path, part in zip(paths, parts, strict=True):
        if part.format in NAMES_ANNOTATORS:
            continue
        name = Path(path.rstrip("/")).stem
        if name in named:
            raise PixelpipeError(
                f"{named[name]} and {path} both name the annotator '{name}' (by their file "
                "names); rename one"
            )
        named[name] = path


def _align(parts: list[LabelSet]) -> None:
    """Key images by base name when the files spell paths differently but names are unique."""
    keys = [{item.image for item in part.items} for part in parts]
    if len(parts) < 2 or all(k == keys[0] for k in keys):
        return
    for part_keys in keys:
        bases = [posixpath.basename(k) for k in part_keys]
        if len(set(bases)) != len(bases):
            return
    shared_full = set.intersection(*keys)
    shared_base = set.intersection(*({posixpath.basename(k) for k in ks} for ks in keys))
    if len(shared_base) <= len(shared_full):
        return
    for part in parts:
        for item in part.items:
            item.image = posixpath.basename(item.image)


def read_inputs(
    paths: Sequence[str],
    fmt: str = "auto",
    gold: str | None = None,
) -> tuple[Gathered, Gathered | None]:
    """Every input's labels, gathered per image, and the gold set's apart.

    Args:
        paths: Label files, or one dataset directory.
        fmt: The files' format (``auto`` detects each).
        gold: A label file of the gold set, of one annotator (named by the file's stem
            unless the format names it); left out of the annotators when an input has the
            same name.

    Returns:
        The annotators' labels, and the gold set's (``None`` without ``gold``).

    Raises:
        PixelpipeError: When an input cannot be read, or a dataset directory is mixed
            with label files.
    """
    datasets = [p for p in paths if (Path(p) / SAMPLES_FILE).is_file()]
    if datasets:
        if len(paths) != 1:
            raise PixelpipeError(
                f"{datasets[0]} is a dataset directory: give it alone (its manifest names the "
                "annotators), or give label files only"
            )
        if gold is not None:
            raise PixelpipeError(
                "--gold: with a dataset directory, name the gold annotator of its manifest "
                "(the agreement stage's `gold` param); a gold file needs label-file inputs"
            )
        dataset = Dataset(Path(datasets[0]))
        return from_samples(dataset.samples(), dataset.categories), None
    parts = [read_file(p, fmt) for p in paths]
    _check_names(paths, parts)
    truth = read_file(gold, fmt) if gold is not None else None
    _align([*parts, truth] if truth is not None else parts)
    gathered = from_label_set(annotators.merge(parts))
    if truth is None:
        return gathered, None
    found = from_label_set(truth)
    if len(found.annotators) != 1:
        raise PixelpipeError(
            f"{gold}: a gold set has one annotator, this file names {len(found.annotators)}"
            + (f" ({', '.join(found.annotators[:5])})" if found.annotators else "")
        )
    if found.annotators[0] in gathered.annotators:
        gathered = gathered.without(found.annotators[0])
    return gathered, found
