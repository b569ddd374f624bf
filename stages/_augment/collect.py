"""Gathering the copies in the parent: their pixels into the store, their rows, the counts."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa

from pixelpipe import DatasetBuilder, ImageStore
from pixelpipe.dataset import ANNOTATION_TYPE
from stages._augment.jobs import Jobs

BATCH_ROWS = 1024  # derived rows gathered into one Arrow table at a time
REPLAY_COLUMN = "augment"
"""Manifest column with each copy's replay data (JSON); null for images not made here."""


class Tally:
    """Counts gathered while copies come back."""

    def __init__(self) -> None:
        self.requested = 0
        self.made = 0
        self.boxes_in = 0
        self.boxes_kept = 0
        self.dropped: dict[str, Counter[int]] = {}
        self.images_with: Counter[int] = Counter()
        self.instances: Counter[int] = Counter()
        self.undecodable: list[tuple[str, str]] = []
        self.failures: list[tuple[str, str]] = []

    def add(self, made: dict[str, Any], originals: list[dict[str, Any]]) -> None:
        """Count a copy made of an image with ``originals`` annotations."""
        self.made += 1
        self.boxes_in += len(originals)
        self.boxes_kept += len(made["annotations"])
        kept = [int(originals[a["index"]]["category_id"]) for a in made["annotations"]]
        self.images_with.update(set(kept))
        self.instances.update(kept)
        for reason, per in made["dropped"].items():
            counter = self.dropped.setdefault(reason, Counter())
            counter.update({int(k): v for k, v in per.items()})


class Collector:
    """Takes the result of each job, in order: stores the copies, counts them, adds rows.

    Copies computed now come with their encoded bytes, stored here (workers never write);
    copies found in the per-item cache come without them and their images are linked from
    the project's object store by sha256. When one of those objects is gone (collected),
    the job is left to be computed again (:meth:`take` returns False).

    Args:
        jobs: The work items.
        store: The output's image store.
        out: The output being built (originals already added).
    """

    def __init__(self, jobs: Jobs, store: ImageStore, out: DatasetBuilder) -> None:
        self.jobs = jobs
        self.store = store
        self.out = out
        self.tally = Tally()
        self.tally.requested = sum(jobs.counts)
        self._rows: list[dict[str, Any]] = []
        self._parents: list[int] = []
        self._failed: dict[int, set[int]] = {}  # failed copies of jobs to compute again

    def take(self, row: int, result: dict[str, Any]) -> bool:
        """Take job ``row``'s result; False when it must be computed again.

        Each copy's encoded bytes are removed from ``result`` once stored, so what the
        per-item cache keeps of it is the copies' metadata and sha256, never their pixels.
        A job computed again is taken again (its failures are counted once).
        """
        parent_id = self.jobs.table.column("id")[row].as_py()
        if "undecodable" in result:
            self.tally.undecodable.append((parent_id, result["undecodable"]))
            return True
        counted = self._failed.pop(row, set())
        made = []
        for copy in result["copies"]:
            if "error" not in copy:
                made.append(copy)
            elif copy["copy"] not in counted:
                self.tally.failures.append((self.jobs.copy_id(row, copy["copy"]), copy["error"]))
        images: list[str] = []
        for copy in made:
            data = copy.pop("data", None)
            if data is not None:
                image, copy["sha256"] = self.store.put_bytes(data, copy["ext"])
            elif (linked := self.store.link(copy["sha256"], copy["ext"])) is not None:
                image = linked
            else:
                self._failed[row] = {c["copy"] for c in result["copies"] if "error" in c}
                return False
            images.append(image)
        originals = self.jobs.table.column("annotations")[row].as_py() or []
        for copy, image in zip(made, images, strict=True):
            copy_id = self.jobs.copy_id(row, copy["copy"])
            self.tally.add(copy, originals)
            self._rows.append(copy_row(copy, copy_id, parent_id, image, originals))
            self._parents.append(row)
        if len(self._rows) >= BATCH_ROWS:
            self.flush()
        return True

    def flush(self) -> None:
        """Add the rows gathered so far to the output."""
        if self._rows:
            parents = self.jobs.table.take(pa.array(self._parents, pa.int64()))
            self.out.add_table(derived_table(parents, self._rows))
            self._rows, self._parents = [], []


def copy_row(
    made: dict[str, Any],
    copy_id: str,
    parent_id: str,
    image: str,
    originals: list[dict[str, Any]],
) -> dict[str, Any]:
    """A copy's manifest values; annotation fields not moved by the recipe are the original's."""
    annotations = []
    for entry in made["annotations"]:
        row = dict(originals[entry["index"]])
        row.update(
            bbox=entry["bbox"], polygons=entry["polygons"], rle=entry["rle"], area=entry["area"]
        )
        annotations.append(row)
    return {
        "id": copy_id,
        "image": image,
        "sha256": made["sha256"],
        "width": made["width"],
        "height": made["height"],
        "parent": parent_id,
        "annotations": annotations,
        "replay": made["replay"],
    }


def derived_table(parents: pa.Table, rows: list[dict[str, Any]]) -> pa.Table:
    """Manifest rows of copies: the parent's row with the copy's pixels and labels."""
    table = parents
    replace = {
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "image": pa.array([r["image"] for r in rows], pa.string()),
        "sha256": pa.array([r["sha256"] for r in rows], pa.string()),
        "width": pa.array([r["width"] for r in rows], pa.int64()),
        "height": pa.array([r["height"] for r in rows], pa.int64()),
        "parent": pa.array([r["parent"] for r in rows], pa.string()),
        "annotations": pa.array([r["annotations"] for r in rows], pa.list_(ANNOTATION_TYPE)),
        REPLAY_COLUMN: pa.array([r["replay"] for r in rows], pa.string()),
    }
    for name, column in replace.items():
        position = table.schema.get_field_index(name)
        if position >= 0:
            table = table.set_column(position, name, column)
        else:
            table = table.append_column(name, column)
    return table
