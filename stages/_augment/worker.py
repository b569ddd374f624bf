"""The augment work item: decode an image once, make its copies, return them encoded.

Runs on the executor's workers. A work item is one image with the copies to make of it
(a :class:`Job`), decoded once. Workers read the image from what
:meth:`pixelpipe.StageContext.pixels` gave (a path, a URL or the bytes) and never write:
they return the encoded copies, which the parent stores.

Every copy is independent of every other: its random state is set from its own seed right
before the recipe runs, so a copy's bytes do not depend on which worker made it, in which
order, or what ran before.

Two details matter for that:

- albumentations' ``Compose.set_random_seed(seed)`` gives *every* transform its own
  generator seeded with the same number, so a recipe's probabilities are all decided by
  the same first draw (with two ``p=0.5`` flips, both or neither apply, every time). The
  worker instead gives the whole recipe one numpy generator and one Python generator
  seeded from the copy seed (``set_random_state``), as an unseeded Compose would share.
- A few albumentations functions draw from OpenCV's global generator (``cv2.randn`` for
  Gaussian noise); it is reseeded from the copy seed too.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelpipe import Pixels, read_pixels
from stages._augment import masks as mask_io
from stages._augment.recipe import build

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
_SMALL_ARRAY = 16  # arrays up to this many values are kept whole in the replay data
_BOX_DECIMALS = 3  # boxes are rounded to 1/1000 pixel (float noise of the transforms)


@dataclass(frozen=True)
class Settings:
    """What every work item needs (picklable).

    Attributes:
        recipe: The completed recipe (canonical JSON text).
        digest: Its digest, recorded in each copy's replay data.
        jpeg_quality: Quality of JPEG outputs.
    """

    recipe: str
    digest: str
    jpeg_quality: int


@dataclass(frozen=True)
class Copy:
    """One copy to make.

    Attributes:
        index: The copy index (0, 1, ...).
        seed: Its seed, from (stage seed, parent id, copy index).
    """

    index: int
    seed: int


@dataclass(frozen=True)
class Job:
    """One image and the copies to make of it: the work item (and cache item) of the stage.

    A worker gets it with the image's :data:`~pixelpipe.Pixels` (a path or URL, or for
    workers elsewhere its bytes), made by the parent only for jobs not in the cache.

    Attributes:
        sample_id: The parent's id.
        image: The parent's ``image`` in the manifest.
        sha256: The parent image's sha256.
        annotations: The parent's annotation rows (``category_id``, ``bbox``,
            ``polygons``, ``rle``).
        jpeg: Write the copies as JPEG (else PNG).
        copies: The copies.
    """

    sample_id: str
    image: str
    sha256: str
    annotations: list[dict[str, Any]]
    jpeg: bool
    copies: tuple[Copy, ...]

    def content(self) -> tuple[object, ...]:
        """What decides the copies, for the per-item cache.

        The parent's pixels (sha256), labels and id, the copies (indices and the seeds
        derived from them) and the output format; not where the image is stored.
        """
        return (self.sha256, self.sample_id, self.copies, self.jpeg, self.annotations)


def jsonable(value: Any) -> Any:
    """Replay parameters as plain JSON: small arrays as lists, large ones as a digest."""
    if isinstance(value, np.ndarray):
        if value.size <= _SMALL_ARRAY:
            return jsonable(value.tolist())
        data = np.ascontiguousarray(value)
        return {
            "array": list(value.shape),
            "dtype": str(value.dtype),
            "sha256": hashlib.sha256(data.tobytes()).hexdigest(),
        }
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, (int, str)):  # enums
        return value.value
    return f"<{type(value).__name__}>"  # never a repr with a memory address


def encode(pixels: np.ndarray, jpeg: bool, quality: int) -> bytes:
    """Encode pixels with fixed settings (same bytes for the same pixels, every run).

    Raises:
        ValueError: For pixels that are not 8-bit (a recipe with ``Normalize``).
    """
    if pixels.dtype != np.uint8:
        raise ValueError(
            f"the recipe produced {pixels.dtype} pixels; a dataset stores 8-bit images "
            "(remove Normalize, ToFloat and the like from the recipe)"
        )
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    if jpeg:
        image.save(
            buffer, format="JPEG", quality=quality, optimize=False, progressive=False,
            subsampling="4:2:0",
        )  # fmt: skip
    else:
        image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _clip_box(box: list[float], width: int, height: int) -> list[float] | None:
    """A box clipped to the image, or ``None`` when nothing of it is inside."""
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None
    x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def _count(dropped: dict[str, dict[str, int]], reason: str, category: int) -> None:
    per = dropped.setdefault(reason, {})
    per[str(category)] = per.get(str(category), 0) + 1


@dataclass
class _Parent:
    """A decoded parent image and its boxes and masks, ready for the recipe."""

    pixels: np.ndarray
    boxes: list[list[float]]
    valid: list[int]
    instance_masks: list[tuple[int, np.ndarray]]
    invalid: dict[str, dict[str, int]]


def _make_copy(settings: Settings, job: Job, copy: Copy, parent: _Parent) -> dict[str, Any]:
    import cv2

    compose = build(settings.recipe)
    compose.set_random_state(np.random.default_rng(copy.seed), random.Random(copy.seed))
    cv2.setRNGSeed(copy.seed % (1 << 31))
    data: dict[str, Any] = {
        "image": parent.pixels.copy(),
        "bboxes": np.array(parent.boxes, dtype=np.float64).reshape(-1, 4),
        "category_id": [int(job.annotations[i]["category_id"]) for i in parent.valid],
        "index": list(parent.valid),
    }
    if parent.instance_masks:
        data["masks"] = np.stack([m for _, m in parent.instance_masks])
    result = compose(**data)
    out = np.asarray(result["image"])
    encoded = encode(out, job.jpeg, settings.jpeg_quality)
    height, width = int(out.shape[0]), int(out.shape[1])
    mask_of: dict[int, np.ndarray] = {}
    if parent.instance_masks:
        moved = np.asarray(result["masks"]) > 0
        mask_of = {
            index: moved[k].astype(np.uint8) for k, (index, _) in enumerate(parent.instance_masks)
        }
    dropped: dict[str, dict[str, int]] = {k: dict(v) for k, v in parent.invalid.items()}
    kept_index = [round(float(v)) for v in result["index"]]
    annotations: list[dict[str, Any]] = []
    for index, box in zip(kept_index, np.asarray(result["bboxes"]).reshape(-1, 4), strict=True):
        source = job.annotations[index]
        bbox = [round(float(v), _BOX_DECIMALS) for v in box[:4]]
        entry: dict[str, Any] = {"index": index, "bbox": bbox, "polygons": None, "rle": None}
        area = bbox[2] * bbox[3]
        if index in mask_of:
            mask = mask_of[index]
            pixels_on = int(np.count_nonzero(mask))
            if pixels_on == 0:
                _count(dropped, "mask_empty", int(source["category_id"]))
                continue
            area = float(pixels_on)
            if source.get("polygons"):
                entry["polygons"] = mask_io.to_polygons(mask)
            else:
                entry["rle"] = mask_io.to_rle(mask)
        entry["area"] = area
        annotations.append(entry)
    kept = set(kept_index)
    for index in parent.valid:
        if index not in kept:
            _count(dropped, "filtered", int(job.annotations[index]["category_id"]))
    replay = {
        "recipe": settings.digest,
        "seed": copy.seed,
        "copy": copy.index,
        "applied": [[name, jsonable(params)] for name, params in result["applied_transforms"]],
    }
    return {
        "copy": copy.index,
        "data": encoded,
        "sha256": hashlib.sha256(encoded).hexdigest(),
        "ext": ".jpg" if job.jpeg else ".png",
        "width": width,
        "height": height,
        "annotations": annotations,
        "replay": json.dumps(replay, sort_keys=True, separators=(",", ":")),
        "dropped": dropped,
    }


def _decode(job: Job, pixels: Pixels) -> _Parent | dict[str, Any]:
    """The image of ``job`` decoded, with its boxes and masks, or the job's result.

    A file that cannot be read (a network error, a file gone) is a transient failure, not
    kept in the cache; one that is read but does not decode is reported (and kept).
    """
    try:
        encoded = read_pixels(pixels)
    except Exception as exc:
        return {"undecodable": f"cannot read: {type(exc).__name__}: {exc}", "transient": True}
    try:
        with Image.open(io.BytesIO(encoded)) as opened:
            decoded = np.asarray(opened.convert("RGB"))
    except Exception as exc:  # an image that does not decode: no copies, reported
        return {"undecodable": f"cannot decode: {type(exc).__name__}: {exc}"}
    height, width = int(decoded.shape[0]), int(decoded.shape[1])
    parent = _Parent(decoded, [], [], [], {})
    for index, annotation in enumerate(job.annotations):
        clipped = _clip_box(list(annotation["bbox"]), width, height)
        if clipped is None:
            _count(parent.invalid, "invalid", int(annotation["category_id"]))
            continue
        parent.boxes.append(clipped)
        parent.valid.append(index)
        mask = mask_io.rasterize(annotation, height, width)
        if mask is not None:
            parent.instance_masks.append((index, mask))
    return parent


def augment_chunk(settings: Settings, jobs: list[tuple[Job, Pixels]]) -> list[dict[str, Any]]:
    """Executor work item: the copies of each job, in order; each image is decoded once.

    A job's result is ``{"copies": [...]}``, each copy with ``copy`` (its index), ``data``
    (the encoded bytes), ``sha256``, ``ext``, ``width``, ``height``, ``annotations``,
    ``replay`` and ``dropped``, or ``copy`` and ``error`` when the recipe failed on it;
    or ``{"undecodable": message}`` (with ``"transient": True`` when the file could not be
    read) when the image did not decode.
    """
    results: list[dict[str, Any]] = []
    for job, pixels in jobs:
        parent = _decode(job, pixels)
        if not isinstance(parent, _Parent):
            results.append(parent)
            continue
        copies: list[dict[str, Any]] = []
        for copy in job.copies:
            try:
                copies.append(_make_copy(settings, job, copy, parent))
            except Exception as exc:  # a recipe that fails on this image: reported per copy
                message = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
                copies.append({"copy": copy.index, "error": message})
        results.append({"copies": copies})
    return results


def is_jpeg_path(path: str) -> bool:
    """Whether a file name ends like a JPEG (copies of JPEGs are JPEGs, others PNGs)."""
    return Path(path).suffix.lower() in JPEG_SUFFIXES


def derived_id(parent: str, tag: str, index: int, jpeg: bool) -> str:
    """The id of copy ``index`` of ``parent``: ``dir/cat.jpg`` -> ``dir/cat.aug0.jpg``.

    The parent's name keeps its ending when the copy has the same format; otherwise the
    copy's ending is appended (``scan.bmp`` -> ``scan.bmp.aug0.png``).
    """
    folder, _, name = parent.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    ending = f".{suffix}" if dot and stem else ""
    same = JPEG_SUFFIXES if jpeg else frozenset({".png"})
    if ending.lower() in same:
        new = f"{stem}.{tag}{index}{ending}"
    else:
        new = f"{name}.{tag}{index}{'.jpg' if jpeg else '.png'}"
    return f"{folder}/{new}" if folder else new
