"""Counts image decodes in every Python process of a test run (``dvc repro`` and workers).

Put this folder on ``PYTHONPATH`` and set ``PIXELPIPE_TEST_DECODES`` to a log file: each
``PIL.Image.open`` appends the sha256 of the bytes it opens, one line, so a test can tell
exactly which images a run decoded. Instrumentation only: the real function runs.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

_LOG = os.environ.get("PIXELPIPE_TEST_DECODES")


def _content(fp: Any) -> bytes | None:
    if isinstance(fp, str | bytes | os.PathLike):
        with open(fp, "rb") as stream:
            return stream.read()
    if isinstance(fp, io.BytesIO):
        return fp.getvalue()
    if hasattr(fp, "read") and hasattr(fp, "seek") and hasattr(fp, "tell"):
        where = fp.tell()
        fp.seek(0)
        data = fp.read()
        fp.seek(where)
        return bytes(data)
    return None


if _LOG:
    from PIL import Image

    _real_open = Image.open

    def _counted_open(fp: Any, *args: Any, **kwargs: Any) -> Any:
        data = _content(fp)
        line = hashlib.sha256(data).hexdigest() if data is not None else "unknown"
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(line + "\n")
        return _real_open(fp, *args, **kwargs)

    Image.open = _counted_open  # type: ignore[assignment]
