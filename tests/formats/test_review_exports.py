"""CVAT and Label Studio export folders: written by ``export``, read back by the readers.

A small dataset (boxes of several classes, a polygon, whole-image labels, an image without
labels, three splits and a sample without one, an id in a subfolder) goes out with
:func:`pixelpipe.formats.export.export` and comes back through
``detect.read(open_tree(folder), "auto")``: the same boxes per class and split (within
1e-6 px), sizes and image files. coco256 (128 real photos, 939 COCO objects) goes through
:func:`pixelpipe.formats.convert.convert` to each format and back to COCO.
"""

from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import detect
from pixelpipe.formats.base import (
    IMAGE_EXTENSIONS,
    UNASSIGNED,
    LabelSet,
    ReadOptions,
    id_folder,
    sample_id,
    to_pixels,
)
from pixelpipe.formats.convert import convert
from pixelpipe.formats.export import ExportOptions, export
from pixelpipe.formats.imagefolder import IMAGE_LABEL, is_image_label
from pixelpipe.formats.labelstudio import annotation_index
from pixelpipe.sources import open_tree

FORMATS = ("cvat", "labelstudio")
CATEGORIES = [Category(3, "car"), Category(7, "person"), Category(9, "dog"), Category(12, "bus")]
NAMES = {c.id: c.name for c in CATEGORIES}
TOLERANCE = 1e-6
Shape = tuple[str, tuple[float, ...]]
"""What a label is, to compare: its kind and its numbers (box, or polygon points)."""


def _whole(category: int, width: int, height: int) -> Annotation:
    box = (0.0, 0.0, float(width), float(height))
    return Annotation(category, box, attributes={IMAGE_LABEL: True})


def _samples(folder: Path) -> list[Sample]:
    """Four images written with Pillow, and their samples (in id order)."""
    triangle = [10.25, 5.5, 40.125, 7.75, 22.0, 30.3]
    made = [
        ("b.png", 30, 20, "val", [_whole(7, 30, 20), _whole(9, 30, 20)]),
        ("c.jpg", 50, 50, "test", []),
        ("d.jpg", 40, 30, None, [Annotation(12, (0.0, 0.0, 40.0, 30.0))]),
        (
            "street/a.jpg",
            64,
            48,
            "train",
            [
                Annotation(3, (1.5, 2.25, 10.1, 20.3)),
                Annotation(3, (1.0 / 3, 2.0 / 3, 17.0 / 7, 5.0)),
                Annotation(7, (30.0, 10.0, 12.5, 30.0), attributes={"occluded": True}),
                Annotation(9, (10.25, 5.5, 29.875, 24.8), polygons=[triangle]),
            ],
        ),
    ]
    samples = []
    for name, width, height, split, labels in made:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (width, height), (len(name) * 20, 90, 140)).save(path)
        samples.append(
            Sample(name, name, "ab" * 32, width, height, name, split, annotations=labels)
        )
    return samples


def _kind(annotation: Annotation) -> Shape:
    if is_image_label(annotation):
        return ("image_label", tuple(annotation.bbox))
    if annotation.polygons:
        return ("polygon", tuple(v for part in annotation.polygons for v in part))
    return ("box", tuple(annotation.bbox))


def _by_split(shapes: dict[str, tuple[str | None, list[tuple[str, Shape]]]]) -> dict[Any, Any]:
    """``{split: {class: sorted shapes}}`` from each image's split and labels."""
    out: dict[Any, dict[str, list[Shape]]] = {}
    for split, labels in shapes.values():
        for name, shape in labels:
            out.setdefault(split, {}).setdefault(name, []).append(shape)
    return {s: {n: sorted(v) for n, v in c.items()} for s, c in out.items()}


def _sent(samples: list[Sample], fmt: str) -> dict[str, tuple[str | None, list[tuple[str, Shape]]]]:
    """What was sent, by sample id, with the split it comes back in: CVAT puts a sample
    without a split in the subset ``unassigned`` when others have one."""
    unassigned = UNASSIGNED if fmt == "cvat" and any(s.split for s in samples) else None
    return {
        s.id: (s.split or unassigned, [(NAMES[a.category_id], _kind(a)) for a in s.annotations])
        for s in samples
    }


def _read(labels: LabelSet, root: Path) -> dict[str, tuple[str | None, list[tuple[str, Shape]]]]:
    """What a reader gave, by sample id, in pixels.

    Labels of an image whose size they do not state are scaled by the image's own size,
    as ``convert`` does.
    """
    names = labels.category_names()
    folder = id_folder(labels, IMAGE_EXTENSIONS)
    out = {}
    for item in labels.items:
        annotations = item.annotations
        if item.normalized and annotations:
            width, height = item.width, item.height
            if width is None or height is None:
                with Image.open(root / item.image) as image:
                    width, height = image.size
            annotations = to_pixels(annotations, width, height)
        found = [(names[a.category_id], _kind(a)) for a in annotations]
        out[sample_id(item.image, folder)] = (item.split, found)
    return out


def _assert_close(sent: dict[Any, Any], back: dict[Any, Any]) -> int:
    """Same splits, classes and kinds; numbers within :data:`TOLERANCE`. Returns labels seen."""
    assert sent.keys() == back.keys()
    seen = 0
    for split, classes in sent.items():
        assert classes.keys() == back[split].keys(), split
        for name, shapes in classes.items():
            others = back[split][name]
            assert [k for k, _ in shapes] == [k for k, _ in others], (split, name)
            for (_, ours), (_, theirs) in zip(shapes, others, strict=True):
                assert len(ours) == len(theirs)
                assert max(abs(p - q) for p, q in zip(ours, theirs, strict=True)) <= TOLERANCE
                seen += 1
    return seen


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[list[Sample], Path]:
    source = tmp_path / "src"
    return _samples(source), source


def _export(fmt: str, samples: list[Sample], source: Path, out: Path, **options: Any) -> Any:
    return export(
        fmt, samples, CATEGORIES, out, lambda s: source / s.image, ExportOptions(**options)
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_dataset_comes_back_through_the_readers(
    dataset: tuple[list[Sample], Path], tmp_path: Path, fmt: str
) -> None:
    samples, source = dataset
    out = tmp_path / fmt
    _export(fmt, samples, source, out)
    labels = detect.read(open_tree(str(out)), "auto")
    assert labels.format == fmt  # detected, label_config.xml beside tasks.json or not
    back = _read(labels, out)
    sent = _sent(samples, fmt)
    assert _assert_close(_by_split(sent), _by_split(back)) == 7
    assert {k: split for k, (split, _) in back.items()} == {k: s for k, (s, _) in sent.items()}
    assert labels.removed == [] and labels.warnings == []
    for sample in samples:  # every image, linked: the bytes of the source
        assert (out / "images" / sample.id).read_bytes() == (source / sample.image).read_bytes()
    sizes = {i.image.removeprefix("images/"): (i.width, i.height) for i in labels.items}
    stated: dict[str, tuple[int | None, int | None]] = {s.id: (s.width, s.height) for s in samples}
    if fmt == "labelstudio":  # a size is on box and polygon results only (convert reads it)
        stated["b.png"] = stated["c.jpg"] = (None, None)
    assert sizes == stated


def test_cvat_keeps_the_class_map_in_id_order(
    dataset: tuple[list[Sample], Path], tmp_path: Path
) -> None:
    samples, source = dataset
    _export("cvat", samples, source, tmp_path / "cvat")
    labels = detect.read(open_tree(str(tmp_path / "cvat")), "cvat")
    assert [c.name for c in labels.categories] == ["car", "person", "dog", "bus"]


COUNTS = [
    # shapes (3 boxes, a polygon, the whole-image box of d.jpg) and tags
    ("cvat", {"images": 4, "boxes": 5, "tags": 2, "masks_as_boxes": 0}),
    # Label Studio counts polygons apart, and image labels rather than choices results
    (
        "labelstudio",
        {"images": 4, "boxes": 4, "polygons": 1, "image_labels": 2, "masks_as_boxes": 0},
    ),
]


@pytest.mark.parametrize(("fmt", "counts"), COUNTS)
def test_counts(
    dataset: tuple[list[Sample], Path], tmp_path: Path, fmt: str, counts: dict[str, int]
) -> None:
    samples, source = dataset
    assert _export(fmt, samples, source, tmp_path / fmt) == counts


LABELS_ONLY = [
    # CVAT states every image's size
    ("cvat", [], 7),
    # Label Studio states a size on box and polygon results only: without the image files
    # the size of b.png (image labels only) and c.jpg (no labels) is not known
    ("labelstudio", ["images/b.png", "images/c.jpg"], 5),
]


@pytest.mark.parametrize(("fmt", "unsized", "compared"), LABELS_ONLY)
def test_labels_without_images(
    dataset: tuple[list[Sample], Path],
    tmp_path: Path,
    fmt: str,
    unsized: list[str],
    compared: int,
) -> None:
    samples, _ = dataset
    out = tmp_path / fmt
    assert export(fmt, samples, CATEGORIES, out, lambda s: None)["images"] == 0
    assert not (out / "images").exists()
    labels = detect.read(open_tree(str(out)), fmt)
    assert sorted(i.image for i in labels.items if i.width is None) == unsized
    labels.items = [i for i in labels.items if i.image not in unsized]
    sent = {k: v for k, v in _sent(samples, fmt).items() if f"images/{k}" not in unsized}
    assert _assert_close(_by_split(sent), _by_split(_read(labels, out))) == compared


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_input_same_bytes(
    dataset: tuple[list[Sample], Path], tmp_path: Path, fmt: str
) -> None:
    samples, source = dataset
    _export(fmt, samples, source, tmp_path / "one")
    _export(fmt, samples, source, tmp_path / "two")
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*"))
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*"))
    for rel in files:
        if (tmp_path / "one" / rel).is_file():
            assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()
    assert not [f for f in files if f.name.startswith(".")]  # no temporary left behind


def test_cvat_writes_splits_as_cvat_exports_a_project(
    dataset: tuple[list[Sample], Path], tmp_path: Path
) -> None:
    samples, source = dataset
    _export("cvat", samples, source, tmp_path / "cvat")
    root = ET.parse(tmp_path / "cvat" / "annotations.xml").getroot()
    images = [
        (i.get("id"), i.get("name"), i.get("subset"), i.get("task_id")) for i in root.iter("image")
    ]
    assert images == [
        ("0", "b.png", "val", "3"),
        ("1", "c.jpg", "test", "0"),
        ("2", "d.jpg", "unassigned", "2"),  # in no subset, it would be in every one
        ("3", "street/a.jpg", "train", "1"),
    ]
    project = root.find("meta/project")
    assert project is not None and root.find("meta/task") is None
    tasks = [
        (t.findtext("id"), t.findtext("name"), t.findtext("size"), t.findtext("subset"))
        for t in project.iterfind("tasks/task")
    ]
    assert tasks == [
        ("0", "test", "1", "test"),
        ("1", "train", "1", "train"),
        ("2", "unassigned", "1", "unassigned"),
        ("3", "val", "1", "val"),
    ]
    assert project.findtext("subsets") == "test\ntrain\nunassigned\nval"
    assert [n.text for n in project.iterfind("labels/label/name")] == [
        "car",
        "person",
        "dog",
        "bus",
    ]


def test_cvat_without_splits_is_a_task(dataset: tuple[list[Sample], Path], tmp_path: Path) -> None:
    samples, source = dataset
    unsplit = [dataclasses.replace(s, split=None) for s in samples]
    _export("cvat", unsplit, source, tmp_path / "cvat")
    root = ET.parse(tmp_path / "cvat" / "annotations.xml").getroot()
    assert root.findtext("meta/task/size") == "4" and root.find("meta/project") is None
    assert all(i.get("subset") is None for i in root.iter("image"))
    labels = detect.read(open_tree(str(tmp_path / "cvat")), "auto")
    assert [i.split for i in labels.items] == [None] * 4


def test_datumaro_reads_the_cvat_folder_by_split(
    dataset: tuple[list[Sample], Path], tmp_path: Path
) -> None:
    from consumers import datumaro_counts

    samples, source = dataset
    _export("cvat", samples, source, tmp_path / "cvat")
    subsets = datumaro_counts(tmp_path / "cvat", "cvat")["subsets"]
    found = {
        name: (s["items"], s["media"], s["sized"], s["bbox"], s["polygon"], s["label"])
        for name, s in subsets.items()
    }
    assert found == {
        "test": (1, 1, 1, {}, {}, {}),
        "train": (1, 1, 1, {"car": 2, "person": 1}, {"dog": 1}, {}),
        "unassigned": (1, 1, 1, {"bus": 1}, {}, {}),
        "val": (1, 1, 1, {}, {}, {"dog": 1, "person": 1}),
    }


def test_labelstudio_tasks_and_config(dataset: tuple[list[Sample], Path], tmp_path: Path) -> None:
    samples, source = dataset
    _export("labelstudio", samples, source, tmp_path / "ls")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text(encoding="utf-8"))
    data = [t["data"] for t in tasks]
    assert [(d["image"], d.get("split")) for d in data] == [
        ("/data/local-files/?d=images/b.png", "val"),
        ("/data/local-files/?d=images/c.jpg", "test"),
        ("/data/local-files/?d=images/d.jpg", None),
        ("/data/local-files/?d=images/street/a.jpg", "train"),
    ]
    assert all("predictions" not in t and len(t["annotations"]) == 1 for t in tasks)
    config = ET.fromstring((tmp_path / "ls" / "label_config.xml").read_text(encoding="utf-8"))
    controls = {c.tag: c for c in config}
    assert sorted(controls) == ["Choices", "Image", "PolygonLabels", "RectangleLabels"]
    assert controls["Choices"].get("choice") == "multiple"  # b.png has two image labels
    labels = [e.get("value") for e in controls["RectangleLabels"]]
    assert labels == ["car", "person", "dog", "bus"]  # id order


def test_labelstudio_config_holds_only_the_controls_needed(tmp_path: Path) -> None:
    sample = Sample("a.jpg", "a.jpg", "", 8, 8, "a.jpg", annotations=[_whole(3, 8, 8)])
    export("labelstudio", [sample], CATEGORIES, tmp_path, lambda s: None)
    config = ET.fromstring((tmp_path / "label_config.xml").read_text(encoding="utf-8"))
    assert [(c.tag, c.get("choice")) for c in config] == [
        ("Image", None),
        ("RectangleLabels", None),
        ("Choices", "single"),
    ]


def test_labelstudio_image_url_prefix(dataset: tuple[list[Sample], Path], tmp_path: Path) -> None:
    samples, source = dataset
    out = tmp_path / "ls"
    _export("labelstudio", samples, source, out, image_url_prefix="https://host/review")
    tasks = json.loads((out / "tasks.json").read_text(encoding="utf-8"))
    assert tasks[3]["data"]["image"] == "https://host/review/images/street/a.jpg"
    labels = detect.read(open_tree(str(out)), "labelstudio")  # found in the folder still
    assert sorted(i.image for i in labels.items) == [f"images/{s.id}" for s in samples]


def test_the_parts_of_a_polygon_stay_tied(tmp_path: Path) -> None:
    parts = [[0.0, 0.0, 4.0, 0.0, 0.0, 4.0], [5.0, 5.0, 8.0, 5.0, 8.0, 8.0]]
    annotations = [
        Annotation(3, (0.0, 0.0, 8.0, 8.0), polygons=parts),
        Annotation(9, (1.0, 1.0, 2.0, 2.0)),
        Annotation(7, (0.0, 0.0, 8.0, 8.0), polygons=parts),
    ]
    sample = Sample("a.jpg", "a.jpg", "", 8, 8, "a.jpg", annotations=annotations)
    export("cvat", [sample], CATEGORIES, tmp_path / "cvat", lambda s: None)
    cvat_back = detect.read(open_tree(str(tmp_path / "cvat")), "cvat").items[0].annotations
    # one CVAT group per polygon of several parts: CVAT's one object of several shapes
    assert [a.attributes.get("group_id") for a in cvat_back] == [1, 1, None, 2, 2]
    export("labelstudio", [sample], CATEGORIES, tmp_path / "ls", lambda s: None)
    ls_back = detect.read(open_tree(str(tmp_path / "ls")), "labelstudio").items[0].annotations
    assert [a.attributes["ls_id"] for a in ls_back] == ["0", "0.1", "1", "2", "2.1"]
    assert [annotation_index(a.attributes["ls_id"]) for a in ls_back] == [0, 0, 1, 2, 2]


BAD = [
    # two categories of one name: neither tool can tell them apart
    (
        [Category(1, "car"), Category(2, "car")],
        [],
        r"two categories are named 'car'|'car' is listed twice",
    ),
    # a box that is not a number, and a polygon of two points, in two samples: both listed
    (
        [Category(1, "car")],
        [
            Annotation(1, (math.nan, 0.0, 1.0, 1.0)),
            Annotation(1, (0.0, 0.0, 1.0, 1.0), polygons=[[0.0, 0.0, 1.0, 1.0]]),
        ],
        r"x\.jpg annotations\[0\]: its box.*\n.*y\.jpg annotations\[0\]: polygon part 0",
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("categories", "annotations", "message"), BAD)
def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Path,
    fmt: str,
    categories: list[Category],
    annotations: list[Annotation],
    message: str,
) -> None:
    samples = [
        Sample(name, name, "", 8, 8, name, annotations=annotations[i : i + 1])
        for i, name in enumerate(["x.jpg", "y.jpg"])
    ]
    images = tmp_path / "src.jpg"
    Image.new("RGB", (8, 8)).save(images)
    with pytest.raises(PixelpipeError, match=message):
        export(fmt, samples, categories, tmp_path / "out", lambda s: images)
    assert list((tmp_path / "out").iterdir()) == []


COCO256 = "detection/coco256"


def _coco_counts(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Images, annotations per class, and objects per class (parts of one polygon joined)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    names = {c["id"]: c["name"] for c in document["categories"]}
    per_class: Counter[str] = Counter()
    objects: set[tuple[int, str, Any]] = set()
    for index, entry in enumerate(document["annotations"]):
        name = names[entry["category_id"]]
        per_class[name] += 1
        attributes = entry.get("attributes", {})
        group = attributes.get("group_id")
        ls_id = attributes.get("ls_id")
        tie = group if group is not None else annotation_index(ls_id)
        objects.add((entry["image_id"], name, ("tied", tie) if tie is not None else index))
    return len(document["images"]), per_class, Counter(name for _, name, _ in objects)


def _parts(segmentation: Any) -> int:
    """The shapes a COCO segmentation is written as: one per polygon, else its box."""
    return len(segmentation) if isinstance(segmentation, list) and segmentation else 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_coco256_goes_out_and_comes_back(corpora: Path, tmp_path: Path, fmt: str) -> None:
    source = corpora / COCO256
    reference = source / "coco_json" / "instances_train2017.json"
    options = ReadOptions(
        annotations=[str(reference.relative_to(source))], images="images/train2017"
    )
    out = convert(str(source), tmp_path / fmt, fmt, "coco", read_options=options)
    assert (out.samples, out.images_copied, out.annotations, out.skipped) == (128, 128, 939, [])
    back = convert(str(tmp_path / fmt), tmp_path / "back", "coco")
    assert back.source_format == fmt  # detected
    assert (back.samples, back.images_copied, back.skipped) == (128, 128, [])
    document = json.loads(reference.read_text(encoding="utf-8"))
    names = {c["id"]: c["name"] for c in document["categories"]}
    objects: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    for entry in document["annotations"]:
        objects[names[entry["category_id"]]] += 1
        parts[names[entry["category_id"]]] += _parts(entry["segmentation"])
    (written,) = (tmp_path / "back" / "annotations").glob("*.json")
    images, per_class, rejoined = _coco_counts(written)
    assert images == 128
    assert sum(objects.values()) == 939 and sum(parts.values()) > 939  # some objects in parts
    assert per_class == parts  # each polygon part comes back as an annotation of its class
    assert rejoined == objects  # ... tied to its object: the same objects per class


SPLITS = [
    # the split as pixelpipe writes it
    ([{"split": "train"}], "train"),
    # Label Studio users' names for it are pixelpipe's
    ([{"split": "validation"}], "val"),
    # two tasks of one image, one without a split: the other's
    ([{}, {"split": "test"}], "test"),
    # a split that is not text is not a split
    ([{"split": 3}], None),
]


@pytest.mark.parametrize(("data", "split"), SPLITS)
def test_labelstudio_reads_a_tasks_split(
    tmp_path: Path, data: list[dict[str, Any]], split: str | None
) -> None:
    tasks = [{"data": {"image": "a.jpg", **extra}, "annotations": []} for extra in data]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    (item,) = detect.read(open_tree(str(tmp_path)), "labelstudio").items
    assert item.split == split


def test_labelstudio_refuses_two_splits_for_one_image(tmp_path: Path) -> None:
    tasks = [{"data": {"image": "a.jpg", "split": s}, "annotations": []} for s in ("train", "val")]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    with pytest.raises(PixelpipeError, match=r"a\.jpg is in split 'val' here but 'train' in .*"):
        detect.read(open_tree(str(tmp_path)), "labelstudio")
