"""Writing COCO: instances documents and the ``images/`` + ``annotations`` layout.

:func:`dump` builds a document (image ids 1..N, annotation ids 1..M, category ids as in
the class map unless mapped), :func:`write_json` writes it compactly as UTF-8, and
:func:`write` writes ``images/<id>``, ``annotations.json`` and one
``annotations/<split>.json`` per split.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelpipe.dataset import Category, Sample


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
    cats = sorted(categories, key=lambda c: c.id)
    mapping = dict(ids) if ids is not None else {c.id: c.id for c in cats}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, sample in enumerate(samples, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": file_name(sample),
                "width": sample.width,
                "height": sample.height,
            }
        )
        for ann in sample.annotations:
            entry: dict[str, Any] = {
                "id": len(annotations) + 1,
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
            annotations.append(entry)
    return {
        "info": {"description": "exported by pixelpipe"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": mapping[c.id], "name": c.name, "supercategory": c.parent or ""} for c in cats
        ],
    }


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write a COCO document compactly, as UTF-8, with a final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8"
    )


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    copy_image: Callable[[Sample, Path], bool],
    ids: Mapping[int, int] | None = None,
) -> dict[str, int]:
    """Write a COCO layout into ``out``.

    ``images/<id>``, ``annotations.json`` with every sample and, when samples have
    splits, ``annotations/<split>.json`` per split. ``file_name`` is ``images/<id>``,
    relative to ``out``. Every file holds the whole class map.

    Args:
        samples: The samples, in id order.
        categories: The class map.
        out: The folder to write.
        copy_image: Copies a sample's image to a path; returns False when there is none.
        ids: Class-map id to written id.

    Returns:
        Counts: ``images``, ``boxes``.
    """

    def file_name(sample: Sample) -> str:
        return posixpath.join("images", sample.id)

    images = 0
    for sample in samples:
        if copy_image(sample, out / file_name(sample)):
            images += 1
    write_json(out / "annotations.json", dump(samples, categories, file_name, ids))
    splits: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.split:
            splits.setdefault(sample.split, []).append(sample)
    for split, members in sorted(splits.items()):
        write_json(out / "annotations" / f"{split}.json", dump(members, categories, file_name, ids))
    return {"images": images, "boxes": sum(len(s.annotations) for s in samples)}
