"""Progress in CI and pipes: plain log lines, never a bar."""

from __future__ import annotations

import logging

import pytest

from pixelpipe.engine.progress import progress


def test_plain_lines_when_not_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("pixelpipe.test")
    with (
        caplog.at_level(logging.INFO, logger="pixelpipe.test"),
        progress(5, "hashing", log) as advance,
    ):
        for _ in range(5):
            advance(1)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("hashing: 5/5 done in ")
