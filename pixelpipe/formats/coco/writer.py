"""Writing COCO: instances documents, in the layout COCO itself uses.

:func:`dump` builds a document (image ids 1..N, annotation ids 1..M, category ids as in
the class map unless mapped), :func:`write_json` writes it compactly as UTF-8, and
:func:`write` writes one ``annotations/instances_<split>.json`` and one
``images/<split>/`` folder per split, streaming the same bytes entry by entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from pixelpipe.dataset import Category, Sample
from pixelpipe.formats.base import split_name

INFO = {"description": "exported by pixelpipe"}


def _mapping(categories: Iterable[Category], ids: Mapping[int, int] | None) -> dict[int, int]:
    return dict(ids) if ids is not None else {c.id: c.id for c in categories}


def _categories(categories: Iterable[Category], mapping: Mapping[int, int]) -> list[dict[str, Any]]:
    return [
        {"id": mapping[c.id], "name": c.name, "supercategory": c.parent or ""}
        for c in sorted(categories, key=lambda c: c.id)
    ]


def _image(image_id: int, sample: Sample, file_name: str) -> dict[str, Any]:
    return {"id": image_id, "file_name": file_name, "width": sample.width, "height": sample.height}


def _annotations(
    sample: Sample, image_id: int, first_id: int, mapping: Mapping[int, int]
) -> Iterator[dict[str, Any]]:
    """The annotation entries of a sample, with ids from ``first_id``."""
    for number, ann in enumerate(sample.annotations, start=first_id):
        entry: dict[str, Any] = {
            "id": number,
            "image_id": image_id,
            "category_id": mapping.get(ann.category_id, ann.category_id),
            "bbox": list(ann.bbox),
            "area": ann.area if ann.area is not None else ann.bbox[2] * ann.bbox[3],
            "iscrowd": int(ann.iscrowd),
            "segmentation": ann.rle if ann.rle is not None else (ann.polygons or []),
        }
        if ann.score is not None:
            entry["score"] = ann.score
        attributes = dict(ann.attributes)
        if isinstance(attributes.get("keypoints"), list):
            entry["keypoints"] = attributes.pop("keypoints")
            if "num_keypoints" in attributes:
                entry["num_keypoints"] = attributes.pop("num_keypoints")
        if attributes:
            entry["attributes"] = attributes
        yield entry


def dump(
    samples: Iterable[Sample],
    categories: Iterable[Category],
    file_name: Callable[[Sample], str],
    ids: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """Build a COCO instances document.

    Image ids are 1..N in the order given, annotation ids 1..M; category ids are the
    class map's, unchanged unless ``ids`` maps them.

    Args:
        samples: The samples to export, in the order wanted.
        categories: The class map (every category is written, used or not).
        file_name: The ``file_name`` to write for a sample.
        ids: Class-map id to written id (see :func:`pixelpipe.formats.base.id_map`).
    """
    categories = list(categories)
    mapping = _mapping(categories, ids)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, sample in enumerate(samples, start=1):
        images.append(_image(image_id, sample, file_name(sample)))
        annotations.extend(_annotations(sample, image_id, len(annotations) + 1, mapping))
    return {
        "info": dict(INFO),
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": _categories(categories, mapping),
    }


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write a COCO document compactly, as UTF-8, with a final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_json(document) + "\n", encoding="utf-8")


class _Stream:
    """A COCO document written entry by entry, without holding it.

    The bytes are those :func:`write_json` writes of :func:`dump`. Samples go by twice in
    the same order: first :meth:`image` for each, then :meth:`annotations` for each.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: TextIO = path.open("w", encoding="utf-8")
        self.file.write('{"info":' + _json(INFO) + ',"licenses":[],"images":[')
        self.images = 0
        self.annotated = 0
        self.boxes = 0

    def _entry(self, entry: dict[str, Any], first: bool) -> None:
        self.file.write(("" if first else ",") + _json(entry))

    def image(self, sample: Sample, file_name: str) -> None:
        self.images += 1
        self._entry(_image(self.images, sample, file_name), self.images == 1)

    def annotations(self, sample: Sample, mapping: Mapping[int, int]) -> None:
        if not self.annotated:
            self.file.write('],"annotations":[')
        self.annotated += 1
        for entry in _annotations(sample, self.annotated, self.boxes + 1, mapping):
            self.boxes += 1
            self._entry(entry, self.boxes == 1)

    def close(self, categories: list[dict[str, Any]]) -> None:
        if not self.annotated:
            self.file.write('],"annotations":[')
        self.file.write('],"categories":' + _json(categories) + "}\n")
        self.file.close()


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    copy_image: Callable[[Sample, Path], bool],
    ids: Mapping[int, int] | None = None,
) -> dict[str, int]:
    """Write the COCO layout into ``out``, one subset per split.

    ``annotations/instances_<split>.json`` (COCO 2017's names: ``instances_val2017.json``)
    and ``images/<split>/<id>`` (where Datumaro looks for a subset's images); ``file_name``
    is the sample id, relative to ``images/<split>/``. Samples without a split are the split
    ``unassigned``. Every file holds the whole class map. The documents are written as the
    samples go by (twice), so memory does not grow with the dataset.

    Args:
        samples: The samples, in id order (iterated twice).
        categories: The class map.
        out: The folder to write.
        copy_image: Copies a sample's image to a path; returns False when there is none.
        ids: Class-map id to written id.

    Returns:
        Counts: ``images``, ``boxes``.
    """
    mapping = _mapping(categories, ids)
    splits: dict[str, _Stream] = {}
    images = 0
    try:
        for sample in samples:
            split = split_name(sample)
            if copy_image(sample, out / "images" / split / sample.id):
                images += 1
            if split not in splits:
                splits[split] = _Stream(out / "annotations" / f"instances_{split}.json")
            splits[split].image(sample, sample.id)
        for sample in samples:
            splits[split_name(sample)].annotations(sample, mapping)
    finally:
        written = _categories(categories, mapping)
        for stream in splits.values():
            stream.close(written)
    return {"images": images, "boxes": sum(s.boxes for s in splits.values())}
