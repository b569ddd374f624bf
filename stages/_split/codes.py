"""Perceptual hashes of a manifest, as the ``uint64`` words the Hamming search takes.

The ``dedupe`` stage leaves its hash as a column named after the algorithm (``phash``:
fixed-size big-endian bytes) and, for orientation-invariant hashes, the eight
orientations in ``<column>_orientations``. When no such column is there (no dedupe
upstream), the split stage hashes the images itself: 64-bit pHash, each distinct file
(by sha256) once, on the executor's workers, through the per-item cache (a rerun hashes
only files it has not hashed before); workers read the pixels
:meth:`pixelpipe.StageContext.pixels` gives them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pixelpipe import PixelpipeError, Problem, StageContext, did_you_mean, read_pixels
from pixelpipe.imaging.hashing import ALGORITHMS, HashSpec, hash_read, to_words

ORIENTATIONS_SUFFIX = "_orientations"
NAMESPACE = "perceptual_hash"
"""Cache namespace of the computed hashes (one result per distinct file)."""


@dataclass(frozen=True)
class Codes:
    """Hashes of some manifest rows.

    Attributes:
        rows: The manifest rows that have a hash.
        words: ``(len(rows), orientations, words)`` uint64.
        bits: Bits per hash.
        column: Where the hashes came from (a column name, or ``computed phash``).
        missing: Rows that were meant to be hashed but have no hash.
    """

    rows: npt.NDArray[np.int64]
    words: npt.NDArray[np.uint64]
    bits: int
    column: str
    missing: int


def _is_bytes(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_fixed_size_binary(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def hash_column(table: pa.Table, wanted: str | None, stage: str) -> str | None:
    """The hash column to use: ``wanted``, else the first algorithm column present.

    Raises:
        PixelpipeError: When ``wanted`` is not a bytes column of the manifest.
    """
    names = table.column_names
    if wanted is None:
        for name in ALGORITHMS:
            if name in names and _is_bytes(table.schema.field(name).type):
                return name
        return None
    if wanted not in names:
        raise PixelpipeError(
            Problem(
                f"no column '{wanted}' in the manifest" + did_you_mean(wanted, names),
                file="params.yaml",
                key=f"{stage}.hash_column",
            )
        )
    if not _is_bytes(table.schema.field(wanted).type):
        raise PixelpipeError(
            Problem(
                f"column '{wanted}' is {table.schema.field(wanted).type}, not a hash "
                "(fixed-size bytes, as dedupe writes)",
                file="params.yaml",
                key=f"{stage}.hash_column",
            )
        )
    return wanted


def _from_bytes(values: Sequence[bytes], nbytes: int, orientations: int) -> npt.NDArray[np.uint64]:
    raw = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), orientations, nbytes)
    return to_words(raw)


def _lengths(values: Sequence[bytes | None]) -> set[int]:
    return {len(v) for v in values if v is not None}


def from_column(table: pa.Table, column: str, rows: npt.NDArray[np.int64], stage: str) -> Codes:
    """Hashes of ``rows`` read from ``column`` (and its orientations column, if any).

    Raises:
        PixelpipeError: When the hashes are not all of one length.
    """
    take = pa.array(rows, pa.int64())
    plain = table.column(column).take(take).to_pylist()
    sizes = _lengths(plain)
    if len(sizes) > 1:
        raise PixelpipeError(
            Problem(
                f"hashes in column '{column}' have different lengths {sorted(sizes)}",
                file="params.yaml",
                key=f"{stage}.hash_column",
            )
        )
    nbytes = sizes.pop() if sizes else 8
    values = plain
    orientations = 1
    turned = column + ORIENTATIONS_SUFFIX
    if turned in table.column_names and _is_bytes(table.schema.field(turned).type):
        candidates = table.column(turned).take(take).to_pylist()
        turned_sizes = _lengths(candidates)
        if len(turned_sizes) == 1 and next(iter(turned_sizes)) % nbytes == 0:
            values = candidates
            orientations = next(iter(turned_sizes)) // nbytes
    present = np.array([v is not None for v in values], dtype=bool)
    kept = [v for v in values if v is not None]
    words = (
        _from_bytes(kept, nbytes, orientations)
        if kept
        else np.zeros((0, orientations, -(-nbytes // 8)), dtype=np.uint64)
    )
    return Codes(rows[present], words, nbytes * 8, column, int((~present).sum()))


def compute(
    table: pa.Table,
    rows: npt.NDArray[np.int64],
    ctx: StageContext,
) -> Codes:
    """64-bit pHash of ``rows``' images, each distinct file (sha256) hashed once.

    Hashes are reused from the per-item cache by sha256; only files not hashed before
    are read and decoded, on ``ctx``'s workers. A file that cannot be read (a transient
    failure) has no hash this time and is not remembered as unhashable.

    Args:
        table: The manifest.
        rows: The rows to hash.
        ctx: The step's context (workers, cache, progress, what workers read pixels from).
    """
    spec = HashSpec()
    shas = table.column("sha256").take(pa.array(rows, pa.int64())).to_pylist()
    images = table.column("image").take(pa.array(rows, pa.int64())).to_pylist()
    first: dict[str, int] = {}
    for position, sha in enumerate(shas):
        first.setdefault(sha, position)
    distinct = sorted(first.values())
    code_of: dict[str, bytes] = {}
    with ctx.progress(len(distinct), "hashing images for near-duplicate groups") as advance:
        results = ctx.cached_map(
            NAMESPACE,
            (spec.algorithm, spec.hash_size, spec.draft, spec.invariant),
            functools.partial(hash_read, spec, read_pixels),
            distinct,
            lambda position: shas[position],
            advance=advance,
            keep=lambda result: not result[2],
            prepare=lambda position: ctx.pixels(images[position]),
        )
        for position, (code, error, _) in zip(distinct, results, strict=True):
            if error is None:
                code_of[shas[position]] = code
    present = np.array([sha in code_of for sha in shas], dtype=bool)
    kept = [code_of[sha] for sha in shas if sha in code_of]
    words = _from_bytes(kept, spec.nbytes, 1) if kept else np.zeros((0, 1, 1), dtype=np.uint64)
    return Codes(rows[present], words, spec.bits, "computed phash", int((~present).sum()))
