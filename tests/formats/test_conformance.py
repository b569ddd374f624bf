"""Cross-format conformance on real files, and exact round trips through YOLO and VOC."""

from __future__ import annotations

import json
import posixpath
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml
from cocofiles import coco_file

from pixelpipe.dataset import Category
from pixelpipe.formats import coco, voc, yolo
from pixelpipe.formats.base import LabelSet, ReadOptions, to_pixels
from pixelpipe.formats.convert import convert
from pixelpipe.formats.export import ExportOptions
from pixelpipe.formats.pixels import probe
from pixelpipe.sources import open_tree

Boxes = dict[str, list[tuple[str, tuple[float, float, float, float]]]]


def _boxes(labels: LabelSet, sizes: dict[str, tuple[int, int]] | None = None) -> Boxes:
    """Boxes by image file name, with class names, in pixels."""
    names = labels.category_names()
    out: Boxes = {}
    for item in labels.items:
        annotations = item.annotations
        if item.normalized:
            assert sizes is not None
            annotations = to_pixels(annotations, *sizes[posixpath.basename(item.image)])
        out[posixpath.basename(item.image)] = [(names[a.category_id], a.bbox) for a in annotations]
    return out


def _worst(a: Boxes, b: Boxes) -> float:
    """Largest coordinate difference after pairing each box with its nearest same-class box."""
    assert sorted(a) == sorted(b)
    worst = 0.0
    for image in a:
        left, right = list(a[image]), list(b[image])
        assert sorted(n for n, _ in left) == sorted(n for n, _ in right), image
        for name, box in left:
            candidates = [(i, r) for i, r in enumerate(right) if r[0] == name]
            index, (_, other) = min(
                candidates, key=lambda c: max(abs(p - q) for p, q in zip(box, c[1][1], strict=True))
            )
            worst = max(worst, max(abs(p - q) for p, q in zip(box, other, strict=True)))
            right.pop(index)
    return worst


def _sizes(folder: Path) -> dict[str, tuple[int, int]]:
    sizes = {}
    for path in folder.rglob("*.jpg"):
        probed = probe(path, 10**9)
        assert not isinstance(probed, tuple)
        sizes[path.name] = probed.displayed
    return sizes


def test_labelformat_coco_voc_and_yolo_read_to_the_same_boxes(corpora: Path) -> None:
    base = corpora / "formats/labelformat/object_detection"
    reference = _boxes(coco.read(open_tree(str(base / "COCO"))))
    from_voc = _boxes(voc.read(open_tree(str(base / "PascalVOC"))))
    from_yolo = _boxes(yolo.read(open_tree(str(base / "YOLOv8"))), _sizes(base / "YOLOv8"))
    assert sum(len(v) for v in reference.values()) == 16
    assert _worst(reference, from_voc) == 0.0  # the VOC file holds the same integers
    assert _worst(reference, from_yolo) <= 0.5  # its YOLO file is rounded to 6 digits


@pytest.fixture(scope="module")
def coco256_yolo(corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """coco256's YOLO task in its documented layout: ``images`` links to the shared pool."""
    root = tmp_path_factory.mktemp("coco256_yolo")
    source = corpora / "detection/coco256"
    shutil.copy(source / "object_detection/config.yaml", root / "config.yaml")
    (root / "images").symlink_to(source / "images")
    (root / "labels").symlink_to(source / "object_detection/labels")
    return root


def test_coco256_links_out_are_refused_unless_followed(coco256_yolo: Path) -> None:
    tree = open_tree(str(coco256_yolo))
    assert set(tree.links_out) == {"images", "labels"}
    assert tree.files == ["config.yaml"]


def test_coco256_yolo_agrees_with_coco_on_every_non_crowd_box(
    corpora: Path, coco256_yolo: Path
) -> None:
    source = corpora / "detection/coco256"
    reference = coco.read(open_tree(str(source / "coco_json")), ReadOptions())
    sizes = {posixpath.basename(i.image): (i.width, i.height) for i in reference.items}
    names = reference.category_names()
    expected: Boxes = {
        posixpath.basename(i.image): [
            (names[a.category_id], a.bbox) for a in i.annotations if not a.iscrowd
        ]
        for i in reference.items
    }
    assert sum(a.iscrowd for i in reference.items for a in i.annotations) == 10
    labels = yolo.read(open_tree(str(coco256_yolo), follow_symlinks=True))
    train = [i for i in labels.items if i.split == "train"]
    assert len(train) == 128 and len([i for i in labels.items if i.split == "val"]) == 128
    assert labels.notes["images_without_labels"] == 2
    # the corpus's real inconsistencies: two label files without an image, reported
    assert [(r.id, r.reason) for r in labels.removed] == [
        ("labels/train2017/000000000656.txt", "missing"),
        ("labels/train2017/000000000659.txt", "missing"),
    ]
    assert [i.image for i in labels.items if not i.annotations] == [
        "images/train2017/000000000250.jpg",
        "images/train2017/000000000508.jpg",
    ]
    got = _boxes(
        LabelSet("yolo", labels.categories, train), {k: v for k, v in sizes.items() if v[0]}
    )  # type: ignore[misc]
    worst = _worst(expected, got)
    assert worst < 0.01, worst


def _read_coco_dir(folder: Path) -> LabelSet:
    return coco.read(open_tree(str(folder)), ReadOptions())


def _category_names(categories: Iterable[Category]) -> list[str]:
    return [c.name for c in sorted(categories, key=lambda c: c.id)]


@pytest.mark.parametrize("middle", ["yolo", "voc"])
def test_coco_round_trip_keeps_every_box_and_category(
    corpora: Path, tmp_path: Path, middle: str
) -> None:
    """COCO -> middle -> COCO: every box within 1e-3 px, every category, crowd flags for VOC."""
    from pycocotools.coco import COCO

    source = corpora / "detection/coco256"
    options = ReadOptions(annotations=["coco_json/instances_train2017.json"])
    original = coco.read(open_tree(str(source)), options)
    assert len(original.items) == 128
    there = convert(
        str(source),
        tmp_path / middle,
        middle,
        "coco",
        read_options=options,
        export_options=ExportOptions(include_crowd=True),
    )
    assert there.samples == 128 and there.images_copied == 128 and not there.skipped
    back = convert(str(tmp_path / middle), tmp_path / "back", "coco", middle)
    assert back.samples == 128 and not back.skipped
    returned = _read_coco_dir(tmp_path / "back")
    assert _category_names(returned.categories) == _category_names(original.categories)
    assert len(returned.categories) == 80
    worst = _worst(_boxes(original), _boxes(returned))
    assert worst < 1e-3, worst
    count = sum(len(i.annotations) for i in returned.items)
    assert count == 939
    if middle == "voc":
        assert sum(a.iscrowd for i in returned.items for a in i.annotations) == 10
    api = COCO(str(coco_file(tmp_path / "back")))
    assert len(api.getImgIds()) == 128 and len(api.getAnnIds()) == 939
    config = (tmp_path / middle / ("data.yaml" if middle == "yolo" else "labelmap.txt")).read_text()
    if middle == "yolo":
        names = yaml.safe_load(config)["names"]
        assert list(names) == list(range(80)) and names[0] == "person"


def test_exported_coco_splits_share_the_class_map(corpora: Path, tmp_path: Path) -> None:
    source = corpora / "formats/datumaro/coco_dataset/coco_instances"
    convert(str(source), tmp_path / "out", "coco")
    files = sorted((tmp_path / "out/annotations").glob("*.json"))
    assert [f.name for f in files] == ["instances_train.json", "instances_val.json"]
    maps = [json.loads(f.read_text())["categories"] for f in files]
    assert maps[0] == maps[1] and [c["id"] for c in maps[0]] == [1, 2, 4]
