"""The stage's side of the image work: what goes to the workers, what comes back, what is kept.

Images are checked, and report thumbnails drawn, by :class:`~stages._validate.workers.Guarded`
chunks on the executor's workers, through ``ctx.cached_map``: an image whose content,
extension and image rules are unchanged since an earlier run is not read again. A check's
report is cached by the image's sha256 and extension, salted with the image rules; a
thumbnail by the image's sha256 and the boxes drawn, salted with its size and the pixel
limit. Results that say more about this run than about the image (a time-out, a crash, a
file that could not be read, memory that ran out) are never cached.

Workers get an image as :data:`pixelpipe.Pixels` (``ctx.pixels``: the bytes when they do
not share the project's disk), made here only for the images not found in the cache. A
colour-converted copy comes back as bytes; it is stored here (``ctx.images.put_bytes``) and
its bytes dropped from the report before the cache writes it, so the cache holds the
copy's sha256 only, and a later run links the stored copy (``ctx.images.link``), or
converts it again when the object store no longer has it.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pixelpipe import StageContext, chunk_size
from pixelpipe.dataset.images import is_url
from stages._validate.findings import Finding
from stages._validate.guard import Outcome
from stages._validate.images import ImageConfig, ImageReport, ImageTask
from stages._validate.report import placeholder
from stages._validate.rules import CRASH, TIMEOUT
from stages._validate.tasks import ThumbTask
from stages._validate.workers import Guarded

CHECKS = "validate.images"
"""Cache namespace of the image rules' reports."""
THUMBNAILS = "validate.thumbnails"
"""Cache namespace of the report's thumbnails."""
_RUN_TASK = "stages._validate.tasks:run_task"
_PATH_CHUNK = 256
"""Most images per chunk when workers read them from the shared disk or a URL..."""
_BYTES_CHUNK = 16
"""...and when their bytes travel with the chunk."""

Task = TypeVar("Task", ImageTask, ThumbTask)
Converted = tuple[str, str]
"""``(sha256, extension)`` of a colour-converted copy."""


def outcome_report(outcome: Outcome[Any]) -> ImageReport:
    """The report of a guarded check: its own, or a ``timeout``/``crash`` finding."""
    if outcome.status == "ok" and isinstance(outcome.value, ImageReport):
        return outcome.value
    if outcome.status == "timeout":
        return ImageReport(
            findings=[Finding(TIMEOUT, "error", f"checking the image {outcome.detail}")]
        )
    what = "an unexpected error" if outcome.status == "error" else "a crash"
    return ImageReport(
        findings=[Finding(CRASH, "error", f"checking the image ended in {what}: {outcome.detail}")]
    )


def _lasting_report(outcome: Outcome[Any]) -> bool:
    """Whether a check's outcome is the image's and the rules' alone (may be cached)."""
    return (
        outcome.status == "ok"
        and isinstance(outcome.value, ImageReport)
        and not outcome.value.transient
    )


def _lasting_thumbnail(outcome: Outcome[Any]) -> bool:
    return outcome.status == "ok"


def _check_key(task: ImageTask) -> tuple[str, str]:
    return task.sha256, task.suffix


def _thumbnail_key(task: ThumbTask) -> object:
    return task.sha256, task.boxes


@dataclass
class ImageWork:
    """The guarded image work of one validate run.

    Attributes:
        ctx: The stage's context.
        config: The image rules and the thumbnail size (sent to every guarded process).
        time_limit: Seconds one image may take.
        memory_limit_mb: Address space a guarded process may add; 0 for no limit.
    """

    ctx: StageContext
    config: ImageConfig
    time_limit: float
    memory_limit_mb: int

    @property
    def fn(self) -> Guarded:
        """The chunk function the executor runs."""
        return Guarded(_RUN_TASK, (self.config,), self.time_limit, self.memory_limit_mb)

    @property
    def largest_chunk(self) -> int:
        """Most images per chunk: fewer when their bytes travel with it."""
        return _PATH_CHUNK if self.ctx.executor.shared_disk else _BYTES_CHUNK

    def with_pixels(self, task: Task) -> Task:
        """The task with what its worker reads: ``ctx.pixels``, or why there is nothing.

        Runs here, in the stage's process, for the images not found in the cache only.
        A file that is not a regular file (a FIFO would block this process) is not read.
        """
        ctx = self.ctx
        try:
            local = not ctx.executor.shared_disk and not is_url(task.image)
            if local and not stat.S_ISREG(ctx.resolve(task.image).stat().st_mode):
                return replace(task, unreadable="cannot read the file: not a regular file")
            return replace(task, pixels=ctx.pixels(task.image))
        except FileNotFoundError:
            return replace(task, unreadable=f"file not found: {task.image}")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return replace(task, unreadable=f"cannot read the file: {reason}")

    def check(self, rows: list[dict[str, Any]]) -> tuple[list[ImageReport], dict[Converted, str]]:
        """The image rules' report of every row, in order, and where converted copies are.

        Returns:
            The reports, and the manifest path of each converted copy by its
            ``(sha256, extension)``.
        """
        ctx = self.ctx
        tasks = [ImageTask(row["image"], row["sha256"]) for row in rows]
        salt = tuple(
            (rule_id, rule.model_dump_json()) for rule_id, rule in sorted(self.config.rules.items())
        )
        placed: dict[Converted, str] = {}
        reports: list[ImageReport] = []
        with ctx.progress(len(tasks), "checking images") as advance:
            outcomes = ctx.cached_map(
                CHECKS,
                salt,
                self.fn,
                tasks,
                _check_key,
                advance=advance,
                largest_chunk=self.largest_chunk,
                keep=_lasting_report,
                prepare=self.with_pixels,
            )
            for outcome in outcomes:
                report = outcome_report(outcome)
                self._store(report, placed)
                reports.append(report)
        again = [
            index
            for index, report in enumerate(reports)
            if report.converted is not None and not self._link(report.converted, placed)
        ]
        if again:  # cached conversions whose copy was collected from the object store
            ctx.log.info("%d colour conversions made again: copies were collected", len(again))
            redo = [self.with_pixels(tasks[index]) for index in again]
            size = chunk_size(len(redo), ctx.executor.workers, self.largest_chunk)
            for index, outcome in zip(
                again, ctx.executor.map_chunks(self.fn, redo, size), strict=True
            ):
                reports[index] = outcome_report(outcome)
                self._store(reports[index], placed)
        return reports, placed

    def _store(self, report: ImageReport, placed: dict[Converted, str]) -> None:
        """Store a converted copy that came back from a worker; drop its bytes from the report.

        The report is the very object the cache writes once its block of results has been
        consumed, so the cache keeps the copy's sha256 and not its bytes.
        """
        if report.encoded is None or report.converted is None:
            return
        path, sha = self.ctx.images.put_bytes(report.encoded, report.converted[1])
        if sha != report.converted[0]:  # cannot happen: the worker hashed these bytes
            raise RuntimeError(f"converted copy stored as {sha}, expected {report.converted[0]}")
        placed[report.converted] = path
        report.encoded = None

    def _link(self, converted: Converted, placed: dict[Converted, str]) -> bool:
        """Whether the copy is in this output (stored now, or linked from the object store)."""
        if converted in placed:
            return True
        path = self.ctx.images.link(*converted)
        if path is None:
            return False
        placed[converted] = path
        return True

    def thumbnails(self, tasks: list[ThumbTask]) -> list[str]:
        """Each thumbnail's data URI, or a placeholder saying why it was not drawn."""
        outcomes = self.ctx.cached_map(
            THUMBNAILS,
            (self.config.thumbnail_size, self.config.max_pixels),
            self.fn,
            tasks,
            _thumbnail_key,
            largest_chunk=self.largest_chunk,
            keep=_lasting_thumbnail,
            prepare=self.with_pixels,
        )
        return [
            str(outcome.value)
            if outcome.status == "ok"
            else placeholder(f"not drawn: {outcome.status}")
            for outcome in outcomes
        ]
