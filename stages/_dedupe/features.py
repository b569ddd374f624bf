"""Candidate pairs from a vector column (``dedupe.features``): cosine distance, FAISS index.

A custom stage adds an embedding per image (``list<float>`` or a fixed-size list); the
first row of each distinct file gives its vector, and the pairs within
``max_cosine_distance`` are found by :func:`pixelpipe.imaging.vectors.cosine_pairs` (an
exact FAISS index up to a size where that is cheap, HNSW above, with the recall measured
against brute force on a sample and reported). Files without a vector (a null) take part
in exact-duplicate removal only.
"""

from __future__ import annotations

import difflib

import numpy as np
import pyarrow as pa

from pixelpipe import StageContext
from pixelpipe.errors import PixelpipeError
from pixelpipe.imaging import hamming, vectors
from stages._dedupe.hashes import Files, Hashes
from stages._dedupe.verified import Candidates


def read_vectors(
    table: pa.Table, column: str, files: Files, stage: str
) -> tuple[np.ndarray, np.ndarray]:
    """The vector of each distinct file's first row, and which files have one.

    Raises:
        PixelpipeError: The column is missing, is not a list of numbers, or its vectors
            differ in length or hold NaN, infinity or only zeros.
    """
    key = f"{stage}.features"
    if column not in table.column_names:
        close = difflib.get_close_matches(column, table.column_names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise PixelpipeError(
            f"params.yaml: {key}: the input manifest has no column '{column}'{hint} "
            "(a stage before dedupe must add the vectors)"
        )
    values = table.column(column).combine_chunks()
    if not (pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type)) or not (
        pa.types.is_floating(values.type.value_type) or pa.types.is_integer(values.type.value_type)
    ):
        raise PixelpipeError(
            f"params.yaml: {key}: column '{column}' must hold lists of numbers, not {values.type}"
        )
    rows = np.asarray(files.first_row, dtype=np.int64)
    picked = values.take(pa.array(rows, type=pa.int64()))
    present = ~np.asarray(picked.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    lengths = {len(v) for v in picked.filter(pa.array(present)).to_pylist()}
    if len(lengths) > 1:
        raise PixelpipeError(
            f"params.yaml: {key}: the vectors of column '{column}' differ in length "
            f"({', '.join(str(n) for n in sorted(lengths))})"
        )
    dim = lengths.pop() if lengths else 0
    if present.any() and dim == 0:
        raise PixelpipeError(f"params.yaml: {key}: the vectors of column '{column}' are empty")
    flat = picked.filter(pa.array(present)).flatten().to_numpy(zero_copy_only=False)
    matrix = np.asarray(flat, dtype=np.float32).reshape(-1, dim) if dim else np.zeros((0, 1))
    return matrix, present


def _refuse_bad_rows(
    matrix: np.ndarray, rows: list[int], table: pa.Table, column: str, stage: str
) -> None:
    """Raise, naming the samples, when vectors hold NaN, infinity or only zeros."""
    finite = np.isfinite(matrix).all(axis=1)
    bad = np.flatnonzero(~finite | (finite & ~np.any(matrix != 0, axis=1)))
    if not bad.size:
        return
    ids = table.column("id")
    named = ", ".join(f"'{ids[rows[int(k)]].as_py()}'" for k in bad[:5])
    more = f" and {bad.size - 5} more" if bad.size > 5 else ""
    raise PixelpipeError(
        f"params.yaml: {stage}.features: column '{column}': the vectors of {named}{more} "
        "hold NaN, infinity or only zeros (no direction to compare)"
    )


def feature_candidates(
    table: pa.Table,
    files: Files,
    hashes: Hashes,
    column: str,
    max_cosine_distance: float,
    ctx: StageContext,
) -> tuple[Candidates, dict[str, object]]:
    """The pairs of files within ``max_cosine_distance``, and what the search measured."""
    matrix, present = read_vectors(table, column, files, ctx.stage)
    with_vector = np.flatnonzero(present).astype(np.int64)
    _refuse_bad_rows(
        matrix, [files.first_row[int(k)] for k in with_vector], table, column, ctx.stage
    )
    found = vectors.cosine_pairs(matrix, max_cosine_distance)
    recall = vectors.recall(matrix, found, max_cosine_distance)
    a, b = with_vector[found.i], with_vector[found.j]
    distance = np.full(a.size, -1, dtype=np.int64)
    both = (hashes.position[a] >= 0) & (hashes.position[b] >= 0)
    if both.any():
        distance[both] = hamming.pair_distances(
            hashes.words[:, :1], hashes.position[a][both], hashes.position[b][both]
        )
    ctx.log.info(
        "%d pairs of %d vectors within cosine distance %s (%s, recall %.3f)",
        a.size,
        with_vector.size,
        max_cosine_distance,
        found.method,
        recall,
    )
    measured = {
        "features": column,
        "vectors": int(with_vector.size),
        "feature_search": found.method,
        "feature_search_recall": round(recall, 4),
    }
    turned = np.zeros(a.size, dtype=np.int64)
    return Candidates(
        a, b, distance, turned, np.asarray(found.distance, dtype=np.float64)
    ), measured
