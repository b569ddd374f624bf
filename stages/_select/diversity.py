"""Near-duplicate groups among the candidates: at most one of each goes into a batch.

Candidates are joined (union-find, transitively) when they are the same file (sha256),
share a value of a user column (``group_column``), or have perceptual hashes within
``near_distance`` bits. The hash is dedupe's column (``phash``...) when the manifest has
one, else a 64-bit pHash computed here, each distinct file once and reused from the
per-item cache. This is the grouping the ``split`` stage does; its helpers
(``stages._split.codes`` and ``stages._split.groups``) are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pixelpipe import PixelpipeError, Problem, StageContext
from pixelpipe.imaging import hamming
from stages._split import codes, groups

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Groups:
    """The group of each manifest row (rows that are not candidates stand alone).

    Attributes:
        of_row: Per manifest row, its group index.
        hash_source: Where the hashes came from (a column, ``computed phash``), or ``None``
            when there was no near-duplicate grouping.
        unhashed: Candidates without a hash (grouped by the other reasons only).
    """

    of_row: I64
    hash_source: str | None
    unhashed: int


def _values(table: pa.Table, name: str, candidates: I64, ctx: StageContext) -> list[Any]:
    """A user column's values on candidate rows, ``None`` elsewhere."""
    values = groups.column_values(table, name, ctx.stage, "group_column")
    return _on(values, candidates, table.num_rows)


def _on(values: list[Any], candidates: I64, rows: int) -> list[Any]:
    keep = np.zeros(rows, dtype=bool)
    keep[candidates] = True
    return [v if k else None for v, k in zip(values, keep.tolist(), strict=True)]


def group_rows(
    table: pa.Table,
    candidates: I64,
    *,
    near_distance: int | None,
    hash_column: str | None,
    group_column: str | None,
    ctx: StageContext,
) -> Groups:
    """Join the candidate rows into near-duplicate groups.

    Args:
        table: The manifest.
        candidates: The rows that may be selected.
        near_distance: Largest Hamming distance of one group; ``None``: no hashes.
        hash_column: The hash column; ``None``: the first algorithm column present, else
            hashes computed here.
        group_column: A manifest column whose equal values form a group, or ``None``.
        ctx: The step's context (workers, cache, pixels).

    Returns:
        The groups.

    Raises:
        PixelpipeError: When a named column is missing or not a hash, or ``near_distance``
            is at least half the bits of the hashes.
    """
    rows = table.num_rows
    joiner = groups.Joiner(rows)
    joiner.by_value(_on(table.column("sha256").to_pylist(), candidates, rows), "sha256", False)
    if group_column is not None:
        joiner.by_value(_values(table, group_column, candidates, ctx), group_column, False)
    source: str | None = None
    unhashed = 0
    if near_distance is not None and candidates.size:
        column = codes.hash_column(table, hash_column, ctx.stage)
        if column is not None:
            found = codes.from_column(table, column, candidates, ctx.stage)
        else:
            found = codes.compute(table, candidates, ctx)
        if near_distance >= found.bits // 2:
            raise PixelpipeError(
                Problem(
                    f"{near_distance} bits is at least half of the {found.bits}-bit hashes in "
                    f"'{found.column}': unrelated images match at that distance",
                    file="params.yaml",
                    key=f"{ctx.stage}.near_distance",
                )
            )
        near = hamming.search(
            found.words,
            near_distance,
            bits=found.bits,
            map_chunks=ctx.executor.map_chunks,
            workers=ctx.executor.workers,
        )
        a, b = groups.near_pairs(near, found.rows)
        joiner.by_pairs(a, b, "near_duplicate")
        source, unhashed = found.column, found.missing
    ids = table.column("id").to_pylist()
    grouping = joiner.finish(ids, np.zeros(rows, dtype=bool))
    return Groups(grouping.group, source, unhashed)
