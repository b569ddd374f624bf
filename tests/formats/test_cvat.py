"""CVAT for images 1.1 XML: the real exports, shapes, attributes, hostile and malformed XML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import cvat
from pixelpipe.formats.base import LabelSet, ReadOptions
from pixelpipe.sources import open_tree

CVAT = "formats/datumaro/cvat_dataset/for_images"
BOX_ATTRIBUTES = {"occluded": True, "z_order": 1, "a1": True, "a2": "v3", "a3": "0003", "a4": 2.4}

# 20 lines: a body starts on line 21
META = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>4</id>
      <subset>Validation</subset>
      <labels>
        <label><name>car</name>
          <attributes>
            <attribute><name>score</name><input_type>number</input_type></attribute>
            <attribute><name>parked</name><input_type>checkbox</input_type></attribute>
            <attribute><name>color</name><input_type>select</input_type></attribute>
          </attributes>
        </label>
        <label><name>bus</name></label>
        <label><name>animal</name></label>
      </labels>
    </task>
  </meta>
"""


def _read(tmp_path: Path, body: str, files: tuple[str, ...] = (), **options: Any) -> LabelSet:
    (tmp_path / "annotations.xml").write_text(META + body + "</annotations>\n")
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return cvat.read(open_tree(str(tmp_path)), ReadOptions(**options))


def test_real_task_export(corpora: Path) -> None:
    labels = cvat.read(open_tree(str(corpora / CVAT / "export_task")))
    assert [(c.id, c.name) for c in labels.categories] == [(0, "label1"), (1, "label2")]
    assert [(i.image, i.split, i.width, i.height) for i in labels.items] == [
        ("images/img0.jpg", "train", 8, 8),  # the split is the file's name, train.xml
        ("images/img1.jpg", "train", 10, 10),
    ]
    (box,) = labels.items[0].annotations
    assert (box.category_id, box.bbox, box.polygons) == (0, (0.0, 2.0, 4.0, 2.0), None)
    assert box.attributes == BOX_ATTRIBUTES
    assert box.annotator is None
    # a polygon and a polyline with label="" and the points are counted, not read
    assert labels.items[1].annotations == []
    assert labels.notes == {
        "cvat_shapes_without_label": 1,
        "cvat_skipped_points": 1,
        "cvat_skipped_polyline": 1,
    }
    assert labels.warnings[0] == "CVAT elements not read: points (1), polyline (1)"
    assert labels.removed == []


def test_real_project_export(corpora: Path) -> None:
    labels = cvat.read(open_tree(str(corpora / CVAT / "export_project" / "annotations.xml")))
    assert [(i.image, i.split) for i in labels.items] == [
        ("images/Test/img0.jpg", "test"),
        ("images/Test/img1.jpg", "test"),
        ("images/Train/img0.jpg", "train"),
        ("images/Train/img1.jpg", "train"),
        ("images/Validation/img0.jpg", "val"),
        ("images/Validation/img1.jpg", "val"),
    ]
    box = labels.items[4].annotations[0]
    assert (box.bbox, box.attributes) == ((0.0, 2.0, 4.0, 2.0), BOX_ATTRIBUTES)
    (polygon,) = labels.items[5].annotations
    assert polygon.category_id == 0
    assert polygon.polygons == [[1.0, 2.0, 3.0, 4.0, 6.0, 5.0]]
    assert polygon.bbox == (1.0, 2.0, 5.0, 3.0)
    assert polygon.attributes == {"z_order": 1}
    assert labels.notes == {"cvat_skipped_points": 3, "cvat_skipped_polyline": 3}


def test_video_export_is_refused(corpora: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"annotations\.xml:2: CVAT for video"):
        cvat.read(open_tree(str(corpora / "formats/datumaro/cvat_dataset/for_video")))


def test_shapes_and_attributes(tmp_path: Path) -> None:
    body = """  <image id="0" name="a.jpg" width="640" height="480">
    <box label="car" source="auto" occluded="0" xtl="10.5" ytl="20" xbr="110.25" ybr="70" z_order="0" group_id="2">
      <attribute name="score">0.75</attribute>
      <attribute name="parked">false</attribute>
      <attribute name="color">red</attribute>
      <attribute name="note">free text</attribute>
    </box>
    <polygon label="bus" source="consensus" points="1,2;11,2;11.5,22" z_order="0"/>
    <tag label="animal" source="auto"/>
    <ellipse label="car" cx="5" cy="5" rx="2" ry="1"/>
  </image>
"""
    labels = _read(tmp_path, body, ("images/a.jpg",))
    (item,) = labels.items
    assert (item.image, item.split, item.normalized) == ("images/a.jpg", "val", False)
    box, polygon, tag = item.annotations
    assert box.bbox == (10.5, 20.0, 99.75, 50.0)  # corners: w = xbr - xtl
    assert box.score == 0.75  # the score attribute is the score, not an attribute
    assert (polygon.score, tag.score) == (None, None)
    assert box.attributes == {
        "source": "auto",
        "group_id": 2,
        "parked": False,
        "color": "red",
        "note": "free text",
    }
    assert (polygon.category_id, polygon.bbox) == (1, (1.0, 2.0, 10.5, 20.0))
    assert polygon.attributes == {"source": "consensus"}
    assert (tag.category_id, tag.bbox) == (2, (0.0, 0.0, 640.0, 480.0))
    assert tag.attributes == {"image_label": True, "source": "auto"}
    assert labels.notes == {"cvat_skipped_ellipse": 1}


def test_a_rotated_box_removes_the_image(tmp_path: Path) -> None:
    body = """  <image id="0" name="a.jpg" width="64" height="48">
    <box label="car" xtl="1" ytl="2" xbr="5" ybr="6" rotation="45.0"/>
  </image>
  <image id="1" name="b.jpg" width="64" height="48">
    <box label="car" xtl="1" ytl="2" xbr="5" ybr="6" rotation="0.0"/>
  </image>
"""
    labels = _read(tmp_path, body)
    assert [i.image for i in labels.items] == ["b.jpg"]
    assert [(r.id, r.reason) for r in labels.removed] == [("a.jpg", "rotated")]
    assert "annotations.xml:22: image[1]/box[1] has rotation 45" in labels.removed[0].detail


def test_images_folder_and_unlisted(tmp_path: Path) -> None:
    body = """  <image id="0" name="a.jpg" width="64" height="48"/>
  <image id="1" name="../b.jpg" width="64" height="48"/>
"""
    labels = _read(tmp_path, body, ("images/a.jpg", "images/c.jpg"))
    assert [i.image for i in labels.items] == ["images/a.jpg"]
    assert [(r.id, r.reason) for r in labels.removed] == [
        ("../b.jpg", "unsafe_path"),
        ("images/c.jpg", "unlisted"),
    ]


SCORES = [
    # a model's box: the declared number attribute is its score
    ('source="auto"', "car", "0.83", 0.83),
    # a score of 0 is a score
    ('source="auto"', "car", "0", 0.0),
    # no source (an older CVAT): the score is kept
    ("", "car", "0.5", 0.5),
    # a label that does not declare it: the text is read as a number
    ('source="semi-auto"', "bus", " 0.25 ", 0.25),
    # a box a person drew: CVAT filled in the attribute's default, which is no confidence
    ('source="manual"', "car", "0", None),
]


@pytest.mark.parametrize(("source", "label", "text", "score"), SCORES)
def test_the_score_attribute(
    tmp_path: Path, source: str, label: str, text: str, score: float | None
) -> None:
    body = f"""  <image id="0" name="a.jpg" width="64" height="48">
    <box label="{label}" {source} xtl="1" ytl="2" xbr="5" ybr="6">
      <attribute name="score">{text}</attribute>
    </box>
  </image>
"""
    labels = _read(tmp_path, body)
    (box,) = labels.items[0].annotations
    assert box.score == score
    assert type(box.score) is type(score)
    assert "score" not in box.attributes
    assert labels.notes.get("cvat_manual_scores_ignored", 0) == (score is None)


def test_another_score_attribute(tmp_path: Path) -> None:
    body = """  <image id="0" name="a.jpg" width="64" height="48">
    <box label="car" source="auto" xtl="1" ytl="2" xbr="5" ybr="6">
      <attribute name="score">0.75</attribute>
      <attribute name="confidence">0.5</attribute>
    </box>
  </image>
"""
    (tmp_path / "annotations.xml").write_text(META + body + "</annotations>\n")
    labels = cvat.read(open_tree(str(tmp_path)), score_attribute="confidence")
    (box,) = labels.items[0].annotations
    assert (box.score, box.attributes) == (0.5, {"source": "auto", "score": 0.75})


MALFORMED = [
    # not XML: the parser's line and column
    ("  <image id='0' name='a.jpg' width='1' height='1'>\n", r"annotations\.xml:\d+: invalid XML"),
    # a label not in <meta>, with the line of the shape
    (
        "  <image id='0' name='a.jpg' width='9' height='9'>\n"
        "    <box label='truck' xtl='0' ytl='0' xbr='1' ybr='1'/>\n  </image>\n",
        r"annotations\.xml:22 image\[1\]/box\[1\]: label 'truck' is not declared in <meta>",
    ),
    # a corner that is not a number
    (
        "  <image id='0' name='a.jpg' width='9' height='9'>\n"
        "    <box label='car' xtl='0' ytl='x' xbr='1' ybr='1'/>\n  </image>\n",
        r"annotations\.xml:22 image\[1\]/box\[1\]: xtl, ytl, xbr and ybr must be numbers",
    ),
    # an inverted box
    (
        "  <image id='0' name='a.jpg' width='9' height='9'>\n"
        "    <box label='car' xtl='5' ytl='0' xbr='1' ybr='1'/>\n  </image>\n",
        r"xbr/ybr \(1, 1\) are less than xtl/ytl \(5, 0\)",
    ),
    # a number attribute that is not a number, with the attribute's line
    (
        "  <image id='0' name='a.jpg' width='9' height='9'>\n"
        "    <box label='car' xtl='0' ytl='0' xbr='1' ybr='1'>\n"
        "      <attribute name='score'>high</attribute>\n    </box>\n  </image>\n",
        r"annotations\.xml:23 image\[1\]/box\[1\]/attribute\[1\]: attribute 'score' must be a number",
    ),
    # a score that is not a number, on a label that does not declare it a number
    (
        "  <image id='0' name='a.jpg' width='9' height='9'>\n"
        "    <box label='bus' xtl='0' ytl='0' xbr='1' ybr='1'>\n"
        "      <attribute name='score'>high</attribute>\n    </box>\n  </image>\n",
        r"annotations\.xml:22 image\[1\]/box\[1\]: attribute 'score' \(the score\) must be a number",
    ),
    # a polygon of two points
    (
        "  <image id='0' name='a.jpg' width='9' height='9'>\n"
        "    <polygon label='car' points='0,0;1,1'/>\n  </image>\n",
        r"image\[1\]/polygon\[1\]: a polygon needs at least 3 points",
    ),
    # an image without a size
    (
        "  <image id='0' name='a.jpg' width='0' height='9'/>\n",
        r"annotations\.xml:21 image\[1\]: width and height must be positive whole numbers",
    ),
    # the same image twice
    (
        "  <image id='0' name='a.jpg' width='9' height='9'/>\n"
        "  <image id='1' name='a.jpg' width='9' height='9'/>\n",
        r"annotations\.xml:22 image\[2\]: 'a\.jpg' is listed twice \(line 21 too\)",
    ),
]


@pytest.mark.parametrize(("body", "message"), MALFORMED)
def test_malformed_files(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        _read(tmp_path, body)


HOSTILE = [
    # billion laughs: refused before any entity expands
    (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        b' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
        b' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n]>\n'
        b"<annotations><image id='0' name='&lol3;' width='1' height='1'/></annotations>",
        r"x\.xml:2: refused: DTDForbidden \(DTDs and entities are not allowed\)",
    ),
    # an external entity (a local file) is refused
    (
        b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
        b"<annotations>&e;</annotations>",
        r"x\.xml:2: refused",
    ),
    # another root element
    (b"<annotation/>", r"x\.xml:1: the root element is <annotation>, CVAT's is <annotations>"),
]


@pytest.mark.parametrize(("data", "message"), HOSTILE)
def test_hostile_xml_is_refused(tmp_path: Path, data: bytes, message: str) -> None:
    (tmp_path / "x.xml").write_bytes(data)
    with pytest.raises(PixelpipeError, match=message):
        cvat.read(open_tree(str(tmp_path / "x.xml")))


ROOTS = [
    # CVAT
    (b'<?xml version="1.0" encoding="utf-8"?>\n<annotations>', "annotations"),
    # VOC: a prefix of CVAT's root name, told apart
    (b"<annotation>\n  <folder>x</folder>", "annotation"),
    # a comment and a processing instruction before the root
    (b"<?xml version='1.0'?><!-- <annotation> --><?pi x?>\n<annotations>", "annotations"),
    # a DTD before the root
    (b'<!DOCTYPE a [<!ENTITY e "x">]><annotations>', "annotations"),
    # not XML
    (b"hello", None),
]


@pytest.mark.parametrize(("head", "tag"), ROOTS)
def test_root_tag(head: bytes, tag: str | None) -> None:
    assert cvat.root_tag(head) == tag


ATTRIBUTES = [
    # a whole number stays an integer
    ("3", "number", 3),
    # a decimal is a float
    ("-5.6", "number", -5.6),
    # a checkbox is a boolean
    ("true", "checkbox", True),
    # an undeclared attribute is text, as written
    (" 0003 ", None, " 0003 "),
]


@pytest.mark.parametrize(("text", "kind", "value"), ATTRIBUTES)
def test_attribute_values(text: str, kind: str | None, value: Any) -> None:
    assert cvat.attribute_value(text, kind) == value
    assert type(cvat.attribute_value(text, kind)) is type(value)
