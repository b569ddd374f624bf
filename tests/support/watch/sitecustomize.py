"""Watches the worker processes of a test (a Dask cluster's, and the processes they start).

Put this folder on ``PYTHONPATH`` and set ``PIXELPIPE_TEST_WATCH_LOG`` (a log file) and
``PIXELPIPE_TEST_FORBIDDEN`` (the project folder). Each process started after that logs:

- ``watching PID`` when it starts (so the test sees the hook was on);
- ``forbidden PATH`` for any file it opens under the project folder, which is refused with
  ``PermissionError``, as on a machine without the project's disk;
- ``decode SHA PPID`` for every ``PIL.Image.open`` of bytes (``SHA`` is the type's name for
  anything else), with the parent process that started it.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from typing import Any

_LOG = os.environ.get("PIXELPIPE_TEST_WATCH_LOG")
_ROOT = os.environ.get("PIXELPIPE_TEST_FORBIDDEN", "")


def _note(line: str) -> None:
    assert _LOG is not None
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def _refuse(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not args or not isinstance(args[0], str | bytes | os.PathLike):
        return
    path = os.path.abspath(os.fsdecode(args[0]))
    if _ROOT and path.startswith(_ROOT + os.sep):
        _note(f"forbidden {path}")
        raise PermissionError(f"a worker may not touch the project: {path}")


if _LOG:
    _note(f"watching {os.getpid()}")
    sys.addaudithook(_refuse)
    from PIL import Image

    _real_open = Image.open

    def _open(fp: Any, *args: Any, **kwargs: Any) -> Any:
        data = fp.getvalue() if isinstance(fp, io.BytesIO) else None
        sha = hashlib.sha256(data).hexdigest() if data is not None else type(fp).__name__
        _note(f"decode {sha} {os.getppid()}")
        return _real_open(fp, *args, **kwargs)

    Image.open = _open  # type: ignore[assignment]
