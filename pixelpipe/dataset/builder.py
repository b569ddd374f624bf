"""What a step fills: :class:`DatasetBuilder`, the kept samples and the removals."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from pixelpipe.dataset.model import Category, Sample
from pixelpipe.dataset.schema import CORE_COLUMNS, REMOVED_SCHEMA, SAMPLE_SCHEMA


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
        self.known_files: dict[str, str] = {}
        """sha256 of files the stage copied from the image store, by path in the output."""

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

    def record_file(self, path: str, sha256: str) -> None:
        """Note the sha256 of a file the stage wrote by copying bytes it knows the hash of.

        The runner lists every file a stage writes besides the manifest with its sha256
        (``files.parquet``); files recorded here are not read again for it.

        Args:
            path: The file's path in the output folder (POSIX, relative).
            sha256: The hex sha256 of its bytes.
        """
        self.known_files[path] = sha256

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
