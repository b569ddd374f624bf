"""The files of a dataset directory and the Arrow schemas of its manifest and removals."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
SAMPLES_FILE = "samples.parquet"
REMOVED_FILE = "removed.parquet"
CATEGORIES_FILE = "categories.json"
INFO_FILE = "dataset.json"
FILES_FILE = "files.parquet"

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
ANNOTATED_BY_COLUMN = "annotated_by"
"""Optional manifest column (list of strings): the annotators who labelled the image, those
who drew nothing included; ingest writes it when the labels come from named annotators."""
# Columns that say where a sample is stored or came from, not what it is.
LOCATION_COLUMNS = frozenset({"image", "source"})
