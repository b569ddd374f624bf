"""Augmentation recipes: albumentations' own YAML serialization, checked and completed.

A recipe is what ``A.save(transform, path, data_format="yaml")`` writes (or what
``A.to_dict`` prints, pasted into a file)::

    __version__: 2.0.8
    transform:
      __class_fullname__: Compose
      transforms:
      - __class_fullname__: HorizontalFlip
        p: 0.5

The stage owns what depends on the dataset, so it overwrites those keys of the top-level
``Compose``: ``bbox_params`` (COCO boxes, the stage's label fields, ``min_visibility``
and the minimum box size from params), ``keypoint_params`` (none), ``seed`` (set per
copy) and ``save_applied_params`` (on: the replay data). A recipe whose top level is not
a ``Compose`` is wrapped in one. Every problem is reported with the file, line and key
path: unknown transforms (with a did-you-mean), arguments albumentations would silently
ignore, invalid values.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelpipe import KeyPath, Located, PixelpipeError, Problem, did_you_mean, load_file

if TYPE_CHECKING:
    import albumentations as A  # type: ignore[import-untyped]

LABEL_FIELDS = ("category_id", "index")
"""Label fields the stage passes with the boxes: the class and the annotation's index."""
_COMPOSE = "Compose"
_OWNED = ("bbox_params", "keypoint_params", "seed", "save_applied_params")


def albumentations() -> Any:
    """Import albumentations with its update check switched off (no network at run time)."""
    os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
    import albumentations as A

    return A


@dataclass(frozen=True)
class BoxRules:
    """What the stage sets in ``bbox_params``.

    Attributes:
        min_visibility: Boxes keeping less of their area inside the image are dropped.
        min_size: Boxes narrower or lower than this (pixels) are dropped.
    """

    min_visibility: float
    min_size: float

    def bbox_params(self) -> dict[str, Any]:
        """The ``bbox_params`` mapping of the top-level ``Compose``."""
        return {
            "format": "coco",
            "label_fields": list(LABEL_FIELDS),
            "min_area": 0.0,
            "min_visibility": self.min_visibility,
            "min_width": self.min_size,
            "min_height": self.min_size,
            "check_each_transform": True,
            "clip": True,
            "filter_invalid_bboxes": True,
            "max_accept_ratio": None,
        }


@dataclass(frozen=True)
class Recipe:
    """A checked recipe, ready to send to workers.

    Attributes:
        text: The completed ``{"__version__", "transform"}`` document as canonical JSON.
        digest: ``sha256:<hex>`` of ``text``: names the recipe in each copy's replay data.
        transforms: Class names of the transforms, outermost first (for the report).
    """

    text: str
    digest: str
    transforms: tuple[str, ...]


def _nodes(node: Any, path: KeyPath) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    """Every transform mapping in a recipe tree with its key path, parents first."""
    if not isinstance(node, dict):
        return
    yield path, node
    children = node.get("transforms")
    if isinstance(children, list):
        for index, child in enumerate(children):
            yield from _nodes(child, (*path, "transforms", index))


def _check_node(doc: Located, path: KeyPath, node: dict[str, Any]) -> list[Problem]:
    """Problems of one transform mapping (its children are checked on their own)."""
    A = albumentations()
    from albumentations.core.serialization import (  # type: ignore[import-untyped]
        SERIALIZABLE_REGISTRY,
        shorten_class_name,
    )

    name = node.get("__class_fullname__")
    if not isinstance(name, str):
        return [doc.problem(path, "a transform needs `__class_fullname__` (as A.to_dict writes)")]
    short = shorten_class_name(name)
    if short not in SERIALIZABLE_REGISTRY:
        return [
            doc.problem(
                (*path, "__class_fullname__"),
                f"unknown albumentations transform '{name}'"
                + did_you_mean(short, SERIALIZABLE_REGISTRY),
            )
        ]
    if "transforms" in node:
        if not isinstance(node["transforms"], list):
            return [doc.problem((*path, "transforms"), "`transforms` must be a list")]
        return []  # a composition: its children are checked one by one
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            A.from_dict({"transform": {"p": 1.0, **node}})
        except Exception as exc:  # albumentations reports bad values in many ways
            message = " ".join(str(exc).split())
            return [doc.problem(path, f"{short}: {message[:400]}")]
    return [
        doc.problem(path, f"{short}: {w.message} (albumentations would ignore it)")
        for w in caught
        if "are not valid for transform" in str(w.message)
    ]


def load_recipe(path: Path, shown: str, rules: BoxRules) -> Recipe:
    """Read, check and complete a recipe file.

    Args:
        path: The recipe file.
        shown: Its name in messages (relative to the project).
        rules: The box parameters the stage sets.

    Raises:
        PixelpipeError: Every problem found, each with the file, line and key path.
    """
    doc = load_file(path, shown)
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("transform"), dict):
        raise PixelpipeError(
            Problem(
                "not an albumentations recipe: expected a mapping with `transform:` "
                '(write one with A.save(transform, path, data_format="yaml"))',
                file=shown,
            )
        )
    problems: list[Problem] = []
    for node_path, node in _nodes(data["transform"], ("transform",)):
        problems += _check_node(doc, node_path, node)
    if problems:
        raise PixelpipeError(problems)
    top = copy.deepcopy(data["transform"])
    if top.get("__class_fullname__") != _COMPOSE:
        top = {"__class_fullname__": _COMPOSE, "p": 1.0, "transforms": [top]}
    for key in _OWNED:
        top.pop(key, None)
    top["bbox_params"] = rules.bbox_params()
    top["keypoint_params"] = None
    top["save_applied_params"] = True
    document = {"__version__": str(data.get("__version__", "")), "transform": top}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build(text)
    except Exception as exc:  # e.g. a transform that cannot move boxes
        message = " ".join(str(exc).split())
        raise PixelpipeError(
            Problem(f"recipe does not build: {message[:400]}", file=shown)
        ) from None
    names = tuple(str(node.get("__class_fullname__")) for _, node in _nodes(top, ("transform",)))
    return Recipe(text, "sha256:" + hashlib.sha256(text.encode()).hexdigest(), names)


@functools.lru_cache(maxsize=4)
def build(text: str) -> A.Compose:
    """The ``Compose`` of a completed recipe (cached per process: workers build it once)."""
    A = albumentations()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transform = A.from_dict(json.loads(text))
    if not isinstance(transform, A.Compose):  # load_recipe always wraps; never for users
        raise TypeError(f"recipe built a {type(transform).__name__}, not a Compose")
    return transform
