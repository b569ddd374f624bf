"""Publish: every export layout, one class map everywhere, the category-id policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from steps import serial_context

from pixelpipe.dataset import Annotation, Category, Dataset, DatasetBuilder, Sample, write_dataset
from pixelpipe.engine.registry import resolve
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import coco, voc, yolo
from pixelpipe.formats.base import ReadOptions, to_pixels
from pixelpipe.sources import open_tree

CATEGORIES = [
    Category(1, "person", "human"),
    Category(3, "car"),
    Category(7, "cup"),
    Category(9, "unused"),
]
BOXES = {
    "train/a b.jpg": (
        "train",
        [Annotation(1, (10.5, 20.25, 30.0, 40.0)), Annotation(7, (0, 0, 5, 5))],
    ),
    "train/ü.png": ("train", [Annotation(3, (1.0, 2.0, 50.0, 30.0), iscrowd=True)]),
    "val/c.jpg": ("val", [Annotation(7, (60.0, 50.0, 30.5, 20.125))]),
    "val/empty.jpg": ("val", []),
}


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A project with one dataset (``data/ingest``) whose images are in its store."""
    store = tmp_path / "data" / "ingest"
    builder = DatasetBuilder(CATEGORIES)
    for index, (sample_id, (split, labels)) in enumerate(sorted(BOXES.items())):
        image = store / "images" / f"{index}{Path(sample_id).suffix}"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 80), (index * 40, 0, 0)).save(image)
        builder.add(
            Sample(
                id=sample_id,
                image=image.relative_to(tmp_path).as_posix(),
                sha256=f"{index:064d}",
                width=100,
                height=80,
                source=sample_id,
                split=split,
                annotations=labels,
            )
        )
    write_dataset(store, builder, stage="ingest", kind="ingest", params={}, inputs={})
    return tmp_path


def _publish(root: Path, **params: Any) -> tuple[Path, dict[str, Any]]:
    kind = resolve("publish")
    validated = kind.params(**params)
    out = root / "data" / "publish"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ctx = serial_context(root, "publish", out)
    result = kind.step([Dataset(root / "data" / "ingest")], validated, ctx)
    assert result.output.samples_table().num_rows == len(BOXES)
    return out, result.metrics


def _by_name(boxes: list[tuple[str, tuple[float, ...]]]) -> list[tuple[str, tuple[float, ...]]]:
    return sorted((n, tuple(round(v, 6) for v in b)) for n, b in boxes)


def _expected(crowd: bool = True) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    names = {c.id: c.name for c in CATEGORIES}
    return {
        Path(sample_id).name: _by_name(
            [(names[a.category_id], a.bbox) for a in anns if crowd or not a.iscrowd]
        )
        for sample_id, (_, anns) in BOXES.items()
    }


def test_every_format_with_one_class_map(upstream: Path) -> None:
    out, metrics = _publish(upstream, formats=["coco", "yolo", "voc", "imagefolder"])
    # COCO: COCO's layout, the class map's ids, every category in every split file
    assert sorted(p.name for p in (out / "coco/annotations").iterdir()) == [
        "instances_train.json",
        "instances_val.json",
    ]
    splits = {
        s: json.loads((out / f"coco/annotations/instances_{s}.json").read_text())
        for s in ("train", "val")
    }
    assert [c["id"] for c in splits["train"]["categories"]] == [1, 3, 7, 9]
    assert splits["val"]["categories"] == splits["train"]["categories"]
    assert {i["file_name"] for i in splits["val"]["images"]} == {"val/c.jpg", "val/empty.jpg"}
    for split, document in splits.items():  # file_name is relative to images/<split>/
        assert all(
            (out / "coco/images" / split / i["file_name"]).is_file() for i in document["images"]
        )
    # YOLO: Ultralytics keys, indices 0..n-1 in id order, crowd left out
    config = yaml.safe_load((out / "yolo/data.yaml").read_text())
    assert config == {
        "train": "images/train",
        "val": "images/val",
        "nc": 4,
        "names": {0: "person", 1: "car", 2: "cup", 3: "unused"},
    }
    assert metrics["yolo_crowd_skipped"] == 1 and metrics["yolo_images"] == 4
    # VOC: labelmap in id order, ImageSets per split plus trainval
    assert (out / "voc/labelmap.txt").read_text().splitlines()[1:] == [
        "person:::",
        "car:::",
        "cup:::",
        "unused:::",
    ]
    assert (out / "voc/ImageSets/Main/val.txt").read_text() == "val__c\nval__empty\n"
    assert (out / "voc/ImageSets/Main/trainval.txt").is_file()
    # image folders: only single-class images, with their metadata
    assert sorted(
        p.relative_to(out / "imagefolder").as_posix() for p in (out / "imagefolder").rglob("*.*")
    ) == [
        "skipped.txt",
        "train/car/train/ü.png",
        "train/metadata.jsonl",
        "val/cup/val/c.jpg",
        "val/metadata.jsonl",
    ]
    # the class map, with each format's ids
    class_map = json.loads((out / "class_map.json").read_text())
    assert class_map[0] == {"id": 1, "name": "person", "parent": "human", "coco": 1, "yolo": 0}
    assert [c["yolo"] for c in class_map] == [0, 1, 2, 3]


def test_exports_read_back_to_the_same_boxes(upstream: Path) -> None:
    out, _ = _publish(upstream, formats=["coco", "yolo", "voc"], yolo_include_crowd=True)
    for fmt, reader in (("coco", coco.read), ("voc", voc.read), ("yolo", yolo.read)):
        labels = reader(open_tree(str(out / fmt)), ReadOptions())
        names = labels.category_names()
        assert sorted(names.values()) == sorted(c.name for c in CATEGORIES), fmt
        got = {
            Path(i.image).name.rsplit("__")[-1]: _by_name(
                [
                    (names[a.category_id], a.bbox)
                    for a in (to_pixels(i.annotations, 100, 80) if i.normalized else i.annotations)
                ]
            )
            for i in labels.items
        }
        assert got == _expected(), fmt
        assert {Path(i.image).name.rsplit("__")[-1]: i.split for i in labels.items} == {
            Path(k).name: v[0] for k, v in BOXES.items()
        }, fmt


def test_exported_coco_loads_in_pycocotools(upstream: Path) -> None:
    from pycocotools.coco import COCO

    out, _ = _publish(upstream)
    boxes, crowd = 0, 0
    for split in ("train", "val"):
        api = COCO(str(out / f"coco/annotations/instances_{split}.json"))
        assert sorted(api.getCatIds()) == [1, 3, 7, 9]
        boxes += len(api.getAnnIds())
        crowd += len(api.getAnnIds()) - len(api.getAnnIds(iscrowd=False))
        for image in api.loadImgs(api.getImgIds()):
            assert (out / "coco/images" / split / image["file_name"]).is_file()
    assert (boxes, crowd) == (4, 1)


POLICIES = [
    # auto: COCO keeps ids, YOLO numbers them from 0
    ("auto", [1, 3, 7, 9], [0, 1, 2, 3], None),
    # zero_based everywhere
    ("zero_based", [0, 1, 2, 3], [0, 1, 2, 3], None),
    # one_based: COCO from 1, YOLO cannot start at 1
    ("one_based", [1, 2, 3, 4], None, r"YOLO class indices start at 0"),
    # preserve: YOLO cannot hold ids with gaps
    (
        "preserve",
        [1, 3, 7, 9],
        None,
        r"YOLO class indices must be 0\.\.3, but the class map's ids are \[1, 3, 7, 9\]",
    ),
]


@pytest.mark.parametrize(("policy", "coco_ids", "yolo_ids", "error"), POLICIES)
def test_category_id_policy(
    upstream: Path, policy: str, coco_ids: list[int], yolo_ids: list[int] | None, error: str | None
) -> None:
    out, _ = _publish(upstream, formats=["coco"], category_ids=policy)
    documents = [json.loads(p.read_text()) for p in (out / "coco/annotations").iterdir()]
    assert [c["id"] for c in documents[0]["categories"]] == coco_ids
    names = {c["id"]: c["name"] for c in documents[0]["categories"]}
    used = {names[a["category_id"]] for d in documents for a in d["annotations"]}
    assert used == {"person", "car", "cup"}
    if error:
        with pytest.raises(PixelpipeError, match=error):
            _publish(upstream, formats=["yolo"], category_ids=policy)
    else:
        out, _ = _publish(upstream, formats=["yolo"], category_ids=policy)
        assert list(yaml.safe_load((out / "yolo/data.yaml").read_text())["names"]) == yolo_ids


def test_voc_inclusive_convention(upstream: Path) -> None:
    out, _ = _publish(upstream, formats=["voc"], voc_pixel_convention="inclusive")
    text = (out / "voc/Annotations/val__c.xml").read_text()
    assert "<xmin>61</xmin>" in text and "<xmax>90.5</xmax>" in text
    labels = voc.read(open_tree(str(out / "voc")), ReadOptions(pixel_convention="inclusive"))
    (box,) = next(i for i in labels.items if i.image.endswith("c.jpg")).annotations
    assert box.bbox == (60.0, 50.0, 30.5, 20.125)


def test_yolo_segment_task(upstream: Path) -> None:
    out, _ = _publish(upstream, formats=["yolo"], yolo_task="segment")
    line = (out / "yolo/labels/val/val__c.txt").read_text().split()
    assert line[0] == "2" and len(line) == 9  # a box written as a 4-point polygon
