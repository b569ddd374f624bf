"""The files a stage writes besides the manifest (exports), by path and sha256.

A stage that writes files (publish's ``coco/``, ``class_map.json``; any stage's export) has
them listed in ``files.parquet`` (``path``, ``sha256``, ``size``; sorted by path), and the
content digest covers that list, so two outputs whose exports differ by one byte never share a
digest. Not listed: the contract files, the image store ``images/`` (its files are named by
their sha256, which the manifest holds) and what only presents the data to people (the
``report.*`` pages and the dataset card ``README.md``). A stage that writes no such file has
no ``files.parquet`` and its digest is the manifest's alone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow as pa

from pixelpipe.dataset.images import IMAGES_DIR
from pixelpipe.dataset.schema import (
    CATEGORIES_FILE,
    FILES_FILE,
    INFO_FILE,
    REMOVED_FILE,
    SAMPLES_FILE,
)

FILES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
    ]
)
_CONTRACT = frozenset({SAMPLES_FILE, REMOVED_FILE, CATEGORIES_FILE, INFO_FILE, FILES_FILE})
_PRESENTATION = frozenset({"README.md"})


def is_listed(path: str) -> bool:
    """Whether a file at ``path`` (relative, POSIX) of a dataset folder is an export."""
    top, _, rest = path.partition("/")
    if not rest:
        return not (top in _CONTRACT or top in _PRESENTATION or top.startswith("report."))
    return top != IMAGES_DIR


def _walk(directory: Path) -> Iterator[str]:
    for folder, dirs, names in os.walk(directory):
        dirs.sort()
        base = Path(folder).relative_to(directory)
        for name in sorted(names):
            path = (base / name).as_posix()
            if is_listed(path):
                yield path


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def scan(directory: Path, known: Mapping[str, str] | None = None) -> pa.Table:
    """List the exports under ``directory``, sorted by path.

    Args:
        directory: The dataset folder being written.
        known: sha256 of files the stage copied from the content-addressed store, by path;
            they are not read again.

    Returns:
        A table of :data:`FILES_SCHEMA`.
    """
    known = known or {}
    rows = []
    for path in _walk(directory):
        file = directory / path
        sha = known.get(path) or sha256_file(file)
        rows.append({"path": path, "sha256": sha, "size": file.stat().st_size})
    return pa.Table.from_pylist(rows, schema=FILES_SCHEMA)


def files_digest(files: pa.Table) -> str:
    """``sha256:<hex>`` of the sorted ``path``/``sha256`` list."""
    digest = hashlib.sha256()
    for path, sha in zip(
        files.column("path").to_pylist(), files.column("sha256").to_pylist(), strict=True
    ):
        digest.update(f"{path}\0{sha}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def first_difference(directory: Path, files: pa.Table) -> str | None:
    """The first export of ``directory`` that differs from the list, with what differs.

    Returns:
        ``None`` when every listed file is there with its bytes and nothing else is, else
        ``"<path>: <what>"`` for the first difference in path order.
    """
    listed = dict(
        zip(files.column("path").to_pylist(), files.column("sha256").to_pylist(), strict=True)
    )
    present = set(_walk(directory)) if directory.is_dir() else set()
    for path in sorted(set(listed) | present):
        if path not in present:
            return f"{path}: missing"
        if path not in listed:
            return f"{path}: not part of the dataset"
        if sha256_file(directory / path) != listed[path]:
            return f"{path}: content differs"
    return None
