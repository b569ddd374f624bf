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

from pixelpipe.dataset.builder import DatasetBuilder
from pixelpipe.dataset.digest import content_digest
from pixelpipe.dataset.images import IMAGES_DIR, ImageStore
from pixelpipe.dataset.model import Annotation, Category, Sample, canonical_json
from pixelpipe.dataset.schema import (
    ANNOTATION_TYPE,
    CATEGORIES_FILE,
    CORE_COLUMNS,
    INFO_FILE,
    REMOVED_FILE,
    REMOVED_SCHEMA,
    RLE_TYPE,
    SAMPLE_SCHEMA,
    SAMPLES_FILE,
    SCHEMA_VERSION,
)
from pixelpipe.dataset.store import Dataset, counts, write_dataset, write_parquet

__all__ = [
    "ANNOTATION_TYPE",
    "CATEGORIES_FILE",
    "CORE_COLUMNS",
    "IMAGES_DIR",
    "INFO_FILE",
    "REMOVED_FILE",
    "REMOVED_SCHEMA",
    "RLE_TYPE",
    "SAMPLES_FILE",
    "SAMPLE_SCHEMA",
    "SCHEMA_VERSION",
    "Annotation",
    "Category",
    "Dataset",
    "DatasetBuilder",
    "ImageStore",
    "Sample",
    "canonical_json",
    "content_digest",
    "counts",
    "write_dataset",
    "write_parquet",
]
