"""YOLO: read the Ultralytics and Darknet layouts, write the Ultralytics one.

Layouts read:

- Ultralytics: a YAML file (``data.yaml``, or any YAML at the root with ``names``) whose
  ``train``/``val``/``test`` name image folders or list files, relative to its folder
  (or to ``path`` inside it); labels are found by replacing the last ``images`` folder
  of an image's path by ``labels`` and its extension by ``.txt``, else next to the image.
- Darknet: ``obj.data`` with ``names``, ``train``, ``valid`` (list files); paths written
  ``data/...`` are relative to the dataset folder. Labels sit next to the images.
- Loose: a names file (``obj.names``, ``classes.txt``, ``*.names``) and images anywhere;
  a folder called ``train``/``val``/``test`` on the way gives the split.

Each label line is ``class cx cy w h`` (a box; a sixth number is a score), or
``class x1 y1 x2 y2 ...`` (a polygon, at least 3 points), all normalized to [0, 1] by
the displayed image's width and height (after EXIF orientation, as Ultralytics does).
pixelpipe converts ``[x, y, w, h] = [(cx - w/2) W, (cy - h/2) H, w W, h H]``. Class
indices are the category ids. Values out of [0, 1] are kept as read (``validate``
reports them). A label file without its image becomes a ``missing`` removal; an image
without a label file is a sample without labels (counted in ``images_without_labels``).

Writing: ``data.yaml`` (``train``/``val``/``test``, ``nc``, ``names`` as a mapping),
``images/<split>/<id>`` and ``labels/<split>/<id stem>.txt``. Boxes are clipped to the
image and written with the shortest digits that read back exactly.

Modules: :mod:`~pixelpipe.formats.yolo.config` finds and parses the file that describes
the dataset (``data.yaml``, ``obj.data`` or a names file) into its classes, splits and
label folders; :mod:`~pixelpipe.formats.yolo.reader` parses label files and reads a tree
into a :class:`~pixelpipe.formats.base.LabelSet`; :mod:`~pixelpipe.formats.yolo.writer`
writes the Ultralytics layout.
"""

from pixelpipe.formats.yolo.config import NAMES_FILES, SPLIT_KEYS, find_config
from pixelpipe.formats.yolo.reader import NAME, label_candidates, parse_labels, read
from pixelpipe.formats.yolo.writer import YoloTask, label_lines, write

__all__ = [
    "NAME",
    "NAMES_FILES",
    "SPLIT_KEYS",
    "YoloTask",
    "find_config",
    "label_candidates",
    "label_lines",
    "parse_labels",
    "read",
    "write",
]
