"""The selected images as Label Studio tasks, most uncertain first.

Each task is made by the Label Studio writer (:func:`pixelpipe.formats.labelstudio.task`)
from the image and the predictions that scored it, as one prediction per task; its
``score`` is ``1 - uncertainty``, so Label Studio, which shows the lowest score first,
shows the most uncertain image first. The task's ``data`` also carries
``pixelpipe_uncertainty`` and ``pixelpipe_rank`` (1 = most uncertain) to sort and filter on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelpipe import Annotation, Sample
from pixelpipe.formats.labelstudio import image_url, task, write_tasks

BATCH_FILE = "batch/labelstudio.json"
"""Where the tasks go, in the stage's output folder."""
"""Label Studio's local-files URL; the rest is the path under its document root."""
NO_MODEL = "none"
"""``model_version`` of a task whose image has no prediction."""


def tasks(
    samples: Sequence[tuple[Sample, list[Annotation], float]],
    names: Mapping[int, str],
    *,
    model: str | None,
    image_prefix: str,
) -> list[dict[str, Any]]:
    """One task per selected image, in the order given (the rank).

    Args:
        samples: Each selected image, the predictions that scored it, its uncertainty.
        names: Category id to class name.
        model: The ``model`` param; ``None``: each task names the models of its
            predictions (sorted, joined by ``,``), or :data:`NO_MODEL`.
        image_prefix: The ``image_prefix`` param (see :func:`image_url`).

    Returns:
        The tasks.
    """
    out: list[dict[str, Any]] = []
    for rank, (sample, predictions, uncertainty) in enumerate(samples, start=1):
        version = model
        if version is None:
            found = sorted({a.annotator or "" for a in predictions} - {""})
            version = ",".join(found) or NO_MODEL
        made = task(
            dataclasses.replace(sample, annotations=predictions),
            names,
            image_url(sample.image, image_prefix),
            model_version=version,
            data={"pixelpipe_uncertainty": uncertainty, "pixelpipe_rank": rank},
        )
        made["predictions"][0]["score"] = 1.0 - uncertainty
        out.append(made)
    return out


def write(path: Path, made: list[dict[str, Any]]) -> None:
    """Write the tasks as Label Studio's import JSON (see :func:`tasks`)."""
    write_tasks(path, made)
