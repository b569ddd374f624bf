"""Format detection: each layout is recognised; ambiguity and absence are explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import detect
from pixelpipe.sources import open_tree

REAL = [
    # COCO: annotations/instances_*.json among other task files
    ("formats/datumaro/coco_dataset/coco", "coco"),
    # COCO: Roboflow's <split>/_annotations.coco.json
    ("formats/datumaro/coco_dataset/coco_roboflow", "coco"),
    # COCO: a JSON file at the root
    ("formats/labelformat/object_detection/COCO", "coco"),
    # VOC: Annotations/ with an object-less @.xml first
    ("formats/datumaro/voc_dataset/voc_dataset2", "voc"),
    # VOC: loose XML files
    ("formats/labelformat/object_detection/PascalVOC", "voc"),
    # VOC: XML and images side by side (Roboflow)
    ("formats/datumaro/roboflow_dataset/voc", "voc"),
    # YOLO: Ultralytics YAML with another name
    ("formats/labelformat/object_detection/YOLOv8", "yolo"),
    # YOLO: Darknet obj.data
    ("formats/datumaro/yolo_dataset/strict", "yolo"),
    # YOLO: obj.names and label folders
    ("formats/datumaro/yolo_dataset/labels", "yolo"),
    # VOC: the BCCD set one level up
    ("detection/bccd_voc", "voc"),
]


@pytest.mark.parametrize(("folder", "fmt"), REAL)
def test_detects_real_layouts(corpora: Path, folder: str, fmt: str) -> None:
    assert detect.detect(open_tree(str(corpora / folder))) == fmt


def test_a_label_file_names_its_format(corpora: Path) -> None:
    tree = open_tree(str(corpora / "formats/labelformat/instance_segmentation/COCO/instances.json"))
    assert detect.detect(tree) == "coco"


def test_ambiguous_folder_lists_what_it_saw(tmp_path: Path) -> None:
    (tmp_path / "annotations.json").write_text('{"images": []}')
    (tmp_path / "data.yaml").write_text("names: [a]\ntrain: images\n")
    with pytest.raises(
        PixelpipeError,
        match=r"ambiguous, it looks like coco \(annotations\.json\); yolo \(data\.yaml\)",
    ):
        detect.detect(open_tree(str(tmp_path)))


def test_folder_without_labels_asks_for_a_format(corpora: Path) -> None:
    tree = open_tree(str(corpora / "formats/datumaro/image_dir_dataset"))
    with pytest.raises(
        PixelpipeError, match=r"no COCO, VOC or YOLO annotation files found; set the format"
    ):
        detect.detect(tree)


def test_unknown_format_name() -> None:
    with pytest.raises(PixelpipeError, match=r"unknown format 'kitti'"):
        detect.read(None, "kitti")  # type: ignore[arg-type]
