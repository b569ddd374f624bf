"""Writing Label Studio tasks (import JSON) and the labelling config they need.

:func:`task` turns one sample into a task: ``data`` (the image URL, the sample's id and
sha256, and any extra keys) and one ``predictions`` entry (``model_version``, the lowest
region score as the task's ``score``, so that Label Studio shows the riskiest task first)
or one ``annotations`` entry. Boxes are ``rectanglelabels`` results from ``label``,
polygons ``polygonlabels`` from ``polygon``, whole-image class labels one ``choices``
result from ``class``, all on ``image``; coordinates are percent (0-100) of the image,
top-left origin, written as exact floats, so the reader gives back the same pixels (within
1e-6 px). Result ids are the annotation's index in the sample (``"3"``; the extra parts of
a polygon ``"3.1"``...), which Label Studio keeps when an annotator accepts a prediction.
:func:`write_tasks` writes the tasks atomically, one at a time; :func:`label_config` is
the project's ``<View>`` with the same control names. :func:`write` writes an export folder
to review: ``tasks.json`` (each sample's labels as a completed annotation, its split as
``data.split``), ``label_config.xml`` and ``images/<sample id>``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import Problems, writable, write_atomic
from pixelpipe.formats.imagefolder import is_image_label
from pixelpipe.sources import is_url

IMAGE = "image"
BOXES = "label"
POLYGONS = "polygon"
CHOICES = "class"
RESERVED = (IMAGE, "pixelpipe_id", "pixelpipe_sha256")
"""The ``data`` keys :func:`task` writes itself."""
SPLIT = "split"
"""The ``data`` key :func:`write` puts a sample's split in (the reader reads it back)."""
TASKS = "tasks.json"
CONFIG = "label_config.xml"
IMAGES = "images"
_ID = re.compile(r"^(\d+)(?:\.\d+)?$")


LOCAL_FILES = "/data/local-files/?d="
"""Label Studio's local files: served from ``LOCAL_FILES_DOCUMENT_ROOT`` (the project root)."""


def image_url(image: str, prefix: str = "") -> str:
    """Where Label Studio loads an image from.

    A manifest ``image`` that is a URL is used as it is. A path in the project is put
    after ``prefix`` (a ``/`` added unless it ends with ``/`` or ``=``), or, with an
    empty ``prefix``, after :data:`LOCAL_FILES`: Label Studio then serves it from its
    local-files document root, which must be the project root
    (``LOCAL_FILES_DOCUMENT_ROOT``). The path is percent-encoded (``/`` kept).

    Args:
        image: The manifest's ``image``.
        prefix: What the URLs start with (a bucket, a web server); empty: local files.

    Returns:
        The URL.
    """
    if is_url(image):
        return image
    path = quote(image, safe="/")
    if not prefix:
        return LOCAL_FILES + path
    return prefix + ("" if prefix.endswith(("/", "=")) else "/") + path


def region_id(index: int, part: int = 0) -> str:
    """The result id of annotation ``index`` of a sample (``part`` of a polygon)."""
    return f"{index}.{part}" if part else str(index)


def annotation_index(ls_id: Any) -> int | None:
    """The annotation index a result id written by :func:`task` names, else ``None``.

    Label Studio gives the regions an annotator draws random ids (``"Xa1b2C3d4e"``);
    those name no annotation that was sent.
    """
    found = _ID.match(ls_id) if isinstance(ls_id, str) else None
    return int(found.group(1)) if found else None


def _percent(value: float, size: int) -> float:
    return value / size * 100


def _common(index: int, sample: Sample, part: int = 0) -> dict[str, Any]:
    return {
        "id": region_id(index, part),
        "from_name": BOXES,
        "to_name": IMAGE,
        "original_width": sample.width,
        "original_height": sample.height,
        "image_rotation": 0,
    }


def _box(index: int, sample: Sample, annotation: Annotation, name: str) -> dict[str, Any]:
    x, y, w, h = annotation.bbox
    value = {
        "x": _percent(x, sample.width),
        "y": _percent(y, sample.height),
        "width": _percent(w, sample.width),
        "height": _percent(h, sample.height),
        "rotation": 0,
        "rectanglelabels": [name],
    }
    return {**_common(index, sample), "type": "rectanglelabels", "value": value}


def _polygon(
    index: int, part: int, sample: Sample, points: Sequence[float], name: str
) -> dict[str, Any]:
    pairs = [
        [_percent(points[i], sample.width), _percent(points[i + 1], sample.height)]
        for i in range(0, len(points), 2)
    ]
    value = {"points": pairs, "closed": True, "polygonlabels": [name]}
    result = {**_common(index, sample, part), "type": "polygonlabels", "value": value}
    result["from_name"] = POLYGONS
    return result


def _results(sample: Sample, names: Mapping[int, str], problems: Problems) -> list[dict[str, Any]]:
    """The results of a sample's annotations, in their order; image labels as one result."""
    results: list[dict[str, Any]] = []
    choices: dict[str, Any] | None = None
    for index, annotation in enumerate(sample.annotations):
        name = names.get(annotation.category_id)
        if name is None:
            problems.add(
                f"category id {annotation.category_id} is not in the class map",
                sample.id,
                None,
                f"annotations[{index}]",
            )
            continue
        if not writable(sample.id, index, annotation, problems):
            continue
        score = annotation.score
        if is_image_label(annotation):
            if choices is None:
                value: dict[str, Any] = {"choices": []}
                choices = {
                    "id": region_id(index),
                    "type": "choices",
                    "from_name": CHOICES,
                    "to_name": IMAGE,
                    "value": value,
                }
                results.append(choices)
            choices["value"]["choices"].append(name)
            if score is not None:
                choices["score"] = min(score, choices.get("score", score))
            continue
        made = (
            [_polygon(index, p, sample, pts, name) for p, pts in enumerate(annotation.polygons)]
            if annotation.polygons
            else [_box(index, sample, annotation, name)]
        )
        for result in made:
            if score is not None:
                result["score"] = score
        results += made
    return results


def task(
    sample: Sample,
    names: Mapping[int, str],
    image_url: str,
    *,
    model_version: str | None,
    as_predictions: bool = True,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One Label Studio task for a sample: its image, and its labels to review.

    Every annotation of the sample is written (select the model's or an annotator's
    before). A box is a ``rectanglelabels`` result, a polygon one ``polygonlabels`` result
    per part, a mask (RLE without polygons) its box; whole-image class labels are one
    ``choices`` result listing them (its score the lowest of theirs). Each result carries
    the annotation's ``score`` when it has one, 0.0 included; in a prediction that has a
    score, a result without one has ``"score": null`` (a result without the key would
    take the prediction's score when read).

    Args:
        sample: The sample; its width and height turn pixels into percent.
        names: Category id to class name (the names of :func:`label_config`).
        image_url: The URL Label Studio loads the image from.
        model_version: The model's name (the prediction's ``model_version``); ``None``
            writes none (the reader then names the annotator ``prediction``).
        as_predictions: Write the labels as a prediction (reviewers see them as a
            model's suggestion); false writes them as an annotation.
        data: More ``data`` keys to show or filter on in Label Studio.

    Returns:
        The task, ready for :func:`write_tasks`.

    Raises:
        PixelpipeError: Listing every problem: a category id without a name, a box,
            polygon or score that is not a finite number, a polygon part of fewer than 3
            points, a sample without a positive size, ``data`` keys that clash with
            those written.
    """
    problems = Problems()
    if sample.width <= 0 or sample.height <= 0:
        problems.add(f"the size {sample.width}x{sample.height} is not positive", sample.id)
        problems.raise_if_any()
    clash = sorted(set(data or {}) & set(RESERVED))
    if clash:
        problems.add(
            f"data keys {', '.join(clash)} are written by pixelpipe", sample.id, None, "data"
        )
    results = _results(sample, names, problems)
    problems.raise_if_any()
    task_data = {IMAGE: image_url, "pixelpipe_id": sample.id, "pixelpipe_sha256": sample.sha256}
    task_data.update(data or {})
    if not as_predictions:
        return {"data": task_data, "annotations": [{"result": results}]}
    prediction: dict[str, Any] = {}
    if model_version is not None:
        prediction["model_version"] = model_version
    scores = [r["score"] for r in results if "score" in r]
    if scores:
        prediction["score"] = min(scores)
        for result in results:  # else the reader gives it the prediction's score
            result.setdefault("score", None)
    prediction["result"] = results
    return {"data": task_data, "predictions": [prediction]}


def write_tasks(path: Path, tasks: Iterable[dict[str, Any]]) -> None:
    """Write tasks as Label Studio's import JSON: a list, one task a line, UTF-8.

    Keys are sorted and floats written as Python's shortest exact text, so the same tasks
    give the same bytes. The tasks are written one at a time (a generator is never held
    whole) into a file beside ``path``, renamed into place once all are written.

    Args:
        path: The file to write (its folder is created).
        tasks: The tasks, from :func:`task`.

    Raises:
        PixelpipeError: When a task holds a value JSON cannot write (NaN, an object);
            ``path`` is then left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with staged.open("w", encoding="utf-8", newline="\n") as stream:
            first = True
            for made in tasks:
                try:
                    line = json.dumps(
                        made,
                        sort_keys=True,
                        ensure_ascii=False,
                        allow_nan=False,
                        separators=(",", ":"),
                    )
                except (TypeError, ValueError) as exc:
                    raise PixelpipeError(
                        f"{path}: a task cannot be written as JSON: {exc}"
                    ) from None
                stream.write(("[\n" if first else ",\n") + line)
                first = False
            stream.write("[]\n" if first else "\n]\n")
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def label_config(
    classes: Sequence[str], choices: bool = False, *, polygons: bool = False, multiple: bool = False
) -> str:
    """The labelling config of a project the tasks of :func:`task` go to.

    An ``Image`` named ``image`` showing ``$image``, ``RectangleLabels`` named ``label``
    with one ``Label`` per class and, as asked, ``PolygonLabels`` named ``polygon`` and
    ``Choices`` named ``class`` (whole-image labels) with the same classes.

    Args:
        classes: The class names, in the order shown.
        choices: Add the whole-image ``Choices``.
        polygons: Add the ``PolygonLabels`` (needed when a task holds a polygon).
        multiple: Let a reviewer choose several whole-image classes (else one).

    Returns:
        The XML text, one element a line.

    Raises:
        PixelpipeError: When there is no class, or a name is empty or repeated.
    """
    problems = Problems()
    if not classes:
        problems.add("a labelling config needs at least one class")
    seen: set[str] = set()
    for index, name in enumerate(classes):
        if not name.strip():
            problems.add("a class name is empty", key=f"classes[{index}]")
        elif name in seen:
            problems.add(f"class {name!r} is listed twice", key=f"classes[{index}]")
        seen.add(name)
    problems.raise_if_any()
    lines = ["<View>", f'  <Image name="{IMAGE}" value="${IMAGE}"/>']
    controls = [("RectangleLabels", BOXES, "Label", "")]
    if polygons:
        controls.append(("PolygonLabels", POLYGONS, "Label", ""))
    if choices:
        kind = "multiple" if multiple else "single"
        controls.append(("Choices", CHOICES, "Choice", f' choice="{kind}"'))
    for tag, name, child, extra in controls:
        lines.append(f'  <{tag} name="{name}" toName="{IMAGE}"{extra}>')
        lines += [f"    <{child} value={quoteattr(c)}/>" for c in classes]
        lines.append(f"  </{tag}>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def write(
    samples: Sequence[Sample],
    categories: Sequence[Category],
    out: Path,
    copy_image: Callable[[Sample, Path], bool],
    image_url_prefix: str = "",
) -> dict[str, int]:
    """Write a Label Studio export folder to review into ``out``.

    ``tasks.json`` holds one task per sample (:func:`task`), its labels as a completed
    annotation (reviewers correct them, and Label Studio's JSON export reads back as
    ``labelstudio``), its split as ``data.split`` so reviewers can filter by it, and its
    image at ``image_url("images/<id>", image_url_prefix)``; ``label_config.xml`` is the
    project's labelling config (the classes in id order, ``PolygonLabels`` when a sample
    has a polygon, whole-image ``Choices`` when one has an image label, several of them
    allowed when one has two or more); ``images/<sample id>`` holds the images. With an
    empty prefix the URLs are Label Studio's local files
    (``/data/local-files/?d=images/<id>``): serve the folder with
    ``LOCAL_FILES_SERVING_ENABLED=true`` and ``LOCAL_FILES_DOCUMENT_ROOT`` set to it.
    Scores are written on the results; Label Studio reads them from predictions only.

    Args:
        samples: The samples, in id order.
        categories: The class map.
        out: The folder to write.
        copy_image: Copies a sample's image to a path; returns False when there is none.
        image_url_prefix: What image URLs start with (a bucket, a web server holding the
            folder); empty: Label Studio's local files.

    Returns:
        Counts: ``images`` (files written), ``boxes``, ``polygons`` (one per part),
        ``image_labels`` and ``masks_as_boxes`` (masks without polygons, among ``boxes``).

    Raises:
        PixelpipeError: Before anything is written, listing every problem: a class map
            Label Studio cannot show (no class, a name empty or repeated), a sample that
            :func:`task` refuses.
    """
    names = {c.id: c.name for c in sorted(categories, key=lambda c: c.id)}
    classes = list(names.values())
    label_config(classes)  # refuses a class map it cannot show, before anything is written

    def made(sample: Sample) -> dict[str, Any]:
        url = image_url(f"{IMAGES}/{sample.id}", image_url_prefix)
        data = {SPLIT: sample.split} if sample.split else None
        return task(sample, names, url, model_version=None, as_predictions=False, data=data)

    problems = Problems()
    counts: Counter[str] = Counter(boxes=0, polygons=0, image_labels=0, masks_as_boxes=0)
    multiple = False
    for sample in samples:
        try:
            made(sample)
        except PixelpipeError as exc:
            problems.extend(exc)
            continue
        labels = sum(1 for a in sample.annotations if is_image_label(a))
        multiple = multiple or labels > 1
        counts["image_labels"] += labels
        for annotation in sample.annotations:
            if is_image_label(annotation):
                continue
            if annotation.polygons:
                counts["polygons"] += len(annotation.polygons)
            else:
                counts["boxes"] += 1
                counts["masks_as_boxes"] += int(annotation.rle is not None)
    problems.raise_if_any()
    write_tasks(out / TASKS, (made(sample) for sample in samples))
    config = label_config(
        classes,
        counts["image_labels"] > 0,
        polygons=counts["polygons"] > 0,
        multiple=multiple,
    )
    write_atomic(out / CONFIG, config)
    images = sum(1 for sample in samples if copy_image(sample, out / IMAGES / sample.id))
    return {"images": images, **counts}
