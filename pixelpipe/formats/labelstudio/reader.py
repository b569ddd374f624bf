"""Reading Label Studio JSON exports: tasks, their image, each annotator's regions.

A JSON export is a list of tasks (a single task object is accepted too). Each task names
its image in ``data`` and holds one entry of ``annotations`` per annotator. Rectangles
(``rectanglelabels``) and polygons (``polygonlabels``) are percentages (0-100) of the
image, top-left origin; they are read as fractions (``percent / 100``) on a ``normalized``
:class:`~pixelpipe.formats.base.Item`, with the declared ``original_width`` and
``original_height`` as its size. ``choices`` are whole-image class labels. Cancelled
annotations (the annotator skipped the task) are not read, only counted; an annotation
with an empty result records that its annotator saw the image and labelled nothing
(:attr:`~pixelpipe.formats.base.Item.annotators`). With ``ReadOptions.predictions`` the
tasks' ``predictions`` are read instead of their ``annotations`` (the annotator is the
model's ``model_version``, each region keeps its ``score``, 0.0 included, else takes the
prediction's; an explicit ``null`` is no score); otherwise they are only counted. A
task's ``data.split`` (text, as :func:`~pixelpipe.formats.labelstudio.writer.write` puts
it) is its item's split.
:func:`url_to_path` turns the URLs Label Studio writes into relative paths, and an
:class:`~pixelpipe.formats.base.ImageFinder` maps them to the tree's files.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pixelpipe.dataset import Annotation
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import (
    Item,
    LabelSet,
    ReadOptions,
    Removal,
    canonical_split,
)
from pixelpipe.formats.coco.document import decode
from pixelpipe.formats.imagefolder import image_label
from pixelpipe.formats.labelstudio.writer import SPLIT
from pixelpipe.formats.named import NamedReader, label_files
from pixelpipe.sources import Tree, is_url, public_url, safe_relative

NAME = "labelstudio"
_UPLOAD = re.compile(r"^data/upload/\d+/")
_UPLOAD_PREFIX = re.compile(r"^[0-9a-fA-F]{8}-(?=.)")
_PEEK = 1 << 16
_SIZE_KEYS = ("original_width", "original_height")
_NOT_DONE = "ls_tasks_not_annotated"
PREDICTION = "prediction"
"""The annotator of a prediction without a ``model_version``."""


def url_to_path(url: str, keep_prefix: bool = False) -> str:
    """The relative path a Label Studio image URL names.

    ``/data/local-files/?d=images/a.jpg`` is ``images/a.jpg`` (the ``d`` parameter);
    ``/data/upload/3/1a2b3c4d-a.jpg`` is ``a.jpg`` (Label Studio's upload folder and the
    eight hex digits it puts before the name are dropped); ``s3://bucket/images/a.jpg`` and
    ``http://host/images/a.jpg`` are ``images/a.jpg`` (scheme, host or bucket dropped). A
    plain path is kept as written.

    Args:
        url: The value of the task's image key.
        keep_prefix: Keep the ``xxxxxxxx-`` prefix of an uploaded file's name.

    Returns:
        The path, without leading ``/``; it may still be unsafe (``..``).
    """
    text = url.strip()
    if not (is_url(text) or text.startswith("/data/")):
        return text
    parts = urlsplit(text)
    if parts.path.rstrip("/").endswith("local-files"):
        found = parse_qs(parts.query).get("d")
        if found:
            return found[0].strip().lstrip("/")
    path = unquote(parts.path).lstrip("/")
    upload = _UPLOAD.match(path)
    if upload:
        path = path[upload.end() :]
        if not keep_prefix:
            folder, name = posixpath.split(path)
            path = posixpath.join(folder, _UPLOAD_PREFIX.sub("", name, count=1))
    return path


def looks_like(tree: Tree, rel: str, strict: bool = False) -> bool:
    """True when ``rel`` is JSON that starts a list, or is a task (``data``, ``annotations``).

    ``strict`` also wants a ``data`` key in the beginning of a list (a COCO results file
    is a list too).
    """
    if not rel.lower().endswith(".json"):
        return False
    try:
        with tree.access.open(rel) as stream:
            head = stream.read(_PEEK).removeprefix(b"\xef\xbb\xbf").lstrip()
    except OSError:
        return False
    if head.startswith(b"["):
        return not strict or b'"data"' in head
    keys = b'"data"' in head and b'"annotations"' in head
    return head.startswith(b"{") and keys and b'"images"' not in head


def discover(tree: Tree) -> list[str]:
    """The Label Studio exports of a tree: root JSON files that look like one (strictly)."""
    return [f for f in tree.files if "/" not in f and looks_like(tree, f, strict=True)]


def annotator_name(completed_by: Any) -> str | None:
    """Who made an annotation: a user id as text, else a user's email, username or id."""
    if isinstance(completed_by, bool):
        return None
    if isinstance(completed_by, int | str):
        return str(completed_by) or None
    if isinstance(completed_by, dict):
        for key in ("email", "username", "id"):
            value = completed_by.get(key)
            if isinstance(value, int | str) and not isinstance(value, bool) and str(value):
                return str(value)
    return None


def model_name(model_version: Any) -> str:
    """Who made a prediction: its ``model_version`` as text, else ``prediction``."""
    if isinstance(model_version, int | str) and not isinstance(model_version, bool):
        return str(model_version).strip() or PREDICTION
    return PREDICTION


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _image_key(data: dict[str, Any], to_names: set[str]) -> str:
    """The ``data`` key of the image: the results' ``to_name``, ``image``, or the only text."""
    named = sorted(n for n in to_names if isinstance(data.get(n), str))
    strings = sorted(k for k, v in data.items() if isinstance(v, str))
    if len(named) > 1:
        raise ValueError(f"the results name several images ({', '.join(named)}); one is read")
    if named:
        return named[0]
    if isinstance(data.get("image"), str):
        return "image"
    if len(strings) == 1:
        return strings[0]
    raise ValueError(f"cannot tell which key is the image (text keys: {', '.join(strings)})")


def _rotation(raw: dict[str, Any], value: dict[str, Any]) -> str | None:
    """``rotation 30`` when the box or the image is turned, else ``None``."""
    for name, angle in (
        ("image_rotation", raw.get("image_rotation")),
        ("rotation", value.get("rotation")),
    ):
        if angle is None:
            continue
        if not _finite(angle):
            raise ValueError(f"'{name}' must be a number, got {angle!r}")
        if angle % 360 != 0:
            return f"{name} {angle:g}"
    return None


def _shape(kind: str, value: dict[str, Any]) -> Annotation:
    """A rectangle or polygon in fractions of the image (percent / 100); category -1.

    Raises:
        ValueError: When its numbers are malformed.
    """
    if kind == "rectanglelabels":
        box = [value.get(k) for k in ("x", "y", "width", "height")]
        if not all(_finite(v) for v in box):
            raise ValueError(f"x, y, width and height must be numbers, got {box!r}")
        x, y, w, h = (float(v) / 100 for v in box)  # type: ignore[arg-type]
        if w < 0 or h < 0:
            raise ValueError("width and height must not be negative")
        return Annotation(-1, (x, y, w, h))
    points = value.get("points")
    if not (
        isinstance(points, list)
        and len(points) >= 3
        and all(isinstance(p, list) and len(p) == 2 and all(_finite(v) for v in p) for p in points)
    ):
        raise ValueError("'points' must be a list of at least 3 [x, y] number pairs")
    xs = [p[0] / 100 for p in points]
    ys = [p[1] / 100 for p in points]
    polygon = [v for pair in zip(xs, ys, strict=True) for v in pair]
    return Annotation(-1, (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)), [polygon])


@dataclass
class _Task:
    """What one task gives, before it joins the item of its image."""

    annotations: list[tuple[Annotation, str, str]] = field(default_factory=list)
    annotators: list[str] = field(default_factory=list)
    size: tuple[int, int, str] | None = None
    rotated: str | None = None
    split: str | None = None


class _Reader(NamedReader):
    """The state of one read: what every named-class reader keeps, sizes and counts."""

    def __init__(self, tree: Tree, options: ReadOptions) -> None:
        super().__init__(tree, options)
        self.sizes: dict[str, str] = {}
        self.ignored: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self.shown = ""
        self.ids_only = 0

    def bad(self, message: str, key: str | None = None) -> None:
        self.problems.add(message, file=self.shown, key=key)

    def file(self, rel: str) -> None:
        self.shown = shown = self.tree.shown(rel)
        try:
            data = decode(self.tree.read_bytes(rel), shown)
        except PixelpipeError as exc:
            self.problems.extend(exc)
            return
        if isinstance(data, dict) and "data" in data:
            tasks: list[Any] = [data]
            prefix = ""
        elif isinstance(data, list):
            tasks, prefix = data, "tasks"
        else:
            self.bad("a Label Studio export is a JSON list of tasks (or one task object)")
            return
        self.ids_only = 0
        for index, task in enumerate(tasks):
            self.task(task, f"{prefix}[{index}]" if prefix else "task")
        if self.ids_only:
            self.bad(
                f"{self.ids_only} predictions are listed by id only, without their results "
                "(Label Studio's JSON export does this, HumanSignal/label-studio#5654): read "
                "the predictions from the tasks file that was imported, or from the API"
            )

    def task(self, task: Any, key: str) -> None:
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            self.bad("a task is an object with a 'data' object", key)
            return
        read, other = ("predictions", "annotations")
        if not self.options.predictions:
            read, other = other, read
        entries, skipped = task.get(read) or [], task.get(other)
        if not isinstance(entries, list):
            self.bad(f"'{read}' must be a list", f"{key}.{read}")
            return
        self.notes[f"ls_{other}_ignored"] += len(skipped) if isinstance(skipped, list) else 0
        url = self.image_url(task["data"], entries, key)
        if url is None:
            return
        split = task["data"].get(SPLIT)
        found = _Task(split=canonical_split(split.strip()) if isinstance(split, str) else None)
        for index, entry in enumerate(entries):
            where = f"{key}.{read}[{index}]"
            if self.options.predictions:
                self.prediction(entry, where, found)
            else:
                self.annotation(entry, where, found)
        if not found.annotators and not found.annotations:
            self.notes["ls_tasks_not_predicted" if self.options.predictions else _NOT_DONE] += 1
        self.place(url, found, key)

    def image_url(self, data: dict[str, Any], entries: list[Any], key: str) -> str | None:
        to_names = {
            r["to_name"]
            for a in entries
            if isinstance(a, dict) and isinstance(a.get("result"), list)
            for r in a["result"]
            if isinstance(r, dict) and isinstance(r.get("to_name"), str)
        }
        try:
            choice = _image_key(data, to_names)
        except ValueError as exc:
            self.bad(str(exc), f"{key}.data")
            return None
        url: str = data[choice]
        if not url.strip() or url.startswith("data:"):
            self.bad("the image URL is empty or inline (data:)", f"{key}.data.{choice}")
            return None
        return url

    def annotation(self, raw: Any, key: str, found: _Task) -> None:
        if not isinstance(raw, dict):
            self.bad("an annotation is an object", key)
            return
        if raw.get("was_cancelled") is True:
            self.notes["ls_cancelled_annotations"] += 1
            return
        extra: dict[str, Any] = {"ground_truth": True} if raw.get("ground_truth") is True else {}
        self.results(raw, key, found, annotator_name(raw.get("completed_by")), extra, None)

    def prediction(self, raw: Any, key: str, found: _Task) -> None:
        if isinstance(raw, int) and not isinstance(raw, bool):
            self.ids_only += 1
            return
        if not isinstance(raw, dict):
            self.bad("a prediction is an object", key)
            return
        score = raw.get("score")
        if score is not None and not _finite(score):
            self.bad(f"'score' must be a number, got {score!r}", f"{key}.score")
            return
        who = model_name(raw.get("model_version"))
        self.results(raw, key, found, who, {}, None if score is None else float(score))

    def results(
        self,
        raw: dict[str, Any],
        key: str,
        found: _Task,
        who: str | None,
        extra: dict[str, Any],
        score: float | None,
    ) -> None:
        """Read the ``result`` of an annotation or prediction made by ``who``."""
        if who is not None and who not in found.annotators:
            found.annotators.append(who)
        result = raw.get("result") or []
        if not isinstance(result, list):
            self.bad("'result' must be a list", f"{key}.result")
            return
        for index, region in enumerate(result):
            self.region(region, f"{key}.result[{index}]", found, who, extra, score)

    def region(
        self,
        raw: Any,
        key: str,
        found: _Task,
        who: str | None,
        extra: dict[str, Any],
        score: float | None,
    ) -> None:
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            self.bad("a result is an object with a 'type'", key)
            return
        kind = raw["type"]
        if kind not in ("rectanglelabels", "polygonlabels", "choices"):
            self.ignored[kind] += 1
            return
        value = raw.get("value")
        if not isinstance(value, dict):
            self.bad("'value' must be an object", f"{key}.value")
            return
        names = value.get(kind)
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            self.bad(f"'{kind}' must be a list of class names", f"{key}.value.{kind}")
            return
        if not names:
            self.notes["ls_regions_without_label"] += 1
            return
        if self.options.predictions and "score" in raw:  # null: this region has no score
            if raw["score"] is not None and not _finite(raw["score"]):
                self.bad(f"'score' must be a number, got {raw['score']!r}", f"{key}.score")
                return
            score = None if raw["score"] is None else float(raw["score"])
        if not self.size(raw, key, found):
            return
        attributes = dict(extra)
        if isinstance(raw.get("id"), int | str) and not isinstance(raw.get("id"), bool):
            attributes["ls_id"] = raw["id"]
        if kind == "choices":
            shapes = [image_label(-1) for _ in names]
        else:
            try:
                shape = _shape(kind, value)
                turned = _rotation(raw, value)
            except ValueError as exc:
                self.bad(str(exc), f"{key}.value")
                return
            if turned and found.rotated is None:
                found.rotated = f"{key} has {turned}"
            shapes = [shape] + [
                Annotation(-1, shape.bbox, polygons=shape.polygons) for _ in names[1:]
            ]
        for name, shape in zip(names, shapes, strict=True):
            shape.annotator = who
            shape.score = score
            shape.attributes.update(attributes)
            found.annotations.append((shape, name, f"{key}.value.{kind}"))

    def size(self, raw: dict[str, Any], key: str, found: _Task) -> bool:
        given = [raw.get(k) for k in _SIZE_KEYS]
        if all(v is None for v in given):
            return True
        width, height = given
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            self.bad(
                f"original_width and original_height must be positive whole numbers, got "
                f"{width!r} and {height!r}",
                key,
            )
            return False
        if found.size is not None and found.size[:2] != (width, height):
            self.bad(
                f"the image is {width}x{height} here but {found.size[0]}x{found.size[1]} in "
                f"{found.size[2]}",
                key,
            )
            return False
        if found.size is None:
            found.size = (width, height, key)
        return True

    def place(self, url: str, found: _Task, key: str) -> None:
        shown = self.shown
        where = f"{shown} {key}"
        path = safe_relative(url_to_path(url))
        if path is None:
            shown_url = public_url(url)
            self.removed.setdefault(
                shown_url,
                Removal(
                    shown_url, "unsafe_path", f"{where}: the image path leads outside the source"
                ),
            )
            return
        path = self.locate(path, safe_relative(url_to_path(url, keep_prefix=True)))
        if path in self.removed:
            return
        if found.rotated is not None:
            self.items.pop(path, None)
            self.removed[path] = Removal(
                path,
                "rotated",
                f"{where}: {found.rotated}; a rotated box is not an [x, y, w, h] box",
                path,
            )
            return
        item = self.items.get(path)
        if item is None:
            item = self.items[path] = Item(image=path, normalized=True, origin=where)
        if found.split and item.split and found.split != item.split:
            self.bad(f"{path} is in split {found.split!r} here but {item.split!r} in {item.origin}")
        item.split = item.split or found.split
        if found.size is not None:
            width, height, size_key = found.size
            if item.width is None or item.height is None:
                item.width, item.height = width, height
                self.sizes[path] = f"{shown} {size_key}"
            elif (item.width, item.height) != (width, height):
                self.bad(
                    f"{path} is {width}x{height} here but {item.width}x{item.height} in "
                    f"{self.sizes[path]}",
                    size_key,
                )
        item.annotators.extend(a for a in found.annotators if a not in item.annotators)
        for annotation, name, name_key in found.annotations:
            item.annotations.append(annotation)
            self.pending.append((annotation, name, (shown, None, name_key)))


def read(tree: Tree, options: ReadOptions | None = None) -> LabelSet:
    """Read Label Studio JSON exports.

    Args:
        tree: The source: an export file (its folder is the tree) or a folder.
        options: ``annotations`` (files to read; default: the named file, else the root
            JSON files that look like exports), ``classes`` (names in id order; default:
            the sorted names used), ``extensions``, ``predictions`` (read the tasks'
            predictions instead of their annotations).

    Returns:
        One normalized item per image (tasks naming the same image are joined), each
        annotation with its ``annotator`` and the result's ``ls_id`` (a region an
        annotator accepted from a prediction keeps the prediction's id; a prediction's
        annotator is its ``model_version`` and its ``score`` is kept); a ``rotated``
        removal for an image with a rotated box, ``unsafe_path`` for a path with ``..``,
        ``unlisted`` for images of the tree's image folders no task names.

    Raises:
        PixelpipeError: Listing every problem: invalid JSON (with its line), a task
            without ``data`` or an image URL, malformed results or scores, sizes that
            disagree, a class not in ``classes``, predictions listed by id only.
    """
    options = options or ReadOptions()
    reader = _Reader(tree, options)
    none = "no Label Studio export found (a JSON list of tasks at the root)"
    for rel in label_files(tree, options, "Label Studio file", ".json", discover, none):
        reader.file(rel)
    warnings = []
    if reader.ignored:
        kinds = ", ".join(f"{k} ({n})" for k, n in sorted(reader.ignored.items()))
        warnings.append(f"Label Studio results not read: {kinds}")
        reader.notes["ls_results_ignored"] = sum(reader.ignored.values())
    return reader.finish(NAME, "image file is in no Label Studio task", reader.notes, warnings)
