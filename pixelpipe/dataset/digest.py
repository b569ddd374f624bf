"""The content digest: what a dataset *is*, independent of row order and storage location.

It covers ids, pixels by sha256, sizes, splits, labels, stage columns and the class map, and
ignores the ``image`` and ``source`` columns, row order and file times, so the same data
ingested from a bucket or a folder has the same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pyarrow as pa

from pixelpipe.dataset.model import Category, canonical_json
from pixelpipe.dataset.schema import LOCATION_COLUMNS


def content_digest(
    samples: pa.Table, categories: Sequence[Category], files: str | None = None
) -> str:
    """SHA-256 of a dataset's content, independent of row order and storage location.

    Args:
        samples: The manifest (any row order).
        categories: The class map.
        files: The digest of the files the stage wrote besides the manifest
            (:func:`pixelpipe.dataset.files.files_digest`), when it wrote any.

    Returns:
        ``sha256:<hex>``.
    """
    digest = hashlib.sha256()
    cats = sorted((c.to_json() for c in categories), key=lambda c: (c["id"], c["name"]))
    digest.update(canonical_json(cats).encode())
    columns = sorted(n for n in samples.column_names if n not in LOCATION_COLUMNS)
    table = samples.select(columns).sort_by("id") if samples.num_rows else samples
    for batch in table.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            digest.update(b"\n")
            digest.update(canonical_json(row).encode())  # NaN -> NaN, stable
    if files is not None:
        digest.update(f"\nfiles {files}".encode())
    return f"sha256:{digest.hexdigest()}"
