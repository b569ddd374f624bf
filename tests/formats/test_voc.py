"""Pascal VOC reader and writer: conventions, layouts, malformed XML, the real assets."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import voc
from pixelpipe.formats.base import Problems, ReadOptions
from pixelpipe.sources import open_tree


def _xml(objects: str, head: str = "<filename>a.jpg</filename>") -> str:
    return f"<annotation>\n  {head}\n  <size><width>20</width><height>10</height></size>\n{objects}</annotation>\n"


def _object(name: str = "cat", box: str = "1 2 5 6", extra: str = "") -> str:
    x1, y1, x2, y2 = box.split()
    return (
        f"  <object>\n    <name>{name}</name>{extra}\n"
        f"    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>\n"
        "  </object>\n"
    )


def _read(tmp_path: Path, files: dict[str, str | bytes], **options: object) -> object:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return voc.read(open_tree(str(tmp_path)), ReadOptions(**options))  # type: ignore[arg-type]


BOXES = [
    # corners (CVAT, labelImg): the numbers are continuous corner coordinates
    ("1 2 5 6", "corners", (1.0, 2.0, 4.0, 4.0)),
    # inclusive (the devkit): 1-based pixel indices, both ends inside the box
    ("1 2 5 6", "inclusive", (0.0, 1.0, 5.0, 5.0)),
    # floats are kept, not rounded
    ("1.25 2.5 5.75 6.125", "corners", (1.25, 2.5, 4.5, 3.625)),
    # a one-pixel box in the devkit convention
    ("3 3 3 3", "inclusive", (2.0, 2.0, 1.0, 1.0)),
    # a degenerate box is kept as read (validate reports it)
    ("4 4 4 4", "corners", (4.0, 4.0, 0.0, 0.0)),
]


@pytest.mark.parametrize(("box", "convention", "expected"), BOXES)
def test_pixel_conventions(tmp_path: Path, box: str, convention: str, expected: tuple) -> None:
    labels = _read(tmp_path, {"a.xml": _xml(_object(box=box))}, pixel_convention=convention)
    assert labels.items[0].annotations[0].bbox == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize("convention", ["corners", "inclusive"])
def test_from_bbox_inverts_to_bbox(convention: str) -> None:
    box = (3.25, 0.5, 10.75, 4.0)
    corners = voc.from_bbox(box, convention)  # type: ignore[arg-type]
    assert voc.to_bbox(corners, convention) == pytest.approx(box)  # type: ignore[arg-type]


MALFORMED = [
    # not XML: the parser's line and column
    (b"<annotation>\n<object>\n</annotation>", r"a\.xml:3: invalid XML at column 3"),
    # an entity expansion bomb is refused before it expands
    (
        b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;">]>\n'
        b"<annotation>&y;</annotation>",
        r"a\.xml:2: refused: DTDForbidden",
    ),
    # an external entity is refused
    (
        b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
        b"<annotation>&e;</annotation>",
        r"a\.xml:2: refused",
    ),
    # a box corner that is not a number, with the element and its line
    (
        _xml(_object(box="1 2 x 6")).encode(),
        r"a\.xml:6 object\[1\]/bndbox/xmax: <xmax> must be a number, got 'x'",
    ),
    # an object without a box
    (
        _xml("  <object>\n    <name>cat</name>\n  </object>\n").encode(),
        r"a\.xml:4 object\[1\]: the object has no <bndbox>",
    ),
    # an object without a name
    (_xml("  <object><name> </name></object>\n").encode(), r"object\[1\]/name: the object has no"),
    # corners in the wrong order
    (
        _xml(_object(box="5 2 1 6")).encode(),
        r"object\[1\]/bndbox: xmax/ymax \(1, 6\) are less than",
    ),
    # another root element (a CVAT or LabelMe file)
    (b"<annotations/>", r"a\.xml:1: the root element is <annotations>, VOC's is <annotation>"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_files_name_file_line_and_element(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(PixelpipeError, match=message):
        _read(tmp_path, {"a.xml": data})


def test_unknown_class_with_a_labelmap_names_the_line(tmp_path: Path) -> None:
    files = {
        "Annotations/a.xml": _xml(_object() + _object(name="dog")),
        "labelmap.txt": "# label:color_rgb:parts:actions\ncat:1,2,3::\n",
    }
    with pytest.raises(PixelpipeError, match=r"a\.xml:8 object\[2\]/name: class 'dog' is not in"):
        _read(tmp_path, files)


def test_attributes_filename_and_classes(tmp_path: Path) -> None:
    extra = (
        "<pose>Left</pose><truncated>1</truncated><difficult>0</difficult><occluded>1</occluded>"
        "<attributes><attribute><name>color</name><value>red</value></attribute></attributes>"
    )
    files = {
        "Annotations/xml name.xml": _xml(
            _object(extra=extra) + _object(name="dog"), "<filename>other name.jpg</filename>"
        ),
        "JPEGImages/other name.jpg": b"x",
    }
    labels = _read(tmp_path, files, classes=["dog", "cat"])
    (item,) = labels.items  # type: ignore[attr-defined]
    assert item.image == "JPEGImages/other name.jpg" and (item.width, item.height) == (20, 10)
    cat, dog = item.annotations
    assert (cat.category_id, dog.category_id) == (1, 0)
    assert cat.attributes == {
        "color": "red",
        "difficult": False,
        "occluded": True,
        "pose": "Left",
        "truncated": True,
    }


def test_layout_splits_trainval_and_missing(tmp_path: Path) -> None:
    files = {
        "Annotations/a.xml": _xml(_object()),
        "Annotations/b.xml": _xml(_object(), "<filename>b.jpg</filename>"),
        "JPEGImages/a.jpg": b"x",
        "JPEGImages/b.jpg": b"x",
        "JPEGImages/c.jpg": b"x",
        "JPEGImages/stray.jpg": b"x",
        "ImageSets/Main/train.txt": "a\n# a comment\n\n",
        "ImageSets/Main/val.txt": "b\nc\n",
        "ImageSets/Main/trainval.txt": "a\nb\nc\n",
        "ImageSets/Main/cat_train.txt": "a  1\n",
        "ImageSets/Main/test.txt": "gone\n",
    }
    labels = _read(tmp_path, files)
    assert [(i.image, i.split, len(i.annotations)) for i in labels.items] == [  # type: ignore[attr-defined]
        ("JPEGImages/a.jpg", "train", 1),
        ("JPEGImages/b.jpg", "val", 1),
        ("JPEGImages/c.jpg", "val", 0),
    ]
    assert [(r.id, r.reason) for r in labels.removed] == [  # type: ignore[attr-defined]
        ("JPEGImages/gone", "missing"),
        ("JPEGImages/stray.jpg", "unlisted"),
    ]


def test_an_id_in_two_splits_is_refused(tmp_path: Path) -> None:
    files = {
        "Annotations/a.xml": _xml(_object()),
        "ImageSets/Main/train.txt": "a\n",
        "ImageSets/Main/test.txt": "a\n",
    }
    with pytest.raises(
        PixelpipeError, match=r"train\.txt:1: 'a' is in split 'train' here and 'test'"
    ):
        _read(tmp_path, files)


def test_filename_that_escapes_is_removed(tmp_path: Path) -> None:
    labels = _read(tmp_path, {"a.xml": _xml(_object(), "<filename>../../x.jpg</filename>")})
    assert [(r.id, r.reason) for r in labels.removed] == [("../../x.jpg", "unsafe_path")]  # type: ignore[attr-defined]


def test_labelmap_lines() -> None:
    problems = Problems()
    names = voc.parse_labelmap("# c\nbg:0,0,0::\ncat:1,1,1:head:\n\n:1::\ncat:::\n", "lm", problems)
    assert names == ["bg", "cat"]
    assert [(p.line, p.message) for p in problems.items] == [
        (5, "a label needs a name before ':'"),
        (6, "label 'cat' is listed twice"),
    ]


def test_write_then_read_keeps_boxes_attributes_and_class_order(tmp_path: Path) -> None:
    cats = [Category(3, "zebra"), Category(5, "ant"), Category(9, "unused")]
    sample = Sample(
        id="sub/a b.ü.png",
        image="",
        sha256="",
        width=30,
        height=20,
        source="",
        split="train",
        annotations=[
            Annotation(5, (0.5, 1.25, 10.0, 3.0), attributes={"difficult": True, "note": "x"}),
            Annotation(3, (2, 2, 0, 0), iscrowd=True),
        ],
    )
    for convention in ("corners", "inclusive"):
        out = tmp_path / convention
        voc.write([sample], cats, out, lambda s, p: False, convention)  # type: ignore[arg-type]
        labels = voc.read(open_tree(str(out)), ReadOptions(pixel_convention=convention))  # type: ignore[arg-type]
        assert [c.name for c in labels.categories] == ["zebra", "ant", "unused"]
        (item,) = labels.items
        assert item.image == "JPEGImages/sub__a b.ü.png" and item.split == "train"
        first, second = item.annotations
        assert first.bbox == (0.5, 1.25, 10.0, 3.0) and first.category_id == 1
        assert first.attributes == {"difficult": True, "note": "x", "truncated": False}
        assert second.iscrowd and second.bbox == (2.0, 2.0, 0.0, 0.0)


def test_writer_refuses_ids_that_share_an_xml(tmp_path: Path) -> None:
    samples = [Sample(i, "", "", 1, 1, "") for i in ("a.jpg", "a.png")]
    with pytest.raises(PixelpipeError, match=r"'a\.png' and 'a\.jpg' would share"):
        voc.write(samples, [], tmp_path, lambda s, p: False)


# Datumaro's VOC assets.
DATUMARO = [
    # full layout: train.txt and test.txt; 2007_000002 has an image but no XML
    (
        "voc_dataset1",
        {"JPEGImages/2007_000001.jpg": ("train", 2), "JPEGImages/2007_000002.jpg": ("test", 0)},
    ),
    # labelmap.txt and an object-less @.xml that sorts first; no images at all
    (
        "voc_dataset2",
        {f"JPEGImages/{n}.jpg": ("trainval", 0 if n == "@" else 1) for n in "@abcd"},
    ),
    # a split list with a blank line and a comment
    ("voc_dataset3", {"JPEGImages/2007_000001.jpg": ("train", 1)}),
]


@pytest.mark.parametrize(("folder", "expected"), DATUMARO)
def test_datumaro_voc_assets(corpora: Path, folder: str, expected: dict) -> None:
    tree = open_tree(str(corpora / "formats/datumaro/voc_dataset" / folder))
    labels = voc.read(tree)
    assert {i.image: (i.split, len(i.annotations)) for i in labels.items} == expected
    assert labels.removed == []


def test_datumaro_voc_parts_actions_and_labelmap(corpora: Path) -> None:
    one = voc.read(open_tree(str(corpora / "formats/datumaro/voc_dataset/voc_dataset1")))
    cat, person = one.items[0].annotations
    assert cat.bbox == (1.0, 2.0, 2.0, 2.0) and cat.attributes["truncated"] is True
    assert person.attributes["parts"] == [{"name": "head", "bbox": [5.5, 6.0, 2.0, 2.0]}]
    assert person.attributes["actions"]["jumping"] is False
    two = voc.read(open_tree(str(corpora / "formats/datumaro/voc_dataset/voc_dataset2")))
    assert [c.name for c in two.categories][:3] == ["background", "aeroplane", "bicycle"]
    assert len(two.categories) == 22
    at = next(i for i in two.items if i.image.endswith("@.jpg"))
    assert at.annotations == [] and at.width is None


def test_bccd_reads_every_box(corpora: Path) -> None:
    labels = voc.read(open_tree(str(corpora / "detection/bccd_voc/BCCD")))
    assert len(labels.items) == 364
    assert sum(len(i.annotations) for i in labels.items) == 4888
    assert [c.name for c in labels.categories] == ["Platelets", "RBC", "WBC"]
    splits: dict[str | None, int] = {}
    for item in labels.items:
        splits[item.split] = splits.get(item.split, 0) + 1
    assert splits == {"train": 205, "val": 87, "test": 72}
    degenerate = [a.bbox for i in labels.items for a in i.annotations if a.bbox[2] == 0]
    assert degenerate == [(504.0, 337.0, 0.0, 0.0), (181.0, 329.0, 0.0, 0.0)]
