"""COCO reader and writer: every element kind, every malformation, the real assets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import coco
from pixelpipe.formats.base import ReadOptions
from pixelpipe.sources import open_tree


def _doc(annotations: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 8}],
        "annotations": annotations if annotations is not None else [],
        "categories": [{"id": 0, "name": "zero"}, {"id": 7, "name": "seven", "supercategory": "n"}],
    }
    doc.update(extra)
    return doc


def _ann(**fields: Any) -> dict[str, Any]:
    return {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4], **fields}


PARSED = [
    # a plain box passes through unchanged, category ids 0 and 7 (a gap) are kept
    (_doc([_ann()]), (7, (1.0, 2.0, 3.0, 4.0)), None, None),
    # category id 0 is a real id, not "missing"
    (_doc([_ann(category_id=0)]), (0, (1.0, 2.0, 3.0, 4.0)), None, None),
    # a polygon in two parts keeps both parts
    (
        _doc([_ann(segmentation=[[0, 0, 4, 0, 4, 4], [5, 5, 9, 5, 9, 7]])]),
        (7, (1.0, 2.0, 3.0, 4.0)),
        [[0.0, 0.0, 4.0, 0.0, 4.0, 4.0], [5.0, 5.0, 9.0, 5.0, 9.0, 7.0]],
        None,
    ),
    # an uncompressed RLE (counts as a list) is compressed, the crowd flag kept
    (
        _doc([_ann(iscrowd=1, segmentation={"size": [8, 10], "counts": [10, 6, 64]})]),
        (7, (1.0, 2.0, 3.0, 4.0)),
        None,
        "rle",
    ),
    # a compressed RLE string passes through
    (
        _doc([_ann(segmentation={"size": [8, 10], "counts": "T15"})]),
        (7, (1.0, 2.0, 3.0, 4.0)),
        None,
        "rle",
    ),
    # no bbox but a polygon: the box is the polygon's extent
    (
        _doc([{**_ann(segmentation=[[2, 1, 6, 1, 6, 5]]), "bbox": None}]),
        (7, (2.0, 1.0, 4.0, 4.0)),
        [[2.0, 1.0, 6.0, 1.0, 6.0, 5.0]],
        None,
    ),
]


@pytest.mark.parametrize(("doc", "box", "polygons", "mask"), PARSED)
def test_parse_keeps_every_element(
    doc: dict[str, Any], box: tuple[int, tuple[float, ...]], polygons: Any, mask: str | None
) -> None:
    parsed = coco.parse(doc, "x.json")
    (ann,) = parsed.annotations[1]
    assert (ann.category_id, ann.bbox) == box
    assert ann.polygons == polygons
    assert (ann.rle is not None) == (mask == "rle")
    if ann.rle is not None:
        assert isinstance(ann.rle["counts"], str) and ann.rle["size"] == [8, 10]
    assert parsed.categories == [Category(0, "zero"), Category(7, "seven", "n")]


MALFORMED = [
    # not an object at all
    ([1, 2], r"x\.json: a COCO file is a JSON object"),
    # images missing
    ({"annotations": []}, r"x\.json images: required key 'images'"),
    # an image without file_name
    ({"images": [{"id": 1}]}, r"x\.json images\[0\]\.file_name: required key is missing"),
    # the same image id twice
    (
        {"images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}]},
        r"images\[1\]\.id: image id 1 is used twice",
    ),
    # the same file twice
    (
        {"images": [{"id": 1, "file_name": "a"}, {"id": 2, "file_name": "a"}]},
        r"images\[1\]\.file_name: file_name 'a' is listed twice",
    ),
    # a category without a name
    (_doc(categories=[{"id": 3}]), r"categories\[0\]: a category needs an integer 'id'"),
    # the same category id twice
    (
        _doc(categories=[{"id": 3, "name": "a"}, {"id": 3, "name": "b"}]),
        r"categories\[1\]\.id: category id 3 is used twice \('a' and 'b'\)",
    ),
    # an annotation on an image that does not exist
    (_doc([_ann(image_id=9)]), r"annotations\[0\]\.image_id: image_id 9 is not in 'images'"),
    # an unknown category id
    (_doc([_ann(category_id=5)]), r"annotations\[0\]\.category_id: category id 5 is not in"),
    # a category id that is not a whole number
    (_doc([_ann(category_id="7")]), r"annotations\[0\]\.category_id: category_id must be a whole"),
    # duplicate annotation ids
    (
        _doc([_ann(), _ann()]),
        r"annotations\[1\]\.id: annotation id 1 is used twice \(annotations\[0\] too\)",
    ),
    # a bbox with three numbers
    (_doc([_ann(bbox=[1, 2, 3])]), r"annotations\[0\]\.bbox: bbox must be \[x, y, width, height\]"),
    # a negative width
    (_doc([_ann(bbox=[1, 2, -3, 4])]), r"annotations\[0\]\.bbox: bbox width and height must not"),
    # a polygon with an odd number of values
    (
        _doc([_ann(segmentation=[[1, 2, 3, 4, 5]])]),
        r"annotations\[0\]\.segmentation: a polygon needs an even number",
    ),
    # an RLE without counts
    (_doc([_ann(segmentation={"size": [8, 10]})]), r"segmentation RLE needs 'size' and 'counts'"),
    # an RLE whose counts is garbage
    (
        _doc([_ann(segmentation={"size": [8, 10], "counts": 12})]),
        r"annotations\[0\]\.segmentation: segmentation RLE is malformed",
    ),
]


@pytest.mark.parametrize(("doc", "message"), MALFORMED)
def test_parse_names_the_element_of_each_problem(doc: Any, message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        coco.parse(doc, "x.json")


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    doc = _doc([_ann(category_id=5), {**_ann(bbox="no"), "id": 2}])
    with pytest.raises(PixelpipeError) as caught:
        coco.parse(doc, "x.json")
    keys = [p.key for p in caught.value.problems]
    assert keys == ["annotations[0].category_id", "annotations[1].bbox"]


def test_invalid_json_names_the_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "annotations.json").write_text('{\n  "images": [\n    {"id": 1,}\n  ]\n}\n')
    with pytest.raises(PixelpipeError, match=r"annotations\.json:3: invalid JSON at column 14"):
        coco.read(open_tree(str(tmp_path)))


def _layout(tmp_path: Path, files: dict[str, Any]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(json.dumps(content))
    return tmp_path


def test_several_files_give_splits_one_class_map_and_unlisted_images(tmp_path: Path) -> None:
    train = _doc([_ann()])
    val = {**_doc(), "images": [{"id": 4, "file_name": "b.jpg"}]}
    root = _layout(
        tmp_path,
        {
            "annotations/instances_train2017.json": train,
            "annotations/instances_val2017.json": val,
            "annotations/captions_train2017.json": {"images": [], "annotations": [{"x": 1}]},
            "images/train2017/a.jpg": b"x",
            "images/train2017/stray.jpg": b"x",
            "images/val2017/b.jpg": b"x",
        },
    )
    labels = coco.read(open_tree(str(root)))
    assert [(i.image, i.split, len(i.annotations)) for i in labels.items] == [
        ("images/train2017/a.jpg", "train", 1),
        ("images/val2017/b.jpg", "val", 0),
    ]
    assert [(r.id, r.reason) for r in labels.removed] == [
        ("images/train2017/stray.jpg", "unlisted")
    ]
    assert [c.id for c in labels.categories] == [0, 7]


def test_files_that_disagree_on_a_category_are_refused(tmp_path: Path) -> None:
    other = _doc(categories=[{"id": 7, "name": "eight"}])
    root = _layout(
        tmp_path, {"annotations/instances_a.json": _doc(), "annotations/instances_b.json": other}
    )
    with pytest.raises(PixelpipeError, match=r"category id 7 is 'eight' here but 'seven' in"):
        coco.read(open_tree(str(root)))


def test_an_image_in_two_splits_is_refused(tmp_path: Path) -> None:
    root = _layout(
        tmp_path,
        {
            "annotations/instances_train.json": _doc(),
            "annotations/instances_val.json": _doc(),
            "images/a.jpg": b"x",
        },
    )
    with pytest.raises(PixelpipeError, match=r"'a\.jpg' is in split 'val' here and 'train'"):
        coco.read(open_tree(str(root)), ReadOptions(images="images"))


UNSAFE = [
    # climbing out with ..
    "../secret.jpg",
    # an absolute path
    "/etc/passwd",
    # a Windows drive
    "C:\\Windows\\x.jpg",
    # backslashes that climb
    "..\\..\\x.jpg",
]


@pytest.mark.parametrize("name", UNSAFE)
def test_file_names_that_escape_are_removed_not_read(tmp_path: Path, name: str) -> None:
    doc = {**_doc(), "images": [{"id": 1, "file_name": name}]}
    root = _layout(tmp_path, {"annotations.json": doc})
    labels = coco.read(open_tree(str(root)))
    assert labels.items == []
    assert [(r.id, r.reason) for r in labels.removed] == [(name, "unsafe_path")]


def test_dump_writes_ids_as_mapped_and_loads_in_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    sample = Sample(
        id="a b/ü.jpg",
        image="",
        sha256="",
        width=10,
        height=8,
        source="",
        annotations=[
            Annotation(7, (1, 2, 3, 4), polygons=[[1, 2, 4, 2, 4, 6], [5, 5, 6, 5, 6, 6]]),
            Annotation(0, (0, 0, 2, 2), rle={"size": [8, 10], "counts": "T15"}, iscrowd=True),
            Annotation(7, (2, 2, 1, 1), attributes={"keypoints": [2, 2, 2], "num_keypoints": 1}),
        ],
    )
    cats = [Category(0, "zero"), Category(7, "seven", "n")]
    doc = coco.dump([sample], cats, lambda s: s.id, {0: 1, 7: 2})
    assert [c["id"] for c in doc["categories"]] == [1, 2]
    assert [a["category_id"] for a in doc["annotations"]] == [2, 1, 2]
    assert doc["annotations"][2]["keypoints"] == [2, 2, 2]
    path = tmp_path / "out.json"
    coco.write_json(path, doc)
    api = COCO(str(path))
    assert api.getImgIds() == [1] and len(api.getAnnIds()) == 3
    assert api.annToMask(api.loadAnns([2])[0]).sum() > 0
    assert coco.parse(json.loads(path.read_text()), "out.json").images[0].file_name == "a b/ü.jpg"


# Datumaro's COCO assets: several layouts of the same two images.
DATUMARO = [
    # the classic layout: annotations/instances_<subset>.json + images/<subset>/
    ("coco_dataset/coco", {"images/train/a.jpg": "train", "images/val/b.jpg": "val"}),
    # instances only
    ("coco_dataset/coco_instances", {"images/train/a.jpg": "train", "images/val/b.jpg": "val"}),
    # mmdetection: images in <subset>/ beside annotations/
    ("coco_dataset/mmdet_coco", {"train/a.jpg": "train", "val/b.jpg": "val"}),
    # Roboflow: <subset>/_annotations.coco.json next to its images
    ("coco_dataset/coco_roboflow", {"train/a.jpg": "train", "val/b.jpg": "val"}),
    # keypoints files are read for their boxes
    (
        "coco_dataset/coco_person_keypoints",
        {"images/train/a.jpg": "train", "images/val/b.jpg": "val"},
    ),
]


@pytest.mark.parametrize(("folder", "images"), DATUMARO)
def test_datumaro_coco_assets(corpora: Path, folder: str, images: dict[str, str]) -> None:
    labels = coco.read(open_tree(str(corpora / "formats" / "datumaro" / folder)))
    assert {i.image: i.split for i in labels.items} == images
    assert labels.removed == []
    val = next(i for i in labels.items if i.split == "val")
    assert val.annotations, "the val image has annotations"


def test_datumaro_instances_keep_attributes_polygons_and_uncompressed_rle(corpora: Path) -> None:
    labels = coco.read(open_tree(str(corpora / "formats/datumaro/coco_dataset/coco_instances")))
    val = next(i for i in labels.items if i.split == "val")
    polygon, crowd = val.annotations
    assert polygon.polygons == [[0.0, 0.0, 1.0, 0.0, 1.0, 2.0, 0.0, 2.0]]
    assert polygon.attributes == {"x": 1, "y": "hello"}
    assert crowd.iscrowd and crowd.rle is not None and isinstance(crowd.rle["counts"], str)
    assert [c.id for c in labels.categories] == [1, 2, 4]


def test_labelformat_rle_masks_and_missing_image(corpora: Path) -> None:
    tree = open_tree(
        str(
            corpora
            / "formats/labelformat/instance_segmentation/COCO/instances_with_binary_mask.json"
        )
    )
    labels = coco.read(tree)
    masks = [a for i in labels.items for a in i.annotations if a.rle is not None]
    assert len(masks) == 1 and masks[0].iscrowd
    assert [c.id for c in labels.categories] == [0, 1, 2, 3]
