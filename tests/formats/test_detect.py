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


REAL_REVIEW = [
    # CVAT: a task export, <subset>.xml beside images/
    ("formats/datumaro/cvat_dataset/for_images/export_task", "cvat"),
    # CVAT: a project export, annotations.xml beside images/<subset>/
    ("formats/datumaro/cvat_dataset/for_images/export_project", "cvat"),
    # CVAT: the file itself, whose root <annotations> is not VOC's <annotation>
    ("formats/datumaro/cvat_dataset/for_images/export_task/train.xml", "cvat"),
]


@pytest.mark.parametrize(("location", "fmt"), REAL_REVIEW)
def test_detects_real_review_exports(corpora: Path, location: str, fmt: str) -> None:
    assert detect.detect(open_tree(str(corpora / location))) == fmt


FILES = [
    # a JSON list is a Label Studio export
    (
        "export.json",
        b'\n  [{"id": 1, "data": {"image": "a.jpg"}, "annotations": []}]',
        "labelstudio",
    ),
    # one Label Studio task object
    ("task.json", b'{"id": 1, "data": {"image": "a.jpg"}, "annotations": []}', "labelstudio"),
    # a COCO object, even one whose first key is annotations
    ("coco.json", b'{"annotations": [], "images": [], "categories": []}', "coco"),
    # CVAT's root element
    ("a.xml", b'<?xml version="1.0"?>\n<annotations><version>1.1</version></annotations>', "cvat"),
    # VOC's root element
    ("b.xml", b"<annotation><filename>a.jpg</filename></annotation>", "voc"),
    # a CSV file
    ("labels.csv", b"item,annotator,label\n", "csv"),
]


@pytest.mark.parametrize(("name", "content", "fmt"), FILES)
def test_file_format_of_one_file_in_a_folder(
    tmp_path: Path, name: str, content: bytes, fmt: str
) -> None:
    (tmp_path / name).write_bytes(content)
    (tmp_path / "other.xml").write_bytes(b"<annotation/>")  # the folder's other files do not count
    assert detect.file_format(open_tree(str(tmp_path)), name) == fmt


def test_file_format_needs_a_known_ending(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("0 0.5 0.5 1 1\n")
    with pytest.raises(PixelpipeError, match=r"labels\.txt: cannot tell the format from the name"):
        detect.file_format(open_tree(str(tmp_path)), "labels.txt")


@pytest.mark.parametrize(("name", "content", "fmt"), FILES)
def test_a_named_file_decides_by_content(
    tmp_path: Path, name: str, content: bytes, fmt: str
) -> None:
    (tmp_path / name).write_bytes(content)
    assert detect.detect(open_tree(str(tmp_path / name))) == fmt


FOLDERS = [
    # annotations.xml whose root is <annotations>: CVAT, not loose VOC
    ({"annotations.xml": "<annotations><version>1.1</version></annotations>"}, "cvat"),
    # loose VOC files are still VOC
    ({"a.xml": "<annotation><filename>a.jpg</filename></annotation>"}, "voc"),
    # a root JSON list of tasks: Label Studio, not COCO, even named annotations.json
    ({"annotations.json": '[{"data": {"image": "a.jpg"}, "annotations": []}]'}, "labelstudio"),
    # a COCO results file is a list too, but not of tasks: no format
    ({"results.json": '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]'}, None),
]


@pytest.mark.parametrize(("files", "fmt"), FOLDERS)
def test_folders(tmp_path: Path, files: dict[str, str], fmt: str | None) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    if fmt is None:
        with pytest.raises(PixelpipeError, match=r"no COCO, VOC or YOLO annotation files found"):
            detect.detect(open_tree(str(tmp_path)))
    else:
        assert detect.detect(open_tree(str(tmp_path))) == fmt


def test_read_dispatches_the_new_formats(tmp_path: Path) -> None:
    (tmp_path / "export.json").write_text('[{"data": {"image": "a.jpg"}, "annotations": []}]')
    (tmp_path / "labels.csv").write_text("item,annotator,label\na.jpg,ann,cat\n")
    (tmp_path / "annotations.xml").write_text(
        '<annotations><image id="0" name="a.jpg" width="2" height="2"/></annotations>'
    )
    for name, fmt in (
        ("export.json", "labelstudio"),
        ("labels.csv", "csv"),
        ("annotations.xml", "cvat"),
    ):
        labels = detect.read(open_tree(str(tmp_path / name)), "auto")
        assert (labels.format, [i.image for i in labels.items]) == (fmt, ["a.jpg"])
