"""What a step's context gives workers to read: URLs, paths, or bytes and read errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixelpipe import open_pixels, read_pixels
from pixelpipe.engine.context import StageContext
from pixelpipe.engine.executor import SerialExecutor


class ElsewhereExecutor(SerialExecutor):
    """Runs in-process, but says its workers do not share the project's disk."""

    shared_disk = False


def context(root: Path, shared: bool) -> StageContext:
    return StageContext(
        stage="s",
        kind="s",
        root=root,
        output_dir=root / "out",
        final_dir="data/s",
        configs={},
        seed=0,
        executor=SerialExecutor() if shared else ElsewhereExecutor(),
    )


def test_workers_with_the_disk_get_paths_and_others_the_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"jpeg bytes")
    assert context(tmp_path, True).pixels("a.jpg") == str(tmp_path / "a.jpg")
    assert context(tmp_path, False).pixels("a.jpg") == b"jpeg bytes"
    url = "s3://bucket/a.jpg"
    assert context(tmp_path, False).pixels(url) == url  # read by the worker, through fsspec
    assert read_pixels(context(tmp_path, True).pixels("a.jpg")) == b"jpeg bytes"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, r"No such file"),  # gone since the manifest was written
        (lambda p: os.mkfifo(p), r"not a regular file"),  # would block the runner
    ],
)
def test_a_file_the_runner_cannot_read_fails_in_the_worker(
    tmp_path: Path, make: object, message: str
) -> None:
    make(tmp_path / "a.jpg")  # type: ignore[operator]
    sent = context(tmp_path, False).pixels("a.jpg")
    assert isinstance(sent, OSError)
    with pytest.raises(OSError, match=message):
        open_pixels(sent)
