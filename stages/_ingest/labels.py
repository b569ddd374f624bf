"""Ingest's labels: one reading of the source, or several annotators' files and models' predictions.

Each ``annotations`` entry given as ``{path, annotator, format}`` is read on its own and
tagged with its annotator (formats that name their annotators, Label Studio and the CSV,
keep theirs); each ``predictions`` entry is read, checked (a score in [0, 1], images and
classes the dataset has) and named after its model; all of them are merged by class name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pixelpipe import PixelpipeError
from pixelpipe.formats import annotators, coco, detect, predictions
from pixelpipe.formats.base import LabelSet, ReadOptions, has_extension
from pixelpipe.sources import Tree


class LabelFile(BaseModel):
    """One annotator's label file (or a file that names its annotators)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    path: str
    """The file, relative to ``source``."""
    annotator: str | None = None
    """Who made its labels; default: the file's stem, unless the format names every label's
    annotator itself (Label Studio's ``completed_by``, the CSV's ``annotator`` column)."""
    format: Literal["auto", "coco", "voc", "yolo", "labelstudio", "cvat", "csv"] = "auto"
    """Its format; ``auto`` tells by the file's name and first bytes."""

    @field_validator("annotator")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value.strip() != value):
            raise ValueError("a non-empty name without spaces around it")
        return value


class PredictionFile(BaseModel):
    """A model's predictions of the source's images."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    path: str
    """The file, relative to ``source``: a COCO results file, a YOLO ``data.yaml`` whose
    label files have a sixth column (the confidence), or a Label Studio export's
    ``predictions``."""
    model: str = Field(min_length=1)
    """The model's name: the ``annotator`` of every prediction."""
    format: Literal["auto", "coco_results", "yolo", "labelstudio"] = "auto"
    """Its format; ``auto`` tells by the file's name and first bytes."""
    images: str = ""
    """COCO results: the COCO file listing the images its ids name; empty: the source's
    one COCO file."""


class Params(Protocol):
    """The ingest params this module reads (``stages.ingest.Params`` has them)."""

    @property
    def format(self) -> str: ...
    @property
    def annotations(self) -> Sequence[str | LabelFile]: ...
    @property
    def predictions(self) -> Sequence[PredictionFile]: ...
    @property
    def images(self) -> str: ...
    @property
    def classes(self) -> Sequence[str]: ...
    @property
    def pixel_convention(self) -> Literal["corners", "inclusive"]: ...


def read_labels(tree: Tree, params: Params, extensions: tuple[str, ...]) -> LabelSet:
    """The source's labels: one reading, or one per annotator's file merged by class name."""

    def options(files: list[str]) -> ReadOptions:
        return ReadOptions(
            annotations=files,
            images=params.images,
            classes=params.classes,
            pixel_convention=params.pixel_convention,
            extensions=extensions,
        )

    entries = [e if isinstance(e, LabelFile) else LabelFile(path=e) for e in params.annotations]
    if not any(isinstance(e, LabelFile) for e in params.annotations):
        labels = detect.read(tree, params.format, options([e.path for e in entries]))
        return _with_predictions(tree, params, labels, options) if params.predictions else labels
    parts = []
    for entry in entries:
        fmt: str = entry.format if entry.format != "auto" else params.format
        if fmt == "auto":
            fmt = detect.file_format(tree, entry.path)
        labels = detect.read(tree, fmt, options([entry.path]))
        if labels.format in annotators.NAMES_ANNOTATORS:
            if entry.annotator is not None:
                raise PixelpipeError(
                    f"{entry.path}: a {labels.format} file names the annotator of every label "
                    "itself; remove `annotator`"
                )
        else:
            labels = annotators.tag(labels, entry.annotator or PurePosixPath(entry.path).stem)
        parts.append(labels)
    merged = annotators.merge(parts)
    return _with_predictions(tree, params, merged, options) if params.predictions else merged


def _with_predictions(
    tree: Tree, params: Params, labels: LabelSet, options: Callable[[list[str]], ReadOptions]
) -> LabelSet:
    """The labels and every model's predictions of the same images, classes matched by name."""
    images = {item.image for item in labels.items} | {
        f for f in tree.files if has_extension(f, options([]).extensions)
    }
    classes = {c.name for c in labels.categories} if labels.categories else None
    parts = [labels]
    for entry in params.predictions:
        fmt: str = entry.format
        if fmt == "auto" and predictions.looks_like(tree, entry.path):
            fmt = "coco_results"
        elif fmt == "auto":
            fmt = detect.file_format(tree, entry.path)
        if fmt == "coco_results":
            reference = entry.images or _one_coco_file(tree, params)
            found = predictions.read_coco_results(tree, entry.path, reference, options([]))
        else:
            read = options([entry.path])
            found = detect.read(tree, fmt, dataclasses.replace(read, predictions=True))
        parts.append(
            predictions.as_predictions(found, entry.model, tree.shown(entry.path), images, classes)
        )
    return annotators.merge(parts)


def _one_coco_file(tree: Tree, params: Params) -> str:
    """The source's COCO file, which a COCO results file's image ids refer to."""
    named = [a if isinstance(a, str) else a.path for a in params.annotations]
    found = named or coco.discover(tree)
    if len(found) != 1:
        raise PixelpipeError(
            "a COCO results file names images by the ids of a COCO file: give it as the "
            f"prediction's `images` (the source has {len(found)}: {', '.join(found[:3])})"
        )
    return found[0]
