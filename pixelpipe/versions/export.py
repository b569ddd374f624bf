"""Export the published dataset of a version to a folder (:func:`get`), checked by digest.

The workspace is not touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pixelpipe.dataset import Dataset
from pixelpipe.engine.compile import DATA_DIR
from pixelpipe.errors import PixelpipeError
from pixelpipe.versions.restore import remove
from pixelpipe.versions.target import resolve


@dataclass(frozen=True)
class Export:
    """What :func:`get` wrote.

    Attributes:
        label: The version or revision.
        stage: The stage whose output was exported.
        digest: The dataset's digest (checked against its contents).
        samples: Its sample count.
        path: Where it was written.
    """

    label: str
    stage: str
    digest: str
    samples: int
    path: Path


def get(root: Path, name: str, out: Path) -> Export:
    """Export the published dataset of version ``name`` to ``out``.

    The workspace is not touched.

    Args:
        root: The project.
        name: A version, a git revision, or ``workspace``.
        out: A folder that does not exist yet (or is empty).

    Raises:
        PixelpipeError: On an unknown version, a non-empty ``out``, data that cannot be
            fetched, or contents that do not match the version's digest.
    """
    target = resolve(root, name)
    stage = target.stage
    out = out.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PixelpipeError(f"{out} exists and is not an empty folder; choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.get-{os.getpid()}")
    remove(tmp)
    try:
        target.get(f"{DATA_DIR}/{stage}", tmp)
        data = Dataset(tmp)
        data.verify(f"{DATA_DIR}/{stage} of {name}")
        digest = data.digest
        expected = target.version.digest if target.version else digest
        if digest != expected:
            raise PixelpipeError(
                f"{DATA_DIR}/{stage} of {name} does not match its digest "
                f"({digest[:19]} != {expected[:19]})"
            )
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        remove(tmp)
    return Export(label=name, stage=stage, digest=digest, samples=len(data), path=out)
