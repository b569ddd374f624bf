"""Writing a Hugging Face dataset: Parquet shards and a dataset card, as ``push_to_hub`` does.

:func:`write` lays out ``data/<split>-00000-of-0000N.parquet`` and a ``README.md`` whose
YAML declares the features, the splits and the ``configs``: ``load_dataset(folder)`` loads
it with no argument and ``push_to_hub`` (or ``hf upload``) uploads it unchanged. Columns:
``image`` (the ``Image`` feature: the file's bytes and its name), ``image_id``, ``width``,
``height``, ``objects`` (boxes as COCO ``[x, y, w, h]`` pixels, ``ClassLabel`` categories,
indices 0..n-1 in class-map id order) and ``labels`` (the whole-image class labels).
The features are declared as ``datasets`` does (``Features.to_dict()`` JSON under the
Parquet schema metadata key ``huggingface``; ``DatasetInfo._to_yaml_dict()`` YAML in the
card), written here by hand: ``datasets`` is a test dependency only.

Unlike the other exports, which hard-link the stored images, the Parquet files hold a copy
of every image's bytes: the price of a folder that ``push_to_hub`` uploads as it is. Rows
stream into the writers a row group at a time: memory holds one row group per split.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pixelpipe.dataset import Category, Sample
from pixelpipe.formats.base import Problems, split_name, split_order, write_atomic
from pixelpipe.formats.imagefolder import is_image_label

DATA_DIR = "data"
CARD = "README.md"
SHARD_BYTES = 500 * 2**20
"""Image bytes after which a new shard starts (``push_to_hub``'s default ``max_shard_size``)."""
GROUP_ROWS = 100
"""Rows per Parquet row group (what ``datasets`` wrote for images before 4.0)."""
GROUP_BYTES = 100 * 2**20
"""Image bytes after which a row group ends early (``datasets``' ``MAX_ROW_GROUP_SIZE``)."""
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")  # datasets.naming._split_re
_SHARD = re.compile(r"^.+-\d{5}-of-\d{5}\.parquet$")
_PARTIAL = ".parquet.partial"
_CDC = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}
"""``datasets``' content-defined chunking: shards that share images share Parquet pages."""
_HAS_CDC = int(pa.__version__.split(".")[0]) >= 21  # content-defined chunking came in 21.0

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
OBJECT_TYPE = pa.struct(
    [
        ("id", pa.int64()),
        ("bbox", pa.list_(pa.float32(), 4)),
        ("category", pa.int64()),
        ("area", pa.float32()),
        ("iscrowd", pa.bool_()),
    ]
)
SCHEMA = pa.schema(
    [
        ("image", IMAGE_TYPE),
        ("image_id", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("objects", pa.list_(OBJECT_TYPE)),
        ("labels", pa.list_(pa.int64())),
    ]
)
"""The Arrow schema of every shard: ``Features.arrow_schema`` of :func:`features`."""


def _value(dtype: str) -> dict[str, str]:
    return {"dtype": dtype, "_type": "Value"}


def features(names: Sequence[str]) -> dict[str, Any]:
    """The features as ``datasets.Features.to_dict()`` gives them.

    Args:
        names: The class names, index 0..n-1.

    Returns:
        The JSON stored under ``info.features`` in each shard's ``huggingface`` metadata.
    """
    label = {"names": list(names), "_type": "ClassLabel"}
    objects = {
        "id": _value("int64"),
        "bbox": {"feature": _value("float32"), "length": 4, "_type": "List"},
        "category": label,
        "area": _value("float32"),
        "iscrowd": _value("bool"),
    }
    return {
        "image": {"_type": "Image"},
        "image_id": _value("string"),
        "width": _value("int32"),
        "height": _value("int32"),
        "objects": {"feature": objects, "_type": "List"},
        "labels": {"feature": label, "_type": "List"},
    }


def yaml_features(names: Sequence[str]) -> list[dict[str, Any]]:
    """The features in the card's YAML form (``datasets``' ``Features._to_yaml_list()``).

    Args:
        names: The class names, index 0..n-1.

    Returns:
        The list under ``dataset_info.features`` in ``README.md``.
    """

    def label() -> dict[str, Any]:  # a new dict each time: YAML writes no anchors
        return {"class_label": {"names": {str(i): name for i, name in enumerate(names)}}}

    objects = [
        {"name": "id", "dtype": "int64"},
        {"name": "bbox", "list": "float32", "length": 4},
        {"name": "category", "dtype": label()},
        {"name": "area", "dtype": "float32"},
        {"name": "iscrowd", "dtype": "bool"},
    ]
    return [
        {"name": "image", "dtype": "image"},
        {"name": "image_id", "dtype": "string"},
        {"name": "width", "dtype": "int32"},
        {"name": "height", "dtype": "int32"},
        {"name": "objects", "list": objects},
        {"name": "labels", "list": label()},
    ]


def _leaves(path: str, kind: Any) -> list[str]:
    """The Parquet leaf column paths of an Arrow type (``objects.list.element.id``...)."""
    if pa.types.is_struct(kind):
        return [leaf for f in kind for leaf in _leaves(f"{path}.{f.name}", f.type)]
    if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
        return _leaves(f"{path}.list.element", kind.value_type)
    return [path]


def _writer_options() -> dict[str, Any]:
    """``datasets``' Parquet options: image bytes plain and uncompressed, the rest snappy."""
    leaves = {leaf: f.name == "image" for f in SCHEMA for leaf in _leaves(f.name, f.type)}
    options: dict[str, Any] = {
        "compression": {leaf: "none" if image else "snappy" for leaf, image in leaves.items()},
        "use_dictionary": [leaf for leaf, image in leaves.items() if not image],
        "column_encoding": {leaf: "PLAIN" for leaf, image in leaves.items() if image},
        "write_page_index": True,
    }
    if _HAS_CDC:
        options["use_content_defined_chunking"] = _CDC
    return options


class _Split:
    """The shards of one split, written a row group at a time under temporary names."""

    def __init__(self, name: str, folder: Path, schema: Any, shard_bytes: int) -> None:
        self.name = name
        self.folder = folder
        self.schema = schema
        self.shard_bytes = shard_bytes
        self.partials: list[Path] = []
        self.writer: Any = None
        self.rows: list[dict[str, Any]] = []
        self.group_bytes = 0
        self.bytes_in_shard = 0
        self.examples = 0
        self.num_bytes = 0

    def add(self, row: dict[str, Any], image_bytes: int) -> None:
        """Buffer one row; write the row group, and end the shard, when they are full."""
        self.rows.append(row)
        self.examples += 1
        self.group_bytes += image_bytes
        self.bytes_in_shard += image_bytes
        if len(self.rows) >= GROUP_ROWS or self.group_bytes >= GROUP_BYTES:
            self._flush()
        if self.bytes_in_shard >= self.shard_bytes:
            self._end_shard()

    def _flush(self) -> None:
        if self.writer is None:
            path = self.folder / f".{self.name}-{len(self.partials):05d}{_PARTIAL}"
            self.partials.append(path)
            self.writer = pq.ParquetWriter(path, self.schema, **_writer_options())
        if self.rows:
            table = pa.Table.from_pylist(self.rows, schema=self.schema)
            self.writer.write_table(table, row_group_size=len(self.rows))
            self.num_bytes += table.nbytes
        self.rows = []
        self.group_bytes = 0

    def _end_shard(self) -> None:
        if self.rows or self.writer is None:
            self._flush()
        if _HAS_CDC:
            self.writer.add_key_value_metadata({"content_defined_chunking": json.dumps(_CDC)})
        self.writer.close()
        self.writer = None
        self.bytes_in_shard = 0

    def finish(self) -> list[Path]:
        """Close the last shard and give the shards their final names, in order."""
        if self.rows or self.writer is not None or not self.partials:
            self._end_shard()
        count = len(self.partials)
        final = [self.folder / f"{self.name}-{k:05d}-of-{count:05d}.parquet" for k in range(count)]
        for partial, path in zip(self.partials, final, strict=True):
            os.replace(partial, path)
        self.partials = []
        return final

    def abandon(self) -> None:
        """Close and delete what was written."""
        if self.writer is not None:
            with contextlib.suppress(OSError):
                self.writer.close()
            self.writer = None
        for path in self.partials:
            path.unlink(missing_ok=True)


def _image(sample: Sample, image_source: Callable[[Sample], Path | None]) -> bytes | None:
    source = image_source(sample)
    if source is None or not source.is_file():
        return None
    return source.read_bytes()


def _check_names(ordered: Sequence[Category]) -> None:
    """Raise when two categories share a name: a ``ClassLabel``'s names are unique."""
    problems = Problems()
    first: dict[str, int] = {}
    for category in ordered:
        if category.name in first:
            problems.add(
                f"categories {first[category.name]} and {category.id} are both named "
                f"{category.name!r}; Hugging Face class names must be unique",
                key="categories",
            )
        first.setdefault(category.name, category.id)
    problems.raise_if_any()


def _labels(
    sample: Sample, index: dict[int, int], problems: Problems, unknown: set[int]
) -> tuple[list[dict[str, Any]], list[int]]:
    """A sample's ``objects`` and ``labels``; records each category id not in ``index`` once."""
    objects: list[dict[str, Any]] = []
    labels: set[int] = set()
    for number, ann in enumerate(sample.annotations):
        category = index.get(ann.category_id)
        if category is None:
            if ann.category_id not in unknown:
                unknown.add(ann.category_id)
                key = f"annotations[{number}].category_id"
                problems.add(
                    f"category id {ann.category_id} is not in the class map", sample.id, key=key
                )
        elif is_image_label(ann):
            labels.add(category)
        else:
            x, y, w, h = (float(v) for v in ann.bbox)
            area = float(ann.area) if ann.area is not None else w * h
            box = {"id": number, "bbox": [x, y, w, h], "category": category, "area": area}
            objects.append({**box, "iscrowd": bool(ann.iscrowd)})
    return objects, sorted(labels)


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    image_source: Callable[[Sample], Path | None],
    *,
    shard_bytes: int = SHARD_BYTES,
) -> dict[str, int]:
    """Write ``samples`` as a Hugging Face dataset (Parquet shards and a card) into ``out``.

    One row per sample, in the order given, in ``data/<split>-<k>-of-<n>.parquet`` (no
    split: ``unassigned``); a shard ends once it holds ``shard_bytes`` of image bytes.
    ``objects`` are the annotations that are not whole-image labels, ``id`` being the
    annotation's position in the sample's annotations (image labels count, so ids may
    skip); ``labels`` are the whole-image classes, each once, sorted. Polygons, masks,
    scores and annotators are not written. A missing image is a null ``image``. Shards
    of an earlier export to ``out`` are removed.

    Args:
        samples: The samples, in id order (iterated once).
        categories: The class map; ``ClassLabel`` index 0 is the category with the
            smallest id.
        out: The folder to write.
        image_source: The local file holding a sample's image, or ``None``.
        shard_bytes: Image bytes per shard before the next one starts.

    Returns:
        Counts: ``images`` (embedded), ``boxes``, ``image_labels``, ``shards``.

    Raises:
        PixelpipeError: When two categories share a name, an annotation's category is not
            in the class map, a split name is not one ``datasets`` accepts, an image file
            cannot be read (all found are reported together; no shard is written), or there
            is no sample (``datasets`` does not load an empty split).
        ValueError: When ``shard_bytes`` is not positive.
    """
    if shard_bytes <= 0:
        raise ValueError(f"shard_bytes must be positive, got {shard_bytes}")
    ordered = sorted(categories, key=lambda c: c.id)
    names = [c.name for c in ordered]
    _check_names(ordered)
    index = {c.id: i for i, c in enumerate(ordered)}
    metadata = {"huggingface": json.dumps({"info": {"features": features(names)}})}
    schema = SCHEMA.with_metadata(metadata)
    folder = out / DATA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    problems = Problems()
    bad_splits: set[str] = set()
    unknown: set[int] = set()
    splits: dict[str, _Split] = {}
    stats: Counter[tuple[str, str, int]] = Counter()  # (kind, split, class index)
    images = boxes = image_labels = 0
    try:
        for sample in samples:
            split = split_name(sample)
            if not _SPLIT_NAME.match(split):
                if split not in bad_splits:
                    bad_splits.add(split)
                    problems.add(
                        f"split {split!r} is not a Hugging Face split name (letters, digits "
                        "and '_', parts joined by '.')",
                        sample.id,
                        key="split",
                    )
                continue
            objects, labels = _labels(sample, index, problems, unknown)
            if problems:
                continue  # nothing is kept: only look for more problems
            try:
                data = _image(sample, image_source)
            except OSError as exc:
                problems.add(f"cannot read its image file: {exc.strerror or exc}", sample.id)
                continue
            if split not in splits:
                splits[split] = _Split(split, folder, schema, shard_bytes)
            row = {
                "image": None
                if data is None
                else {"bytes": data, "path": posixpath.basename(sample.id) or sample.id},
                "image_id": sample.id,
                "width": int(sample.width),
                "height": int(sample.height),
                "objects": objects,
                "labels": labels,
            }
            splits[split].add(row, len(data) if data is not None else 0)
            images += data is not None
            boxes += len(objects)
            image_labels += len(labels)
            stats.update(("boxes", split, o["category"]) for o in objects)
            stats.update(("labels", split, c) for c in labels)
        if not splits and not problems:
            problems.add("no sample to export: `datasets` cannot load a dataset without rows")
        problems.raise_if_any()
        written = {name: splits[name].finish() for name in split_order(splits)}
    finally:
        for state in splits.values():
            state.abandon()
    _remove_stale(folder, {p.name for paths in written.values() for p in paths})
    write_atomic(out / CARD, _card(names, splits, written, stats))
    shards = sum(len(paths) for paths in written.values())
    return {"images": images, "boxes": boxes, "image_labels": image_labels, "shards": shards}


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete shards and partial files of an earlier export that this one did not write."""
    for path in sorted(folder.iterdir()):
        stale = _SHARD.match(path.name) or path.name.endswith(_PARTIAL)
        if stale and path.name not in keep and path.is_file():
            path.unlink()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _card(
    names: Sequence[str],
    splits: dict[str, _Split],
    written: dict[str, list[Path]],
    stats: Counter[tuple[str, str, int]],
) -> str:
    """The dataset card: YAML front matter as ``push_to_hub`` writes it, then a summary."""
    order = list(written)
    info = {
        "features": yaml_features(names),
        "splits": [
            {"name": s, "num_bytes": splits[s].num_bytes, "num_examples": splits[s].examples}
            for s in order
        ],
        "download_size": sum(p.stat().st_size for paths in written.values() for p in paths),
        "dataset_size": sum(splits[s].num_bytes for s in order),
    }
    tasks = ["object-detection"]
    if any(kind == "labels" for kind, _, _ in stats):
        tasks.append("image-classification")
    front = {
        "task_categories": tasks,
        "dataset_info": info,
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"{DATA_DIR}/{s}-*"} for s in order],
            }
        ],
    }
    text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
    return f"---\n{text}---\n\n" + _body(names, order, splits, stats)


def _body(
    names: Sequence[str],
    order: list[str],
    splits: dict[str, _Split],
    stats: Counter[tuple[str, str, int]],
) -> str:
    lines = [
        "# Image dataset exported by pixelpipe",
        "",
        "Images with object boxes and whole-image class labels, exported by pixelpipe as",
        "Parquet shards (`data/<split>-<k>-of-<n>.parquet`) that hold each image's bytes.",
        "Rows: " + ", ".join(f"{s} {splits[s].examples}" for s in order) + ".",
        "",
        "## Classes",
        "",
        "`objects.category` and `labels` are indices into these names (a `ClassLabel`).",
        "Each cell: objects (boxes) / images with the class as a whole-image label.",
        "",
        "| index | class | " + " | ".join(order) + " |",
        "| ---: | --- | " + " | ".join("---:" for _ in order) + " |",
    ]
    for i, name in enumerate(names):
        cells = [f"{stats['boxes', s, i]} / {stats['labels', s, i]}" for s in order]
        lines.append(f"| {i} | {_cell(name)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'dataset = load_dataset("path/to/this/folder")  # or "<user>/<name>" once pushed',
        f'row = dataset["{order[0]}"][0]',
        'row["image"]  # a PIL image; None when the image file was missing at export',
        'row["objects"]  # [{"id", "bbox": [x, y, w, h], "category", "area", "iscrowd"}]',
        'row["labels"]  # the whole-image class labels',
        "```",
        "",
        "## Conventions",
        "",
        "- `bbox` is `[x, y, w, h]` in pixels (COCO's convention): `x, y` is the box's",
        "  top-left corner, measured from the top-left corner of the image's top-left pixel.",
        "- `objects.id` is the annotation's position among the image's annotations in the",
        "  pixelpipe manifest; `area` is the object's area in pixels.",
        "- `labels` lists each whole-image class once, sorted (several, or none).",
        "- Polygons, masks, scores and annotators are not part of this export.",
        "",
    ]
    return "\n".join(lines)
