"""Writing YOLO: label lines for a sample, and the Ultralytics layout.

:func:`label_lines` converts a sample's annotations to normalized lines (boxes clipped to
the image; for ``segment``, polygons, masks traced, parts merged); :func:`write` writes
``data.yaml``, ``images/<split>/`` and ``labels/<split>/``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from pixelpipe.dataset import Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import flat_name, number, split_name, split_order

YoloTask = Literal["detect", "segment"]


def _clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _merge_parts(parts: list[list[float]]) -> list[float]:
    """One polygon tracing every part, joined at their nearest points (as Ultralytics does)."""
    merged = [(parts[0][i], parts[0][i + 1]) for i in range(0, len(parts[0]), 2)]
    for part in parts[1:]:
        points = [(part[i], part[i + 1]) for i in range(0, len(part), 2)]
        best = min(
            ((a, b) for a in range(len(merged)) for b in range(len(points))),
            key=lambda ab: (
                (merged[ab[0]][0] - points[ab[1]][0]) ** 2
                + (merged[ab[0]][1] - points[ab[1]][1]) ** 2
            ),
        )
        a, b = best
        loop = points[b:] + points[: b + 1]
        merged = merged[: a + 1] + loop + merged[a:]
    return [v for point in merged for v in point]


def _mask_polygon(rle: dict[str, Any]) -> list[float] | None:
    import numpy as np
    from pycocotools import mask as mask_utils
    from skimage import measure

    mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
    contours = measure.find_contours(np.pad(mask, 1), 0.5)  # type: ignore[no-untyped-call]
    if not contours:
        return None
    contour = max(contours, key=len) - 1  # undo the padding
    return [float(v) for point in contour for v in (point[1] + 0.5, point[0] + 0.5)]


def label_lines(
    sample: Sample,
    ids: dict[int, int],
    task: YoloTask = "detect",
    include_crowd: bool = False,
) -> tuple[list[str], dict[str, int]]:
    """The label lines of a sample, and counts of what was clipped or left out."""
    counts = {"boxes": 0, "boxes_clipped": 0, "boxes_outside": 0, "crowd_skipped": 0}
    lines: list[str] = []
    width, height = float(sample.width), float(sample.height)
    for ann in sample.annotations:
        if ann.iscrowd and not include_crowd:
            counts["crowd_skipped"] += 1
            continue
        x, y, w, h = ann.bbox
        if x > width or y > height or x + w < 0 or y + h < 0:
            counts["boxes_outside"] += 1
            continue
        cls = str(ids[ann.category_id])
        polygon: list[float] | None = None
        if task == "segment":
            if ann.polygons:
                polygon = _merge_parts(ann.polygons) if len(ann.polygons) > 1 else ann.polygons[0]
            elif ann.rle is not None:
                polygon = _mask_polygon(ann.rle)
            if polygon is None:
                polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
            values = [_clip(v / (width if i % 2 == 0 else height)) for i, v in enumerate(polygon)]
            lines.append(" ".join([cls, *(number(v) for v in values)]))
            counts["boxes"] += 1
            continue
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, width), min(y + h, height)
        if (x1, y1, x2, y2) != (x, y, x + w, y + h):
            counts["boxes_clipped"] += 1
        cx, cy = _clip((x1 + x2) / 2 / width), _clip((y1 + y2) / 2 / height)
        nw, nh = _clip((x2 - x1) / width), _clip((y2 - y1) / height)
        lines.append(" ".join([cls, number(cx), number(cy), number(nw), number(nh)]))
        counts["boxes"] += 1
    return lines, counts


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    copy_image: Callable[[Sample, Path], bool],
    ids: dict[int, int],
    task: YoloTask = "detect",
    include_crowd: bool = False,
) -> dict[str, int]:
    """Write an Ultralytics layout into ``out``.

    Images are ``images/<split>/<name>``, labels ``labels/<split>/<name stem>.txt``, the
    name being the sample id with its folders folded in (:func:`~pixelpipe.formats.base.flat_name`).
    Samples without a split go to ``unassigned`` when others have one; when none has,
    images are in ``images/`` and ``data.yaml`` names it as both ``train`` and ``val``
    (Ultralytics needs ``val``). Without a ``val`` split, ``val`` repeats ``train``.

    Args:
        samples: The samples, in id order.
        categories: The class map.
        out: The folder to write.
        copy_image: Copies a sample's image to a path; returns False when there is none.
        ids: Class-map id to YOLO class index (0..n-1).
        task: ``detect`` writes boxes; ``segment`` writes polygons (masks traced, boxes
            as rectangles).
        include_crowd: Write crowd boxes too (Ultralytics' converter leaves them out).

    Returns:
        Counts: ``images``, ``boxes``, ``boxes_clipped``, ``boxes_outside``,
        ``crowd_skipped``.

    Raises:
        PixelpipeError: When two ids would share a label file (``a.jpg`` and ``a.png``).
    """
    split_names = {s.split for s in samples}
    use_splits = split_names != {None}
    totals = {"images": 0, "boxes": 0, "boxes_clipped": 0, "boxes_outside": 0, "crowd_skipped": 0}
    seen: dict[str, str] = {}
    folders: set[str] = set()
    for sample in samples:
        folder = split_name(sample) if use_splits else ""
        folders.add(folder)
        name = flat_name(sample.id)
        stem = posixpath.splitext(name)[0]
        label_rel = posixpath.join("labels", folder, f"{stem}.txt")
        if label_rel in seen:
            raise PixelpipeError(
                f"YOLO export: '{sample.id}' and '{seen[label_rel]}' would share the label file "
                f"{label_rel}; rename one"
            )
        seen[label_rel] = sample.id
        lines, counts = label_lines(sample, ids, task, include_crowd)
        for key, value in counts.items():
            totals[key] += value
        label = out / label_rel
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        if copy_image(sample, out / "images" / folder / name):
            totals["images"] += 1
    config: dict[str, Any] = {}
    if use_splits:
        for folder in split_order(folders):
            config[folder] = f"images/{folder}"
        if "val" not in config and "train" in config:
            config["val"] = config["train"]
    else:
        config["train"] = "images"
        config["val"] = "images"
    ordered_categories = sorted(categories, key=lambda c: c.id)
    config["nc"] = len(ordered_categories)
    config["names"] = {ids[c.id]: c.name for c in ordered_categories}
    (out / "data.yaml").write_text(
        "# YOLO (Ultralytics) dataset written by pixelpipe; paths are relative to this file.\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False),
        encoding="utf-8",
    )
    (out / "labels").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    return totals
