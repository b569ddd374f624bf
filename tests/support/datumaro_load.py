"""Load exports with Datumaro and print what it found, as JSON: run by Datumaro's own venv.

Datumaro pins versions of Pillow, pandas and OpenCV that pixelpipe's environment does not
have, so this script runs in a separate interpreter (see ``consumers.datumaro_python``) and
imports nothing from pixelpipe or the tests.

Usage: ``python datumaro_load.py FORMAT=FOLDER [FORMAT=FOLDER ...]``, where ``FORMAT`` is a
Datumaro importer name (``coco_instances``, ``yolo``, ``voc_detection``, ``cvat``...). It
prints one JSON object: per format, either ``{"subsets": {...}}`` or ``{"error": "..."}``
(one format failing does not hide the others). Per subset: ``items``, ``media`` (items
whose media file exists), ``sized`` (items whose image size Datumaro knows), and per
annotation kind (``bbox``, ``polygon``, ``mask``, ``label``...) the count per class name.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

KINDS = {"bbox", "polygon", "mask", "label", "points", "polyline", "ellipse", "rotated_bbox"}


def _class_name(labels: Any, index: int | None) -> str:
    """The name of label ``index`` (``<none>`` for an annotation without a label)."""
    if index is None:
        return "<none>"
    return str(labels[index].name)


def _kind(annotation: Any) -> str:
    name = str(annotation.type.name)
    return "mask" if name.endswith("mask") else name


def summarize(folder: str, fmt: str) -> dict[str, Any]:
    """What Datumaro reads from ``folder`` as ``fmt``, per subset.

    Args:
        folder: The export folder.
        fmt: A Datumaro importer name.

    Returns:
        ``{"subsets": {name: {"items", "media", "sized", "<kind>": {class: count}}}}``.
    """
    dm: Any = importlib.import_module("datumaro")
    annotation_type: Any = importlib.import_module("datumaro.components.annotation")
    dataset = dm.Dataset.import_from(folder, fmt)
    labels = dataset.categories().get(annotation_type.AnnotationType.label)
    subsets: dict[str, dict[str, Any]] = {}
    for item in dataset:
        entry = subsets.setdefault(
            item.subset, {"items": 0, "media": 0, "sized": 0, **{k: Counter() for k in KINDS}}
        )
        entry["items"] += 1
        path = getattr(item.media, "path", None)
        if path and Path(path).is_file():
            entry["media"] += 1
        if item.media is not None and item.media.has_size:
            entry["sized"] += 1
        for annotation in item.annotations:
            kind = _kind(annotation)
            counts = entry.setdefault(kind, Counter())
            counts[_class_name(labels, getattr(annotation, "label", None))] += 1
    return {
        "subsets": {
            name: {
                k: dict(sorted(v.items())) if isinstance(v, Counter) else v for k, v in s.items()
            }
            for name, s in sorted(subsets.items())
        }
    }


def main(argv: list[str]) -> int:
    """Summarize each ``FORMAT=FOLDER`` argument; print the JSON; 0 unless misused."""
    if not argv or any("=" not in a for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    out: dict[str, Any] = {}
    for argument in argv:
        fmt, folder = argument.split("=", 1)
        try:
            out[fmt] = summarize(folder, fmt)
        except Exception as exc:  # reported per format, as the consumer's answer
            out[fmt] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
