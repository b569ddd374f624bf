"""Label Studio JSON: read exports (annotations or predictions), write tasks to review.

Label Studio stores coordinates as percent (0-100) of the image, top-left origin. The
reader (:mod:`~pixelpipe.formats.labelstudio.reader`) reads a JSON export's tasks into
normalized items, each region with its annotator (an annotation's ``completed_by``, a
prediction's ``model_version``), its result id (``ls_id``) and, for predictions, its
``score``. The writer (:mod:`~pixelpipe.formats.labelstudio.writer`) turns samples into
tasks with predictions (or annotations) to import, and writes the labelling config those
tasks need; what it writes reads back to the same pixels. Its
:func:`~pixelpipe.formats.labelstudio.writer.write` writes an export folder to review
(``tasks.json``, ``label_config.xml``, ``images/<sample id>``; splits as ``data.split``).
"""

from pixelpipe.formats.labelstudio.reader import (
    NAME,
    PREDICTION,
    annotator_name,
    discover,
    looks_like,
    model_name,
    read,
    url_to_path,
)
from pixelpipe.formats.labelstudio.writer import (
    BOXES,
    CHOICES,
    CONFIG,
    IMAGE,
    LOCAL_FILES,
    POLYGONS,
    RESERVED,
    SPLIT,
    TASKS,
    annotation_index,
    image_url,
    label_config,
    region_id,
    task,
    write,
    write_tasks,
)

__all__ = [
    "BOXES",
    "CHOICES",
    "CONFIG",
    "IMAGE",
    "LOCAL_FILES",
    "NAME",
    "POLYGONS",
    "PREDICTION",
    "RESERVED",
    "SPLIT",
    "TASKS",
    "annotation_index",
    "annotator_name",
    "discover",
    "image_url",
    "label_config",
    "looks_like",
    "model_name",
    "read",
    "region_id",
    "task",
    "url_to_path",
    "write",
    "write_tasks",
]
