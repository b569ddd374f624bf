"""Reading and writing a dataset directory: :class:`Dataset`, :func:`write_dataset`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pixelpipe.dataset.builder import DatasetBuilder
from pixelpipe.dataset.digest import content_digest
from pixelpipe.dataset.files import FILES_SCHEMA, files_digest, first_difference, scan
from pixelpipe.dataset.model import Category, Sample
from pixelpipe.dataset.schema import (
    CATEGORIES_FILE,
    FILES_FILE,
    INFO_FILE,
    REMOVED_FILE,
    REMOVED_SCHEMA,
    SAMPLES_FILE,
    SCHEMA_VERSION,
)
from pixelpipe.errors import PixelpipeError


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

    def files(self) -> pa.Table:
        """The files the stage wrote besides the manifest (``path``, ``sha256``, ``size``)."""
        path = self.path / FILES_FILE
        return pq.read_table(path) if path.is_file() else FILES_SCHEMA.empty_table()

    def content_digest(self) -> str:
        """The digest of what is in the folder now (compare with :attr:`digest`)."""
        files = self.files()
        exported = files_digest(files) if files.num_rows else None
        return content_digest(self.table, self.categories, exported)

    def verify(self, shown_as: str | None = None) -> None:
        """Check that the folder holds what ``dataset.json`` says, every exported byte included.

        Args:
            shown_as: How to name the folder in errors (default: its path).

        Raises:
            PixelpipeError: Naming the first file that differs (an export missing, changed or
                added), or the manifest when its content does not match the digest.
        """
        where = shown_as or str(self.path)
        difference = first_difference(self.path, self.files())
        if difference:
            raise PixelpipeError(
                f"{where}/{difference}; the dataset was modified after it was written"
            )
        actual = self.content_digest()
        if actual != self.digest:
            raise PixelpipeError(
                f"{where}: contents do not match the digest in {INFO_FILE} "
                f"({actual[:19]} != {self.digest[:19]}); it was modified after it was written"
            )

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def samples(self, batch_size: int = 1024) -> Iterator[Sample]:
        """Iterate the samples in id order, decoding rows in batches."""
        for batch in self.table.to_batches(max_chunksize=batch_size):
            for row in batch.to_pylist():
                yield Sample.from_row(row)


def pending_digest(directory: Path, builder: DatasetBuilder) -> str:
    """The digest a dataset being written into ``directory`` will have, exports included.

    For a step that shows the digest in a file it writes last (the dataset card).
    """
    files = scan(directory, builder.known_files)
    exported = files_digest(files) if files.num_rows else None
    categories = sorted(builder.categories, key=lambda c: c.id)
    return content_digest(builder.samples_table(), categories, exported)


def write_dataset(
    directory: Path,
    builder: DatasetBuilder,
    *,
    stage: str,
    kind: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    notes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a dataset directory (into a directory the caller renames into place).

    Args:
        directory: Where to write; created if missing.
        builder: The samples, removals and class map.
        stage: Stage name.
        kind: Stage kind.
        params: The validated params, JSON-ready.
        inputs: Digest of each input dataset, by stage name.
        notes: What the stage reported that is not a number (an algorithm, a config digest).

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
    files = scan(directory, builder.known_files)  # before the contract files: none is listed
    write_parquet(samples, directory / SAMPLES_FILE)
    write_parquet(removed, directory / REMOVED_FILE)
    exported = files_digest(files) if files.num_rows else None
    if exported:
        write_parquet(files, directory / FILES_FILE)
    (directory / CATEGORIES_FILE).write_text(
        json.dumps([c.to_json() for c in categories], indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    info = {
        "schema_version": SCHEMA_VERSION,
        "stage": stage,
        "kind": kind,
        "digest": content_digest(samples, categories, exported),
        "counts": counts(samples, removed),
        "inputs": dict(sorted(inputs.items())),
        "params": dict(params),
    }
    if exported:
        sizes = pa.compute.sum(files.column("size")).as_py()
        info["files"] = {"count": files.num_rows, "bytes": int(sizes), "digest": exported}
    if notes:
        info["notes"] = dict(notes)
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
