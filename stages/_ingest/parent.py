"""What the parent does with each image's result: decide, store, add the sample.

A result comes from a worker (computed now) or from the per-item cache (an earlier run).
It says what the file's content is (sha256, size, orientation, or why it is unusable); the
labels are put on it here, so a rerun after a label fix reuses every image's result:

1. the labels' frame and size check (:func:`decide`): ``size_mismatch`` is decided here;
2. the image into the output (:meth:`Collector.take`): bytes a worker sent are stored;
   otherwise the object already in the project's store is linked (no read), or the local
   file copied. A cached result whose object was collected, or a file that changed since
   the worker read it, is left to be computed again.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pixelpipe import (
    Annotation,
    DatasetBuilder,
    ImageStore,
    PixelpipeError,
    Sample,
)
from pixelpipe.dataset.schema import ANNOTATED_BY_COLUMN
from pixelpipe.fileaccess import FileAccess
from pixelpipe.formats.base import to_pixels
from pixelpipe.formats.pixels import Checked, label_frame, orient_annotations, warnings_line
from stages._ingest.worker import MISSING_LOCAL, Failed, Job, Probed, Result

ORIENTATION_COLUMN = "exif_orientation"
OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
"""Failures to write the output, which stop the stage (not the image's fault)."""
WARNINGS_LOGGED = 50
"""Images whose Pillow warnings are logged one line each; the rest are counted."""
CHANGED = "the file changed while it was read"


@dataclass(frozen=True)
class Work:
    """One image of the source and the labels to check against it."""

    id: str
    path: str
    width: int | None
    height: int | None
    normalized: bool
    annotations: list[Annotation]
    origin: str
    annotators: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kept:
    """An image that stays: the frame its labels are in, and the labels in pixels."""

    frame: Literal["displayed", "stored"]
    annotations: list[Annotation]


def decide(work: Work, result: Result, setting: str) -> Kept | Failed:
    """Whether an image stays, given its labels; a removal when it does not.

    Args:
        work: The image and its labels.
        result: What its file is (a worker's or the cache's result).
        setting: The ``label_frame`` param.
    """
    if isinstance(result, Failed):
        return result
    probed = result.probe
    declared = (work.width, work.height)
    frame = label_frame(probed, declared, bool(work.annotations), setting, work.origin)
    if isinstance(frame, tuple):
        return Failed(*frame)
    if result.broken is not None:
        return Failed(*result.broken)
    annotations = work.annotations
    if work.normalized:
        annotations = to_pixels(annotations, *Checked(probed, frame).label_size)
    if frame == "stored":
        annotations = orient_annotations(
            annotations, probed.orientation, probed.width, probed.height
        )
    return Kept(frame, annotations)


Remove = Callable[[Work, str, str], None]
"""Records a removal: ``(work, reason, detail)``."""
Source = Callable[[Work], tuple[str, str | None]]
"""A kept image's ``source`` URI and ``split``."""


def place(
    store: ImageStore, access: FileAccess, job: Job, result: Probed, data: bytes | None
) -> str | Failed | None:
    """Put an image into the output; its manifest path, a removal, or ``None``: compute it again.

    Args:
        store: The output's image store.
        access: Opens the source's files.
        job: The image's work item.
        result: What its file is.
        data: The bytes a worker sent (``result.data``), if any.

    Raises:
        PixelpipeError: When the output cannot be written (disk full, read-only).
    """
    try:
        if data is not None:
            return store.put_bytes(data, result.ext)[0]
        image = store.link(result.sha256, result.ext)
        if image is not None:
            return image
        local = access.local_path(job.path)
        if local is None:  # a remote image whose object was collected: read it again
            return None
        image, sha = store.put_file(local, result.ext)
    except FileNotFoundError:
        return Failed("missing", MISSING_LOCAL, transient=True)
    except OSError as exc:
        if exc.errno in OUTPUT_FULL:
            raise PixelpipeError(f"cannot write {store.write_dir}: {exc.strerror}") from None
        return Failed("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}", True)
    return image if sha == result.sha256 else None


class Collector:
    """Takes each image's result, in order: removes it or stores it and adds its sample.

    Args:
        out: The output being built.
        store: The output's image store.
        access: Opens the source's files.
        setting: The ``label_frame`` param.
        remove: Records a removal.
        source: A kept image's source URI and split.
        log: Where Pillow's warnings are logged.
        stage: The stage's name, for log lines.
        annotated: Write the ``annotated_by`` column (the labels name their annotators).
    """

    def __init__(
        self,
        out: DatasetBuilder,
        store: ImageStore,
        access: FileAccess,
        setting: str,
        remove: Remove,
        source: Source,
        log: logging.Logger,
        stage: str,
        annotated: bool = False,
    ) -> None:
        self.out = out
        self.store = store
        self.access = access
        self.setting = setting
        self.remove = remove
        self.source = source
        self.log = log
        self.stage = stage
        self.annotated = annotated
        self.rotated = 0
        self.stored_frame = 0
        self.warned = 0

    def take(self, work: Work, job: Job, result: Result, last_try: bool = False) -> bool:
        """Take one image's result; False when it must be computed again.

        Args:
            work: The image and its labels.
            job: Its work item.
            result: What its file is.
            last_try: The result was computed again already: a file that changed once
                more while read is removed (``unreadable``) instead.
        """
        data = None
        if isinstance(result, Probed):
            # dropped now, kept or not: the per-item cache keeps ``result`` after this
            data, result.data = result.data, None
        kept = decide(work, result, self.setting)
        if isinstance(kept, Failed):
            self.remove(work, kept.reason, kept.detail)
            return True
        assert isinstance(result, Probed)
        image = place(self.store, self.access, job, result, data)
        if image is None and last_try:
            image = Failed("unreadable", CHANGED, transient=True)
        if image is None:
            return False
        if isinstance(image, Failed):
            self.remove(work, image.reason, image.detail)
            return True
        probed = result.probe
        self.rotated += probed.orientation != 1
        self.stored_frame += kept.frame == "stored" and probed.orientation != 1
        if result.warnings:
            self.warned += 1
            if self.warned <= WARNINGS_LOGGED:
                line = warnings_line(result.warnings)
                self.log.warning("%s: %s: %s", self.stage, work.id, line)
        width, height = probed.displayed
        source, split = self.source(work)
        self.out.add(
            Sample(
                id=work.id,
                image=image,
                sha256=result.sha256,
                width=width,
                height=height,
                source=source,
                split=split,
                annotations=kept.annotations,
                extra={ORIENTATION_COLUMN: probed.orientation}
                | ({ANNOTATED_BY_COLUMN: list(work.annotators)} if self.annotated else {}),
            )
        )
        return True


def source_uri(uri: str, root: Path) -> str:
    """Where an image came from: relative to the project when inside it, else as given."""
    path = Path(uri)
    if not path.is_absolute():
        return uri
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
