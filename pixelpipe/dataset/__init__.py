"""The dataset contract: one directory per stage output.

A dataset directory ``data/<stage>/`` holds:

- ``samples.parquet``: the manifest, one row per image, sorted by ``id``, with the
  image's annotations nested (see :data:`SAMPLE_SCHEMA`), plus any column a stage adds;
- ``categories.json``: the class map shared by every split and every export;
- ``removed.parquet``: every sample the stage dropped, with ``id``, ``reason``, ``detail``
  and ``source`` (plus stage-specific columns);
- ``dataset.json``: schema version, counts, the content digest, the digests of the inputs,
  the stage, its kind, its params, and what it reported that is not a number (``notes``);
- ``files.parquet``, when the stage wrote files besides these (exports such as publish's
  ``coco/``): each file's path, sha256 and size (see :mod:`pixelpipe.dataset.files`).

Image paths in the manifest are relative to the project root (never absolute). The
content digest covers what the dataset *is* (ids, pixels by sha256, sizes, splits, labels,
stage columns, the class map and the exported files' bytes), not where it is stored or came
from: it ignores the ``image`` and ``source`` columns, row order and file times, so the same
data ingested from a bucket or a folder has the same digest.

The package: ``schema`` (file names, Arrow schemas), ``model`` (:class:`Sample`,
:class:`Annotation`, :class:`Category`), ``builder`` (:class:`DatasetBuilder`, what a step
fills), ``store`` (:class:`Dataset` and :func:`write_dataset`), ``digest``, ``files`` and
``images`` (the content-addressed image store). It imports only :mod:`pixelpipe.errors`.
"""

from pixelpipe.dataset.builder import DatasetBuilder
from pixelpipe.dataset.digest import content_digest
from pixelpipe.dataset.files import FILES_SCHEMA, files_digest, first_difference, is_listed
from pixelpipe.dataset.images import IMAGES_DIR, ImageStore
from pixelpipe.dataset.model import Annotation, Category, Sample, canonical_json
from pixelpipe.dataset.schema import (
    ANNOTATION_TYPE,
    CATEGORIES_FILE,
    CORE_COLUMNS,
    FILES_FILE,
    INFO_FILE,
    REMOVED_FILE,
    REMOVED_SCHEMA,
    RLE_TYPE,
    SAMPLE_SCHEMA,
    SAMPLES_FILE,
    SCHEMA_VERSION,
)
from pixelpipe.dataset.store import (
    Dataset,
    counts,
    pending_digest,
    write_dataset,
    write_parquet,
)

__all__ = [
    "ANNOTATION_TYPE",
    "CATEGORIES_FILE",
    "CORE_COLUMNS",
    "FILES_FILE",
    "FILES_SCHEMA",
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
    "files_digest",
    "first_difference",
    "is_listed",
    "pending_digest",
    "write_dataset",
    "write_parquet",
]
