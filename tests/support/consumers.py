"""The consumers of the exports, for the publish tests: Datumaro in its own venv, and the
counts every consumer must find, taken from a publish manifest.

Datumaro 1.13 pins ``pillow~=12``, ``pandas~=2.3`` and ``opencv<5``, which would downgrade
pixelpipe's own dependencies, so it lives in a venv of its own at ``<repo>/.venvs/datumaro``
(created here on first use, under a file lock) and loads the exports through
``datumaro_load.py`` beside this file, which prints JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from pixelpipe.dataset import Dataset, Sample
from pixelpipe.formats.imagefolder import is_image_label

REPO = Path(__file__).resolve().parents[2]
DATUMARO_VENV = REPO / ".venvs" / "datumaro"
DATUMARO_REQUIREMENT = "datumaro>=1.13,<2"
DATUMARO_SCRIPT = Path(__file__).with_name("datumaro_load.py")
MARKER = ".pixelpipe-installed"
"""File in the venv naming the requirement installed there (written after pip succeeds)."""
UNASSIGNED = "unassigned"
"""The split name the exports give samples without one."""

SplitClass = tuple[str, str]
"""A (split, class name) pair, the key of every per-class count."""


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created), so parallel sessions install once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _imports_datumaro(python: Path) -> bool:
    if not python.is_file():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import datumaro"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return probe.returncode == 0


def _pip(args: list[str], what: str) -> None:
    print(f"datumaro venv: {what}: {' '.join(args)}", file=sys.stderr, flush=True)
    done = subprocess.run(
        args, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {done.returncode}); Datumaro is a consumer the exports must "
            f"load in.\n$ {' '.join(args)}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}",
            pytrace=False,
        )


def datumaro_python(venv: Path = DATUMARO_VENV) -> Path:
    """The interpreter of a venv holding Datumaro, created and installed when needed.

    The venv is made with ``python -m venv`` and ``pip install 'datumaro>=1.13,<2'`` when
    its interpreter cannot ``import datumaro`` or lacks the marker of a finished install.
    A lock file beside the venv makes parallel callers wait for one install.

    Args:
        venv: Where the venv lives.

    Returns:
        The venv's ``bin/python``.

    Raises:
        pytest.fail.Exception: When the venv or the install fails (pip's output included):
            the tests that need Datumaro fail rather than skip.
    """
    return _datumaro_python(venv.resolve())


@cache
def _datumaro_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    marker = venv / MARKER
    with _locked(venv.with_name(venv.name + ".lock")):
        installed = marker.is_file() and marker.read_text().strip() == DATUMARO_REQUIREMENT
        if installed and _imports_datumaro(python):
            return python
        if not python.is_file():
            _pip([sys.executable, "-m", "venv", str(venv)], "creating the venv")
        _pip(
            [str(python), "-m", "pip", "install", "--quiet", DATUMARO_REQUIREMENT],
            f"installing {DATUMARO_REQUIREMENT}",
        )
        if not _imports_datumaro(python):
            pytest.fail(f"{python} still cannot import datumaro after pip install", pytrace=False)
        marker.write_text(DATUMARO_REQUIREMENT + "\n")
    return python


def datumaro_counts_many(exports: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """Load several exports with Datumaro in one process (it takes a while to start).

    Args:
        exports: Datumaro importer name (``coco_instances``, ``yolo``, ``voc_detection``,
            ``cvat``...) to the folder to import.

    Returns:
        Per importer, ``{"subsets": {subset: summary}}`` or ``{"error": message, "trace":
        text}``; a summary has ``items``, ``media`` (media files that exist), ``sized`` and,
        per annotation kind (``bbox``, ``polygon``, ``mask``, ``label``...), counts per
        class name.

    Raises:
        AssertionError: When the script itself fails (its output included).
    """
    python = datumaro_python()
    args = [str(python), str(DATUMARO_SCRIPT), *(f"{f}={p}" for f, p in exports.items())]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        args, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, env=env
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}\nstdout:\n{done.stdout}\n"
            f"stderr:\n{done.stderr}"
        )
    result: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return result


def datumaro_counts(folder: Path, fmt: str) -> dict[str, Any]:
    """What Datumaro reads from ``folder`` as ``fmt`` (see :func:`datumaro_counts_many`)."""
    return datumaro_counts_many({fmt: folder})[fmt]


def by_split_class(subsets: Mapping[str, Mapping[str, Any]], kind: str) -> Counter[SplitClass]:
    """Datumaro's counts of one annotation ``kind`` as a (split, class) counter."""
    return Counter(
        {
            (subset, name): count
            for subset, summary in subsets.items()
            for name, count in summary.get(kind, {}).items()
            if count
        }
    )


def split_of(sample: Sample) -> str:
    """The split a sample is exported under."""
    return sample.split or UNASSIGNED


@dataclass
class Expected:
    """What every consumer should find in an export of one manifest.

    Attributes:
        classes: Class names in class-map id order.
        images: Images per split.
        boxes: Object labels (boxes, polygons, masks: not whole-image labels) per split
            and class.
        crowd: The crowd ones among ``boxes``.
        with_polygons: The ones among ``boxes`` that have polygons.
        polygon_parts: Polygon parts per split and class (CVAT writes one shape a part).
        masks_only: Objects with a mask and no polygon per split and class.
        image_labels: Whole-image class labels per split and class.
        split_of: Each sample id's split.
        sizes: Each sample id's ``(width, height)``.
    """

    classes: list[str]
    images: Counter[str] = field(default_factory=Counter)
    boxes: Counter[SplitClass] = field(default_factory=Counter)
    crowd: Counter[SplitClass] = field(default_factory=Counter)
    with_polygons: Counter[SplitClass] = field(default_factory=Counter)
    polygon_parts: Counter[SplitClass] = field(default_factory=Counter)
    masks_only: Counter[SplitClass] = field(default_factory=Counter)
    image_labels: Counter[SplitClass] = field(default_factory=Counter)
    split_of: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        """The splits that hold images, sorted."""
        return sorted(self.images)

    def per_class(self, counts: Counter[SplitClass]) -> Counter[str]:
        """``counts`` summed over the splits."""
        out: Counter[str] = Counter()
        for (_, name), count in counts.items():
            out[name] += count
        return +out

    def in_split(self, counts: Counter[SplitClass], split: str) -> Counter[str]:
        """``counts`` of one split, per class."""
        return +Counter({name: n for (s, name), n in counts.items() if s == split})

    def yolo_boxes(self) -> Counter[SplitClass]:
        """The boxes a YOLO export holds: crowd boxes are left out by default."""
        return +(self.boxes - self.crowd)

    def shapes(self) -> Counter[tuple[str, str, str]]:
        """CVAT's shapes per (split, kind, class): a polygon part each, else a box."""
        out: Counter[tuple[str, str, str]] = Counter()
        for (split, name), count in self.polygon_parts.items():
            out[(split, "polygon", name)] += count
        for (split, name), count in (self.boxes - self.with_polygons).items():
            out[(split, "bbox", name)] += count
        return +out


def expected_counts(dataset: Dataset) -> Expected:
    """The counts a publish manifest promises every export (before format choices).

    Args:
        dataset: The published dataset (``data/publish``).

    Returns:
        Images per split and labels per split and class.
    """
    ordered = sorted(dataset.categories, key=lambda c: c.id)
    names = {c.id: c.name for c in ordered}
    out = Expected(classes=[c.name for c in ordered])
    for sample in dataset.samples():
        split = split_of(sample)
        out.images[split] += 1
        out.split_of[sample.id] = split
        out.sizes[sample.id] = (sample.width, sample.height)
        for annotation in sample.annotations:
            key = (split, names[annotation.category_id])
            if is_image_label(annotation):
                out.image_labels[key] += 1
                continue
            out.boxes[key] += 1
            if annotation.iscrowd:
                out.crowd[key] += 1
            if annotation.polygons:
                out.with_polygons[key] += 1
                out.polygon_parts[key] += len(annotation.polygons)
            elif annotation.rle is not None:
                out.masks_only[key] += 1
    return out


# --- conventions of consumers not installed here: each rule lists what breaks it ---------

IMG_FORMATS = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"}
"""Ultralytics' image suffixes (``ultralytics/data/utils.py``: ``IMG_FORMATS``)."""
_PLAIN_NUMBER = re.compile(r"^\d+(\.\d+)?$")


def _data_yaml(yolo: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((yolo / "data.yaml").read_text(encoding="utf-8"))
    return data


def _split_dirs(yolo: Path) -> dict[str, Path]:
    """The folders ``data.yaml`` names, resolved as Ultralytics' ``check_det_dataset`` does."""
    data = _data_yaml(yolo)
    root = yolo / str(data.get("path") or "")
    return {k: root / data[k] for k in ("train", "val", "test") if data.get(k)}


def _label_of(image: Path) -> Path:
    """``img2label_paths``: the last ``/images/`` becomes ``/labels/``, the suffix ``.txt``."""
    head, _, tail = str(image).rpartition("/images/")
    return Path(f"{head}/labels/{tail}".rsplit(".", 1)[0] + ".txt")


def _images(folder: Path) -> list[Path]:
    """The images Ultralytics finds in a split folder (``glob('**/*.*', recursive=True)``)."""
    return sorted(p for p in folder.rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS)


def _lines(label: Path) -> list[list[str]]:
    text = label.read_text(encoding="utf-8") if label.is_file() else ""
    return [line.split() for line in text.strip().splitlines() if line]


def _label_files(yolo: Path) -> list[Path]:
    return sorted((yolo / "labels").rglob("*.txt"))


def yolo_keys(yolo: Path, expected: Expected) -> list[str]:
    """``data.yaml`` has ``train`` and ``val``."""
    data = _data_yaml(yolo)
    return [f"data.yaml has no '{k}:'" for k in ("train", "val") if k not in data]


def yolo_names(yolo: Path, expected: Expected) -> list[str]:
    """``names`` are indexed 0..n-1 with the class map's names; ``nc`` (if any) is n."""
    data = _data_yaml(yolo)
    names = data["names"]
    indexed = dict(enumerate(names)) if isinstance(names, list) else dict(names)
    problems = [] if sorted(indexed) == list(range(len(indexed))) else [f"keys {sorted(indexed)}"]
    if [indexed[i] for i in sorted(indexed)] != expected.classes:
        problems.append(f"names {indexed} are not the class map {expected.classes}")
    nc = data.get("nc", len(indexed))
    return problems + ([] if nc == len(indexed) else [f"nc {nc} != {len(indexed)} names"])


def yolo_paths(yolo: Path, expected: Expected) -> list[str]:
    """Every split folder ``data.yaml`` names exists."""
    return [f"{k}: {p} is not a folder" for k, p in _split_dirs(yolo).items() if not p.is_dir()]


def yolo_label_dirs(yolo: Path, expected: Expected) -> list[str]:
    """Each images folder has its labels folder where ``img2label_paths`` looks."""
    dirs = {k: _label_of(p / "x.jpg").parent for k, p in _split_dirs(yolo).items()}
    return [f"{k}: no {d}" for k, d in dirs.items() if not d.is_dir()]


def yolo_lines(yolo: Path, expected: Expected) -> list[str]:
    """Label lines are ``cls cx cy w h``: a class index < n, four numbers in [0, 1]."""
    problems = []
    for label in _label_files(yolo):
        for fields in _lines(label):
            try:
                values = [float(v) for v in fields[1:]]
            except ValueError:
                values = [-1.0]
            ok = len(fields) == 5 and fields[0].isdigit()
            if (
                not ok
                or int(fields[0]) >= len(expected.classes)
                or not all(0.0 <= v <= 1.0 for v in values)
            ):
                problems.append(f"{label.relative_to(yolo)}: {' '.join(fields)}")
    return problems


def yolo_plain_numbers(yolo: Path, expected: Expected) -> list[str]:
    """Every field is digits and a point (Datumaro's YOLO detector skips ``1e-05``)."""
    return [
        f"{label.relative_to(yolo)}: {' '.join(fields)}"
        for label in _label_files(yolo)
        for fields in _lines(label)
        if not all(_PLAIN_NUMBER.match(v) for v in fields)
    ]


def yolo_label_files(yolo: Path, expected: Expected) -> list[str]:
    """Each image has its label file, and each label file its image."""
    images = [i for folder in _split_dirs(yolo).values() for i in _images(folder)]
    labels = {_label_of(i) for i in images}
    problems = [
        f"{i.relative_to(yolo)} has no label file" for i in images if not _label_of(i).is_file()
    ]
    orphans = [p for p in _label_files(yolo) if p not in labels]
    return problems + [f"{p.relative_to(yolo)} labels no image" for p in orphans]


def yolo_counts(yolo: Path, expected: Expected) -> list[str]:
    """What Ultralytics reads per split (duplicate rows dropped) is the manifest's."""
    found: Counter[SplitClass] = Counter()
    images: Counter[str] = Counter()
    for split, folder in _split_dirs(yolo).items():
        for image in _images(folder):
            images[split] += 1
            rows = {tuple(fields) for fields in _lines(_label_of(image))}  # np.unique
            found.update((split, expected.classes[int(fields[0])]) for fields in rows)
    want = expected.yolo_boxes()
    problems = [] if found == want else [f"boxes: {found - want} extra, {want - found} missing"]
    return problems + ([] if images == expected.images else [f"images: {dict(images)}"])


def yolo_image_files(yolo: Path, expected: Expected) -> list[str]:
    """Images are at least 10x10 pixels, with a suffix Ultralytics reads."""
    small = [i for i, (w, h) in expected.sizes.items() if w < 10 or h < 10]
    odd = [i for i in expected.sizes if Path(i).suffix[1:].lower() not in IMG_FORMATS]
    return [f"{i}: under 10 px" for i in small] + [f"{i}: not an image suffix" for i in odd]


def _coco_documents(coco: Path, expected: Expected) -> Iterator[tuple[str, dict[str, Any]]]:
    for split in expected.splits:
        path = coco / "annotations" / f"instances_{split}.json"
        yield split, json.loads(path.read_text(encoding="utf-8"))


def fiftyone_paths(coco: Path, expected: Expected) -> list[str]:
    """``images/<split>`` and ``annotations/instances_<split>.json`` exist for each split."""
    return [
        f"{split}: {path.relative_to(coco)} missing"
        for split in expected.splits
        for path in (coco / "images" / split, coco / "annotations" / f"instances_{split}.json")
        if not path.exists()
    ]


def fiftyone_file_names(coco: Path, expected: Expected) -> list[str]:
    """Every ``file_name`` is a file inside ``images/<split>``."""
    problems = []
    for split, doc in _coco_documents(coco, expected):
        root = (coco / "images" / split).resolve()
        for image in doc["images"]:
            path = (root / image["file_name"]).resolve()
            if root not in path.parents or not path.is_file():
                problems.append(f"{split}: {image['file_name']}")
    return problems


def fiftyone_sizes(coco: Path, expected: Expected) -> list[str]:
    """Every image's ``width`` and ``height`` are its true size (boxes are divided by them)."""
    return [
        f"{split}: {i['file_name']} is {i.get('width')}x{i.get('height')}"
        for split, doc in _coco_documents(coco, expected)
        for i in doc["images"]
        if (i.get("width"), i.get("height")) != expected.sizes.get(i["file_name"])
    ]


def detectron2_ids(coco: Path, expected: Expected) -> list[str]:
    """Image, annotation and category ids are unique in each file."""
    return [
        f"{split}: {what} ids repeat"
        for split, doc in _coco_documents(coco, expected)
        for what in ("images", "annotations", "categories")
        if len({e["id"] for e in doc[what]}) != len(doc[what])
    ]


def detectron2_boxes(coco: Path, expected: Expected) -> list[str]:
    """Boxes are XYWH in pixels (w, h >= 0, touching the image); ``iscrowd`` 0/1; no ``ignore``."""
    problems = []
    for split, doc in _coco_documents(coco, expected):
        sizes = {i["id"]: (i["width"], i["height"]) for i in doc["images"]}
        for ann in doc["annotations"]:
            x, y, w, h = ann["bbox"]
            width, height = sizes[ann["image_id"]]
            if w < 0 or h < 0 or not (x < width and y < height and x + w > 0 and y + h > 0):
                problems.append(f"{split}: annotation {ann['id']} bbox {ann['bbox']}")
            if ann.get("iscrowd") not in (0, 1) or ann.get("ignore", 0) != 0:
                problems.append(f"{split}: annotation {ann['id']} iscrowd/ignore")
    return problems


def detectron2_segmentation(coco: Path, expected: Expected) -> list[str]:
    """``segmentation`` is ``[]``, polygons of >= 6 even coordinates, or an RLE of the image."""
    problems = []
    for split, doc in _coco_documents(coco, expected):
        sizes = {i["id"]: [i["height"], i["width"]] for i in doc["images"]}
        for ann in doc["annotations"]:
            segm = ann.get("segmentation")
            if isinstance(segm, dict):
                ok = segm.get("size") == sizes[ann["image_id"]] and "counts" in segm
            else:
                ok = isinstance(segm, list) and all(len(p) >= 6 and len(p) % 2 == 0 for p in segm)
            if not ok:
                problems.append(f"{split}: annotation {ann['id']} segmentation")
    return problems
