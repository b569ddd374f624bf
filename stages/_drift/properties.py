"""The image properties of two manifests, each distinct file measured once, cached by sha256.

The distinct files (by sha256) of both datasets together go through ``ctx.cached_map``
under :data:`NAMESPACE` and :data:`SALT`, keyed by the sha256 alone: a file measured by any
run of the ``drift`` stage, or by ``pixelpipe diff A B --stats`` (which runs this stage's
step), is not decoded again while the code is unchanged. Only the files missing from the
cache are read, on the workers, from where :func:`locate` finds them: the manifest's path
under the dataset's own project, then under the project the step runs in, then the
project's object store by sha256 (where ingest and augment keep every image they stored,
so an older version's images are found after the workspace moved on). A file that cannot be
read or decoded gets NaN for every property and is counted; such failures are not cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from pixelpipe import StageContext
from pixelpipe.dataset.images import is_url, objects_dir
from pixelpipe.imaging.properties import PROPERTIES, properties_chunk
from stages._dedupe.hashes import distinct_files

NAMESPACE = "image_properties"
"""Cache namespace of the properties (one result per distinct file)."""
SALT = ("properties", *PROPERTIES)
"""What a file's properties depend on besides its bytes: which properties are measured."""
ERRORS_SHOWN = 5
"""Unreadable images named one by one in the log."""


def locate(image: str, sha256: str, roots: Sequence[Path], objects: Path) -> str:
    """Where to read an image from.

    Args:
        image: The manifest's ``image``: a URL, or a path relative to a project root.
        sha256: The image's sha256.
        roots: Project roots to look under, in order.
        objects: The project's object store (files named by sha256).

    Returns:
        The URL; else the first root's file that exists; else the object store's file when
        there is one; else the path under the first root (whose reading fails, as that
        image's failure).
    """
    if is_url(image):
        return image
    for root in roots:
        path = root / image
        if path.is_file():
            return str(path)
    stored = objects / sha256[:2] / sha256
    if stored.is_file():
        return str(stored)
    return str(roots[0] / image)


@dataclass
class Measured:
    """The properties of each manifest row of each dataset.

    Attributes:
        values: Per dataset (in the order given), property name -> one value per row.
        failed: Distinct files that could not be measured.
        errors: The first few of them: ``(dataset, sample id, reason)``.
    """

    values: list[dict[str, np.ndarray]]
    failed: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)


def measure(
    tables: Sequence[pa.Table], roots: Sequence[Path], labels: Sequence[str], ctx: StageContext
) -> Measured:
    """Measure the images of several manifests (each distinct file once, through the cache).

    Args:
        tables: The manifests.
        roots: For each manifest, the project its image paths are relative to.
        labels: For each manifest, its name in messages (``reference``, ``current``).
        ctx: The step's context (workers, cache, progress).

    Returns:
        Every row's properties, per manifest.
    """
    if not tables:
        return Measured([])
    columns = ["id", "image", "sha256"]
    both = pa.concat_tables([t.select(columns) for t in tables], promote_options="permissive")
    ids: list[str] = both.column("id").to_pylist()
    images: list[str] = both.column("image").to_pylist()
    shas: list[str] = both.column("sha256").to_pylist()
    side = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])
    files = distinct_files(both)
    objects = objects_dir(ctx.root)
    order = [list(dict.fromkeys([r, ctx.root])) for r in roots]

    def where(row: int) -> object:
        return ctx.pixels(locate(images[row], shas[row], order[side[row]], objects))

    count = len(files.first_row)
    table = np.full((count, len(PROPERTIES)), np.nan)
    measured = Measured([])
    with ctx.progress(count, "image properties") as advance:
        results = ctx.cached_map(
            NAMESPACE,
            SALT,
            properties_chunk,
            files.first_row,
            lambda row: shas[row],
            advance=advance,
            keep=lambda result: result[0] is not None,
            prepare=where,
        )
        for index, (values, error) in enumerate(results):
            if values is not None:
                table[index] = [values.get(name, np.nan) for name in PROPERTIES]
                continue
            measured.failed += 1
            if len(measured.errors) < ERRORS_SHOWN:
                row = files.first_row[index]
                measured.errors.append((labels[side[row]], ids[row], str(error)))
    per_row = table[files.of_row]
    start = 0
    for part in tables:
        rows = per_row[start : start + part.num_rows]
        measured.values.append({name: rows[:, i] for i, name in enumerate(PROPERTIES)})
        start += part.num_rows
    return measured
