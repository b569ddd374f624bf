"""The work items, built from the manifest only when a chunk is taken (bounded memory)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import overload

import pyarrow as pa

from pixelpipe import Pixels
from stages._augment.worker import Copy, Job, derived_id, is_jpeg_path

_FIELDS = ("category_id", "bbox", "polygons", "rle")
"""The annotation fields the recipe reads (the others are copied from the parent)."""


class Jobs(Sequence[Job]):
    """One job per row: the row's image and its copies ``0 .. counts[row] - 1``.

    Args:
        table: The rows that get copies (``id``, ``image``, ``sha256``, ``annotations``).
        counts: Copies per row.
        seed: The seed of a sample id's copy ``k``.
        id_tag: The tag in the copies' ids.
    """

    def __init__(
        self,
        table: pa.Table,
        counts: list[int],
        seed: Callable[[str, int], int],
        id_tag: str,
    ) -> None:
        self.table = table
        self.counts = counts
        self.seed = seed
        self.id_tag = id_tag

    def __len__(self) -> int:
        return len(self.counts)

    @overload
    def __getitem__(self, index: int) -> Job: ...

    @overload
    def __getitem__(self, index: slice) -> list[Job]: ...

    def __getitem__(self, index: int | slice) -> Job | list[Job]:
        if isinstance(index, slice):
            return [self._job(i) for i in range(*index.indices(len(self)))]
        return self._job(index if index >= 0 else len(self) + index)

    def copy_id(self, row: int, copy: int) -> str:
        """The id of copy ``copy`` of row ``row``."""
        sample_id = self.table.column("id")[row].as_py()
        jpeg = is_jpeg_path(self.table.column("image")[row].as_py())
        return derived_id(sample_id, self.id_tag, copy, jpeg)

    def _job(self, row: int) -> Job:
        sample_id = self.table.column("id")[row].as_py()
        image = self.table.column("image")[row].as_py()
        annotations = self.table.column("annotations")[row].as_py() or []
        return Job(
            sample_id=sample_id,
            image=image,
            sha256=self.table.column("sha256")[row].as_py(),
            annotations=[{k: a[k] for k in _FIELDS} for a in annotations],
            jpeg=is_jpeg_path(image),
            copies=tuple(Copy(k, self.seed(sample_id, k)) for k in range(self.counts[row])),
        )


class Sent(Sequence[tuple[Job, Pixels]]):
    """Some jobs with what their workers read, made only as chunks are sent.

    Args:
        jobs: The jobs.
        rows: The rows of the jobs to send.
        pixels: What a worker reads a manifest ``image`` from (``ctx.pixels``).
    """

    def __init__(self, jobs: Jobs, rows: list[int], pixels: Callable[[str], Pixels]) -> None:
        self.jobs = jobs
        self.rows = rows
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> tuple[Job, Pixels]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[Job, Pixels]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Job, Pixels] | list[tuple[Job, Pixels]]:
        if isinstance(index, slice):
            return [self._sent(row) for row in self.rows[index]]
        return self._sent(self.rows[index])

    def _sent(self, row: int) -> tuple[Job, Pixels]:
        job = self.jobs[row]
        return job, self.pixels(job.image)
