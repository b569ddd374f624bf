"""The dataset contract: one directory per stage output.

A dataset directory ``data/<stage>/`` holds:

- ``samples.parquet``: the manifest, one row per image, sorted by ``id``, with the
  image's annotations nested (see :data:`SAMPLE_SCHEMA`), plus any column a stage adds;
- ``categories.json``: the class map shared by every split and every export;
- ``removed.parquet``: every sample the stage dropped, with ``id``, ``reason``, ``detail``
  and ``source`` (plus stage-specific columns);
- ``dataset.json``: schema version, counts, the content digest, the digests of the inputs,
  the stage, its kind and its params.

Image paths in the manifest are relative to the project root (never absolute). The
content digest covers what the dataset *is* (ids, pixels by sha256, sizes, splits, labels,
stage columns and the class map), not where it is stored or came from: it ignores the
``image`` and ``source`` columns, row order and file times, so the same data ingested from
a bucket or a folder has the same digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pixelpipe.errors import PixelpipeError

SCHEMA_VERSION = 1
SAMPLES_FILE = "samples.parquet"
REMOVED_FILE = "removed.parquet"
CATEGORIES_FILE = "categories.json"
INFO_FILE = "dataset.json"

RLE_TYPE = pa.struct([("size", pa.list_(pa.int64())), ("counts", pa.string())])
ANNOTATION_TYPE = pa.struct(
    [
        ("category_id", pa.int64()),
        ("bbox", pa.list_(pa.float64(), 4)),
        ("polygons", pa.list_(pa.list_(pa.float64()))),
        ("rle", RLE_TYPE),
        ("iscrowd", pa.bool_()),
        ("area", pa.float64()),
        ("score", pa.float64()),
        ("annotator", pa.string()),
        ("attributes", pa.string()),
    ]
)
SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("image", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("width", pa.int64(), nullable=False),
        pa.field("height", pa.int64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("group", pa.string()),
        pa.field("parent", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("annotations", pa.list_(ANNOTATION_TYPE)),
    ]
)
CORE_COLUMNS = tuple(SAMPLE_SCHEMA.names)
REMOVED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("source", pa.string()),
    ]
)
# Columns that say where a sample is stored or came from, not what it is.
_LOCATION_COLUMNS = frozenset({"image", "source"})


@dataclass(frozen=True)
class Category:
    """One entry of the class map.

    Attributes:
        id: The id as given by the source (never invented or shifted).
        name: The class name.
        parent: Name of the parent class (COCO's ``supercategory``), if any.
    """

    id: int
    name: str
    parent: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form written to ``categories.json``."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.parent is not None:
            out["parent"] = self.parent
        return out


@dataclass
class Annotation:
    """One object label on an image.

    Attributes:
        category_id: Id in the class map.
        bbox: COCO-style ``[x, y, w, h]`` in absolute float pixels, origin at the
            top-left corner of the top-left pixel.
        polygons: Polygon parts, each ``[x1, y1, x2, y2, ...]``, if segmented.
        rle: A COCO RLE mask ``{"size": [h, w], "counts": str}`` (compressed), if any.
        iscrowd: COCO's crowd flag.
        area: Object area in pixels (mask area when there is a mask, else box area).
        score: Confidence, for predictions.
        annotator: Who or what made the label.
        attributes: Free-form attributes (``difficult``, ``occluded``...).
    """

    category_id: int
    bbox: tuple[float, float, float, float]
    polygons: list[list[float]] | None = None
    rle: dict[str, Any] | None = None
    iscrowd: bool = False
    area: float | None = None
    score: float | None = None
    annotator: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The Arrow row of this annotation."""
        x, y, w, h = (float(v) for v in self.bbox)
        return {
            "category_id": int(self.category_id),
            "bbox": [x, y, w, h],
            "polygons": self.polygons,
            "rle": self.rle,
            "iscrowd": bool(self.iscrowd),
            "area": float(self.area) if self.area is not None else w * h,
            "score": self.score,
            "annotator": self.annotator,
            "attributes": _canonical_json(self.attributes) if self.attributes else None,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Annotation:
        """Rebuild an annotation from its Arrow row."""
        bbox = row["bbox"]
        return cls(
            category_id=row["category_id"],
            bbox=(bbox[0], bbox[1], bbox[2], bbox[3]),
            polygons=row.get("polygons"),
            rle=row.get("rle"),
            iscrowd=bool(row.get("iscrowd")),
            area=row.get("area"),
            score=row.get("score"),
            annotator=row.get("annotator"),
            attributes=json.loads(row["attributes"]) if row.get("attributes") else {},
        )


@dataclass
class Sample:
    """One image and its labels: one manifest row.

    Attributes:
        id: Stable, unique id (for ingested images, the path relative to the source root).
        image: Path of the stored image, relative to the project root.
        sha256: SHA-256 of the image file's bytes.
        width: Width in pixels, read from the file.
        height: Height in pixels, read from the file.
        source: Where the image came from (path or URL), for people; not part of the digest.
        split: ``train``, ``val``, ``test``... once known.
        group: Samples of one group always land in one split.
        parent: For a derived image, the id of the image it was made from.
        tags: Free-form tags.
        annotations: The object labels.
        extra: Columns added by stages (perceptual hash, cluster...).
    """

    id: str
    image: str
    sha256: str
    width: int
    height: int
    source: str
    split: str | None = None
    group: str | None = None
    parent: str | None = None
    tags: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The Arrow row of this sample, extra columns included."""
        row: dict[str, Any] = {
            "id": self.id,
            "image": self.image,
            "sha256": self.sha256,
            "width": int(self.width),
            "height": int(self.height),
            "source": self.source,
            "split": self.split,
            "group": self.group,
            "parent": self.parent,
            "tags": list(self.tags),
            "annotations": [a.to_row() for a in self.annotations],
        }
        clash = CORE_COLUMNS & self.extra.keys()
        if clash:
            raise ValueError(f"extra columns shadow core columns: {sorted(clash)}")
        row.update(self.extra)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Sample:
        """Rebuild a sample from its Arrow row."""
        return cls(
            id=row["id"],
            image=row["image"],
            sha256=row["sha256"],
            width=row["width"],
            height=row["height"],
            source=row["source"],
            split=row.get("split"),
            group=row.get("group"),
            parent=row.get("parent"),
            tags=list(row.get("tags") or []),
            annotations=[Annotation.from_row(a) for a in row.get("annotations") or []],
            extra={k: v for k, v in row.items() if k not in CORE_COLUMNS},
        )


def _canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def content_digest(samples: pa.Table, categories: Sequence[Category]) -> str:
    """SHA-256 of a dataset's content, independent of row order and storage location.

    Args:
        samples: The manifest (any row order).
        categories: The class map.

    Returns:
        ``sha256:<hex>``.
    """
    digest = hashlib.sha256()
    cats = sorted((c.to_json() for c in categories), key=lambda c: (c["id"], c["name"]))
    digest.update(_canonical_json(cats).encode())
    columns = sorted(n for n in samples.column_names if n not in _LOCATION_COLUMNS)
    table = samples.select(columns).sort_by("id") if samples.num_rows else samples
    for batch in table.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            digest.update(b"\n")
            digest.update(_canonical_json(row).encode())  # NaN -> NaN, stable
    return f"sha256:{digest.hexdigest()}"


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write a table the way every dataset file is written: one deterministic layout."""
    pq.write_table(
        table,
        path,
        compression="zstd",
        write_statistics=False,
        store_schema=True,
        row_group_size=65536,
    )


class DatasetBuilder:
    """Collects a stage's output samples and removals, then writes the directory.

    Args:
        categories: The class map of the output.
    """

    def __init__(self, categories: Iterable[Category] = ()) -> None:
        self.categories: list[Category] = list(categories)
        self._rows: list[dict[str, Any]] = []
        self._tables: list[pa.Table] = []
        self._removed: list[dict[str, Any]] = []
        self._built: tuple[pa.Table, pa.Table] | None = None

    def add(self, sample: Sample) -> None:
        """Keep a sample in the output."""
        self._rows.append(sample.to_row())
        self._built = None

    def add_table(self, table: pa.Table) -> None:
        """Keep many samples at once, given as manifest rows (fast path for decision stages)."""
        self._tables.append(table)
        self._built = None

    def remove(self, sample: Sample | str, reason: str, detail: str = "", **columns: Any) -> None:
        """Record a dropped sample.

        Args:
            sample: The sample, or its id when there is no sample (an unreadable file).
            reason: Short machine-readable reason (``unreadable``, ``duplicate``...).
            detail: A human sentence explaining this case.
            **columns: Stage-specific columns (``duplicate_of``, ``distance``...).
        """
        if isinstance(sample, Sample):
            row = {"id": sample.id, "source": sample.source}
        else:
            row = {"id": sample, "source": columns.pop("source", None)}
        row.update(reason=reason, detail=detail, **columns)
        self._removed.append(row)
        self._built = None

    def _build(self) -> tuple[pa.Table, pa.Table]:
        if self._built is None:
            self._built = (self._samples(), self._removals())
        return self._built

    def samples_table(self) -> pa.Table:
        """The manifest: core schema first, extra columns after, rows sorted by id.

        Built once and kept until the next change.

        Raises:
            ValueError: When two samples share an id (a bug in the stage).
        """
        return self._build()[0]

    def removed_table(self) -> pa.Table:
        """The removals, sorted by id."""
        return self._build()[1]

    def _samples(self) -> pa.Table:
        parts = list(self._tables)
        if self._rows:
            parts.append(_rows_to_table(self._rows, SAMPLE_SCHEMA))
        if not parts:
            return SAMPLE_SCHEMA.empty_table()
        table = pa.concat_tables([_conform(t) for t in parts], promote_options="permissive")
        table = table.sort_by("id")
        _check_unique(table, "samples")
        return table

    def _removals(self) -> pa.Table:
        if not self._removed:
            return REMOVED_SCHEMA.empty_table()
        table = _rows_to_table(self._removed, REMOVED_SCHEMA).sort_by("id")
        _check_unique(table, "removed")
        return table


def _rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    extra_names = sorted({k for r in rows for k in r} - set(schema.names))
    core = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
    for name in extra_names:
        core = core.append_column(name, pa.array([r.get(name) for r in rows]))
    return core


def _conform(table: pa.Table) -> pa.Table:
    """Core columns in schema order and type, extra columns after in name order."""
    missing = [n for n in CORE_COLUMNS if n not in table.column_names]
    if missing:
        raise ValueError(f"manifest lacks core columns {missing}")
    cols = [table.column(n).cast(SAMPLE_SCHEMA.field(n).type) for n in CORE_COLUMNS]
    extra = sorted(n for n in table.column_names if n not in CORE_COLUMNS)
    return pa.table(
        cols + [table.column(n) for n in extra],
        schema=pa.schema(list(SAMPLE_SCHEMA) + [table.schema.field(n) for n in extra]),
    )


def _check_unique(table: pa.Table, what: str) -> None:
    ids = table.column("id")
    if len(ids) and len(ids.unique()) != len(ids):
        counts = pa.compute.value_counts(ids)
        dup = [v["values"] for v in counts.to_pylist() if v["counts"] > 1][:3]
        raise ValueError(f"duplicate ids in {what}: {dup}")


class Dataset:
    """A stage output directory, read lazily.

    Args:
        path: The dataset directory (``data/<stage>``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._table: pa.Table | None = None
        self._info: dict[str, Any] | None = None
        self._categories: list[Category] | None = None
        for name in (SAMPLES_FILE, CATEGORIES_FILE, INFO_FILE):
            if not (path / name).is_file():
                raise PixelpipeError(
                    f"{path}: not a pixelpipe dataset (no {name}); has its stage run?"
                )
        version = self.info.get("schema_version")
        if version != SCHEMA_VERSION:
            raise PixelpipeError(
                f"{path}/{INFO_FILE}: schema version {version!r}, this pixelpipe reads "
                f"{SCHEMA_VERSION}; rerun the stage (`dvc repro -f`)"
            )

    @property
    def info(self) -> dict[str, Any]:
        """The parsed ``dataset.json``."""
        if self._info is None:
            self._info = json.loads((self.path / INFO_FILE).read_text(encoding="utf-8"))
        return self._info

    @property
    def digest(self) -> str:
        """The content digest recorded in ``dataset.json``."""
        return str(self.info["digest"])

    @property
    def categories(self) -> list[Category]:
        """The class map."""
        if self._categories is None:
            raw = json.loads((self.path / CATEGORIES_FILE).read_text(encoding="utf-8"))
            self._categories = [Category(c["id"], c["name"], c.get("parent")) for c in raw]
        return self._categories

    @property
    def table(self) -> pa.Table:
        """The manifest as an Arrow table."""
        if self._table is None:
            self._table = pq.read_table(self.path / SAMPLES_FILE)
        return self._table

    def removed(self) -> pa.Table:
        """The removals of the stage that wrote this dataset."""
        path = self.path / REMOVED_FILE
        return pq.read_table(path) if path.is_file() else REMOVED_SCHEMA.empty_table()

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def samples(self, batch_size: int = 1024) -> Iterator[Sample]:
        """Iterate the samples in id order, decoding rows in batches."""
        for batch in self.table.to_batches(max_chunksize=batch_size):
            for row in batch.to_pylist():
                yield Sample.from_row(row)


def write_dataset(
    directory: Path,
    builder: DatasetBuilder,
    *,
    stage: str,
    kind: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
) -> dict[str, Any]:
    """Write a dataset directory (into a directory the caller renames into place).

    Args:
        directory: Where to write; created if missing.
        builder: The samples, removals and class map.
        stage: Stage name.
        kind: Stage kind.
        params: The validated params, JSON-ready.
        inputs: Digest of each input dataset, by stage name.

    Returns:
        The ``dataset.json`` content.
    """
    directory.mkdir(parents=True, exist_ok=True)
    samples = builder.samples_table()
    removed = builder.removed_table()
    categories = sorted(builder.categories, key=lambda c: c.id)
    ids = [c.id for c in categories]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate category ids in class map: {ids}")
    write_parquet(samples, directory / SAMPLES_FILE)
    write_parquet(removed, directory / REMOVED_FILE)
    (directory / CATEGORIES_FILE).write_text(
        json.dumps([c.to_json() for c in categories], indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    info = {
        "schema_version": SCHEMA_VERSION,
        "stage": stage,
        "kind": kind,
        "digest": content_digest(samples, categories),
        "counts": counts(samples, removed),
        "inputs": dict(sorted(inputs.items())),
        "params": dict(params),
    }
    (directory / INFO_FILE).write_text(
        json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return info


def counts(samples: pa.Table, removed: pa.Table) -> dict[str, Any]:
    """Sample, annotation, split and removal counts of a dataset."""
    ann = pa.compute.list_value_length(samples.column("annotations")).fill_null(0)
    splits: dict[str, int] = {}
    for value in samples.column("split").to_pylist():
        key = value if value is not None else "unassigned"
        splits[key] = splits.get(key, 0) + 1
    reasons: dict[str, int] = {}
    for value in removed.column("reason").to_pylist():
        reasons[value] = reasons.get(value, 0) + 1
    return {
        "samples": samples.num_rows,
        "annotations": int(pa.compute.sum(ann).as_py() or 0),
        "removed": removed.num_rows,
        "removed_by_reason": dict(sorted(reasons.items())),
        "splits": dict(sorted(splits.items())),
    }
