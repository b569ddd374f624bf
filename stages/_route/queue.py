"""The review queue: Label Studio tasks, a CVAT for images 1.1 file, the list of what was sent."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelpipe import Category, Sample
from pixelpipe.formats.cvat.writer import write_xml
from pixelpipe.formats.labelstudio.writer import image_url, task, write_tasks

QUEUE_LABEL_STUDIO = "review/labelstudio.json"
QUEUE_CVAT = "review/cvat.xml"


def write_queue(
    out: Path,
    queue: Sequence[tuple[Sample, list[str]]],
    names: dict[int, str],
    prefix: str,
    model: str | None,
) -> dict[str, dict[str, Any]]:
    """Write the queue in both tools' formats; return what was sent, by image id.

    Args:
        out: The stage's output folder.
        queue: Each image to review with its routed labels, and each label's band.
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
            data={"pixelpipe_bands": bands},
        )
        for sample, bands in ordered
    ]
    write_tasks(out / QUEUE_LABEL_STUDIO, tasks)
    categories = [Category(i, n) for i, n in sorted(names.items())]
    write_xml(out / QUEUE_CVAT, [s for s, _ in ordered], categories, lambda s: s.id)
    sent: dict[str, dict[str, Any]] = {}
    for sample, bands in ordered:
        routed = [a for a in sample.annotations if a.score is not None]
        sent[sample.id] = {
            "sha256": sample.sha256,
            "image": sample.image,
            "width": sample.width,
            "height": sample.height,
            "boxes": [
                {
                    "class": names.get(a.category_id, str(a.category_id)),
                    "bbox": list(a.bbox),
                    "score": a.score,
                    "band": band,
                }
                for a, band in zip(routed, bands, strict=False)
            ],
        }
    return sent
