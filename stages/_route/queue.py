"""The review queue: Label Studio tasks, a CVAT for images 1.1 file, the list of what was sent."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelpipe import Category, Sample
from pixelpipe.formats.base import write_atomic
from pixelpipe.formats.cvat.writer import write_xml
from pixelpipe.formats.labelstudio.writer import image_url, label_config, task, write_tasks

QUEUE_LABEL_STUDIO = "review/labelstudio.json"
QUEUE_CVAT = "review/cvat.xml"
QUEUE_CONFIG = "review/labelstudio-config.xml"


def write_queue(
    out: Path,
    queue: Sequence[tuple[Sample, list[str], str]],
    names: dict[int, str],
    prefix: str,
    model: str | None,
) -> dict[str, dict[str, Any]]:
    """Write the queue in both tools' formats; return what was sent, by image id.

    Args:
        out: The stage's output folder.
        queue: Each image to review with the model's boxes, each box's band, and why it
            was sent (``review`` or ``audit``).
        names: Class id to name.
        prefix: What the tools' image paths start with.
        model: The model's name (Label Studio's ``model_version``).
    """
    ordered = sorted(queue, key=lambda pair: pair[0].id)
    tasks = [
        task(
            sample,
            names,
            image_url(sample.image, prefix),
            model_version=model or "model",
            data={"pixelpipe_bands": bands, "pixelpipe_sent_for": why},
        )
        for sample, bands, why in ordered
    ]
    write_tasks(out / QUEUE_LABEL_STUDIO, tasks)
    write_atomic(out / QUEUE_CONFIG, label_config([n for _, n in sorted(names.items())]))
    categories = [Category(i, n) for i, n in sorted(names.items())]
    write_xml(out / QUEUE_CVAT, [s for s, _, _ in ordered], categories, lambda s: s.id)
    sent: dict[str, dict[str, Any]] = {}
    for sample, bands, why in ordered:
        sent[sample.id] = {
            "sha256": sample.sha256,
            "image": sample.image,
            "width": sample.width,
            "height": sample.height,
            "sent_for": why,
            "boxes": [
                {
                    "class": names.get(a.category_id, str(a.category_id)),
                    "bbox": list(a.bbox),
                    "score": a.score,
                    "band": band,
                }
                for a, band in zip(sample.annotations, bands, strict=True)
            ],
        }
    return sent
