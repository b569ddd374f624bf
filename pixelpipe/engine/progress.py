"""Progress for long work: a bar on a terminal, plain log lines in CI and in files."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int], None]


def interactive() -> bool:
    """True when a person is watching a terminal (not CI, not a pipe)."""
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def progress(total: int, desc: str, log: logging.Logger) -> Iterator[Advance]:
    """Report progress of ``total`` items; yields ``advance(n)``.

    On a terminal it draws a rich progress bar; otherwise it logs a plain line every
    10 seconds while work goes on, and one at the end.

    Args:
        total: Number of items.
        desc: What is being done (``hashing``).
        log: Where plain lines go.
    """
    if interactive():
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        with bar:
            task = bar.add_task(desc, total=total)
            yield lambda n: bar.advance(task, n)
        log.info("%s: %d/%d", desc, total, total)
        return
    done = 0
    start = last = time.monotonic()

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if done < total and now - last >= 10:
            log.info(
                "%s: %d/%d (%.0f%%, %.0fs)", desc, done, total, 100 * done / total, now - start
            )
            last = now

    yield advance
    log.info("%s: %d/%d done in %.1fs", desc, done, total, time.monotonic() - start)
