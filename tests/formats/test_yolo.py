"""YOLO reader and writer: label lines, the three layouts, orphans, clipping, real assets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import yolo
from pixelpipe.formats.base import Problems, ReadOptions, to_pixels
from pixelpipe.sources import open_tree

NAMES = {0: "a", 1: "b", 2: "c"}

LINES = [
    # a box: centre and size become the top-left corner and size
    ("1 0.5 0.5 0.2 0.4", (1, (0.4, 0.3, 0.2, 0.4)), None, None),
    # extra spaces and tabs are fine
    ("  2\t0.25   0.75 0.5 0.5  ", (2, (0.0, 0.5, 0.5, 0.5)), None, None),
    # a sixth number is a confidence score (Ultralytics' save_conf)
    ("0 0.5 0.5 1 1 0.87", (0, (0.0, 0.0, 1.0, 1.0)), None, 0.87),
    # a class written as a float that is whole
    ("1.0 0.5 0.5 0.2 0.2", (1, (0.4, 0.4, 0.2, 0.2)), None, None),
    # a polygon: the box is its extent
    (
        "0 0.1 0.2 0.5 0.2 0.5 0.6",
        (0, (0.1, 0.2, 0.4, 0.4)),
        [[0.1, 0.2, 0.5, 0.2, 0.5, 0.6]],
        None,
    ),
    # coordinates past 1 are kept as read (validate reports them)
    ("0 1.1 0.5 0.4 0.2", (0, (0.9, 0.4, 0.4, 0.2)), None, None),
]


@pytest.mark.parametrize(("line", "box", "polygons", "score"), LINES)
def test_label_lines(line: str, box: tuple, polygons: list | None, score: float | None) -> None:
    problems = Problems()
    (ann,) = yolo.parse_labels(line + "\n", "l.txt", NAMES, problems)
    assert not problems
    assert ann.category_id == box[0]
    assert ann.bbox == pytest.approx(box[1])
    if polygons:
        assert ann.polygons is not None and ann.polygons[0] == pytest.approx(polygons[0])
    else:
        assert ann.polygons is None
    assert ann.score == score


BAD_LINES = [
    # a class that is not a number
    ("cat 0.5 0.5 0.1 0.1", r"l\.txt:2: class index must be a whole number, got 'cat'"),
    # a fractional class
    ("1.5 0.5 0.5 0.1 0.1", r"l\.txt:2: class index must be a whole number"),
    # a class not in names
    ("7 0.5 0.5 0.1 0.1", r"l\.txt:2: class 7 is not in names \(0\.\.2\)"),
    # a coordinate that is not a number
    ("0 0.5 x 0.1 0.1", r"l\.txt:2: coordinates must be numbers"),
    # a NaN
    ("0 nan 0.5 0.1 0.1", r"l\.txt:2: coordinates must be finite"),
    # too few values
    ("0 0.5 0.5", r"l\.txt:2: expected 'class cx cy w h' or a polygon"),
    # a polygon with an odd count
    ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4", r"l\.txt:2: expected 'class cx cy w h' or a polygon"),
    # a negative size
    ("0 0.5 0.5 -0.1 0.1", r"l\.txt:2: box width and height must not be negative"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_bad_label_lines_name_file_and_line(line: str, message: str) -> None:
    problems = Problems()
    yolo.parse_labels(f"0 0.5 0.5 0.1 0.1\n{line}\n", "l.txt", NAMES, problems)
    with pytest.raises(PixelpipeError, match=message):
        problems.raise_if_any()


def _tree(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return tmp_path


def test_ultralytics_layout_with_orphans_and_images_without_labels(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "data.yaml": "path: .\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n",
            "images/train/x 1.jpg": b"x",
            "images/train/no labels.jpg": b"x",
            "images/val/y.png": b"x",
            "labels/train/x 1.txt": "0 0.5 0.5 0.2 0.2\n",
            "labels/train/ghost.txt": "1 0.5 0.5 0.2 0.2\n",
            "labels/val/y.txt": "",
        },
    )
    labels = yolo.read(open_tree(str(root)))
    assert [(i.image, i.split, len(i.annotations)) for i in labels.items] == [
        ("images/train/no labels.jpg", "train", 0),
        ("images/train/x 1.jpg", "train", 1),
        ("images/val/y.png", "val", 0),
    ]
    assert all(i.normalized for i in labels.items)
    assert [(r.id, r.reason) for r in labels.removed] == [("labels/train/ghost.txt", "missing")]
    assert labels.notes == {"images_without_labels": 1}
    assert [(c.id, c.name) for c in labels.categories] == [(0, "a"), (1, "b"), (2, "c")]


CONFIG_ERRORS = [
    # names missing
    ("train: images\n", r"data\.yaml names: required key 'names'"),
    # nc disagrees with names
    ("train: images\nnc: 3\nnames: [a]\n", r"data\.yaml nc: nc is 3 but names has 1 classes"),
    # a split folder that is not there
    ("train: images\nval: nowhere\nnames: [a]\n", r"data\.yaml val: 'nowhere' not found"),
    # a split path that leaves the dataset
    ("train: /etc\nnames: [a]\n", r"data\.yaml train: '/etc' is absolute or leaves"),
    # a YAML syntax error, with its line
    ("train: images\nnames: [a\n", r"data\.yaml:3: invalid YAML"),
    # a YAML tag is not executed
    ("train: !!python/object:os.system x\nnames: [a]\n", r"data\.yaml:1: invalid YAML"),
]


@pytest.mark.parametrize(("text", "message"), CONFIG_ERRORS)
def test_bad_dataset_yaml(tmp_path: Path, text: str, message: str) -> None:
    root = _tree(tmp_path, {"data.yaml": text, "images/a.jpg": b"x"})
    with pytest.raises(PixelpipeError, match=message):
        yolo.read(open_tree(str(root)), ReadOptions(annotations=["data.yaml"]))


def test_two_dataset_yamls_are_ambiguous(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"a.yaml": "names: [x]\n", "b.yaml": "names: [y]\n"})
    with pytest.raises(PixelpipeError, match=r"several YOLO dataset files \(a\.yaml, b\.yaml\)"):
        yolo.read(open_tree(str(root)))


def test_the_same_folder_for_train_and_val_means_no_split(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {"data.yaml": "train: images\nval: images\nnames: {0: a}\n", "images/a.jpg": b"x"},
    )
    (item,) = yolo.read(open_tree(str(root))).items
    assert item.split is None


def test_names_as_a_mapping_with_gaps(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "data.yaml": "train: images\nnames:\n  0: a\n  5: f\n",
            "images/a.jpg": b"x",
            "labels/a.txt": "5 0.5 0.5 0.1 0.1\n",
        },
    )
    labels = yolo.read(open_tree(str(root)))
    assert [(c.id, c.name) for c in labels.categories] == [(0, "a"), (5, "f")]
    assert labels.items[0].annotations[0].category_id == 5


def test_label_candidates() -> None:
    assert yolo.label_candidates("ds/images/train/a.b.jpg") == [
        "ds/labels/train/a.b.txt",
        "ds/images/train/a.b.txt",
    ]
    assert yolo.label_candidates("x.jpg") == ["x.txt"]


# Datumaro's and Roboflow's YOLO assets.
ASSETS = [
    # Darknet: obj.data, obj.names, train.txt with data/ paths, labels beside the images
    ("datumaro/yolo_dataset/strict", {"obj_train_data/1.jpg": ("train", 2)}),
    # Ultralytics folders without a YAML: obj.names, images/<split>, labels/<split>
    (
        "datumaro/yolo_dataset/labels",
        {"images/train/1.jpg": ("train", 2), "images/val/1.jpg": ("val", 2)},
    ),
    # labelformat: a YAML named example.yaml, folders with spaces, names with spaces
    (
        "labelformat/object_detection/YOLOv8",
        {
            "images/a-difficult subfolder/a-weird Filename.asdf.jpg": ("train", 8),
            "images/a-difficult subfolder/aNother-weird__ filename.with.many.characters.jpg": (
                "train",
                8,
            ),
        },
    ),
    # segmentation polygons
    (
        "labelformat/instance_segmentation/YOLOv8",
        {"images/000000036086.jpg": ("train", 2), "images/000000109005.jpg": ("train", 1)},
    ),
]


@pytest.mark.parametrize(("folder", "expected"), ASSETS)
def test_real_yolo_assets(corpora: Path, folder: str, expected: dict) -> None:
    labels = yolo.read(open_tree(str(corpora / "formats" / folder)))
    assert {i.image: (i.split, len(i.annotations)) for i in labels.items} == expected
    assert labels.removed == []


def test_roboflow_yaml_naming_a_missing_split_is_reported(corpora: Path) -> None:
    tree = open_tree(str(corpora / "formats/datumaro/roboflow_dataset/yolo"))
    with pytest.raises(PixelpipeError, match=r"data\.yaml val: '\.\./valid/images' not found"):
        yolo.read(tree)


def test_polygons_of_the_segmentation_asset(corpora: Path) -> None:
    labels = yolo.read(open_tree(str(corpora / "formats/labelformat/instance_segmentation/YOLOv8")))
    polygons = [a.polygons for i in labels.items for a in i.annotations]
    assert all(p and len(p) == 1 and len(p[0]) >= 6 for p in polygons)


def _sample(annotations: list[Annotation], split: str | None = None, id_: str = "a.jpg") -> Sample:
    return Sample(id_, "", "", 200, 100, "", split=split, annotations=annotations)


def _touch(sample: Sample, path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"pixels")
    return True


def test_writer_clips_skips_crowd_and_round_trips_exactly(tmp_path: Path) -> None:
    boxes = [
        Annotation(3, (10.125, 20.5, 30.3, 40.7)),  # inside
        Annotation(9, (-10, 90, 50, 20)),  # past the left and bottom edges: clipped
        Annotation(3, (250, 10, 5, 5)),  # outside: left out
        Annotation(9, (1, 1, 2, 2), iscrowd=True),  # crowd: left out by default
    ]
    cats = [Category(3, "c3"), Category(9, "c9")]
    ids = {3: 0, 9: 1}
    counts = yolo.write([_sample(boxes)], cats, tmp_path, _touch, ids)
    assert counts == {
        "images": 1,
        "boxes": 2,
        "boxes_clipped": 1,
        "boxes_outside": 1,
        "crowd_skipped": 1,
    }
    config = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert config == {"train": "images", "val": "images", "nc": 2, "names": {0: "c3", 1: "c9"}}
    labels = yolo.read(open_tree(str(tmp_path)))
    back = to_pixels(labels.items[0].annotations, 200, 100)
    assert back[0].bbox == pytest.approx((10.125, 20.5, 30.3, 40.7), abs=1e-9)
    assert back[1].bbox == pytest.approx((0, 90, 40, 10), abs=1e-9)


def test_writer_splits_val_and_segment_polygons(tmp_path: Path) -> None:
    samples = [
        _sample(
            [Annotation(0, (0, 0, 10, 10), polygons=[[0, 0, 4, 0, 4, 4], [6, 6, 9, 6, 9, 9]])],
            "train",
            "t.jpg",
        ),
        _sample([Annotation(0, (5, 5, 10, 10))], "test", "u.jpg"),
    ]
    yolo.write(samples, [Category(0, "a")], tmp_path, lambda s, p: False, {0: 0}, "segment")
    config = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert (config["train"], config["val"], config["test"]) == (
        "images/train",
        "images/train",
        "images/test",
    )
    merged = (tmp_path / "labels/train/t.txt").read_text().split()
    assert merged[0] == "0" and len(merged[1:]) == 2 * (3 + 3 + 2)  # two parts and a bridge
    rectangle = (tmp_path / "labels/test/u.txt").read_text().split()
    assert [float(v) for v in rectangle[1:]] == [0.025, 0.05, 0.075, 0.05, 0.075, 0.15, 0.025, 0.15]


def test_writer_refuses_ids_sharing_a_label_file(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"'b/a\.png' and 'b/a\.jpg' would share"):
        yolo.write(
            [_sample([], id_="b/a.jpg"), _sample([], id_="b/a.png")],
            [],
            tmp_path,
            lambda s, p: False,
            {},
        )
