"""CVAT for images 1.1 XML written: the documented layout, scores, read back, bad input."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import cvat
from pixelpipe.formats.imagefolder import IMAGE_LABEL
from pixelpipe.sources import open_tree

CATEGORIES = [Category(2, "bus"), Category(1, "car")]
SCORE_SPEC = """          <attributes>
            <attribute>
              <name>score</name>
              <mutable>False</mutable>
              <input_type>number</input_type>
              <default_value>0</default_value>
              <values>0
1
0.000001</values>
            </attribute>
          </attributes>
"""
EXPECTED = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <name>review</name>
      <size>2</size>
      <mode>annotation</mode>
      <labels>
        <label>
          <name>car</name>
{SCORE_SPEC}        </label>
        <label>
          <name>bus</name>
{SCORE_SPEC}        </label>
      </labels>
    </task>
  </meta>
  <image id="0" name="a.jpg" width="8" height="8" />
  <image id="1" name="b.jpg" width="64" height="48">
    <box label="car" source="auto" occluded="1" xtl="1.5" ytl="2" xbr="11.75" ybr="22" z_order="0">
      <attribute name="score">0.83</attribute>
    </box>
    <box label="bus" source="manual" occluded="0" xtl="1" ytl="2" xbr="4" ybr="6" z_order="0" />
    <polygon label="bus" source="auto" occluded="0" points="1,2;4,2;3,6" z_order="0">
      <attribute name="score">0</attribute>
    </polygon>
    <tag label="car" source="auto">
      <attribute name="score">0.5</attribute>
    </tag>
  </image>
</annotations>
"""


def _sample(name: str, width: int, height: int, *annotations: Annotation) -> Sample:
    return Sample(
        name, f"images/{name}", "00" * 32, width, height, name, annotations=list(annotations)
    )


SAMPLES = [
    _sample(
        "b.jpg",
        64,
        48,
        Annotation(1, (1.5, 2.0, 10.25, 20.0), score=0.83, attributes={"occluded": True}),
        Annotation(2, (1.0, 2.0, 3.0, 4.0)),
        Annotation(2, (1.0, 2.0, 3.0, 4.0), polygons=[[1.0, 2.0, 4.0, 2.0, 3.0, 6.0]], score=0.0),
        Annotation(1, (0.0, 0.0, 64.0, 48.0), score=0.5, attributes={IMAGE_LABEL: True}),
    ),
    _sample("a.jpg", 8, 8),
]


def _write(path: Path, samples: list[Sample] = SAMPLES, **options: str) -> Path:
    cvat.write_xml(path, samples, CATEGORIES, lambda s: s.id, **options)
    return path


def test_the_documented_layout(tmp_path: Path) -> None:
    # labels in id order; images in name order with ids 0..N-1, as CVAT numbers frames
    text = _write(tmp_path / "review.xml").read_text(encoding="utf-8")
    assert text == EXPECTED


def test_it_reads_back(tmp_path: Path) -> None:
    labels = cvat.read(open_tree(str(_write(tmp_path / "annotations.xml"))))
    assert [c.name for c in labels.categories] == ["car", "bus"]
    assert [(i.image, i.width, i.height) for i in labels.items] == [
        ("a.jpg", 8, 8),
        ("b.jpg", 64, 48),
    ]
    box, manual, polygon, tag = labels.items[1].annotations
    assert (box.bbox, box.score, box.attributes) == (
        (1.5, 2.0, 10.25, 20.0),
        0.83,
        {"occluded": True, "source": "auto"},
    )
    assert (manual.category_id, manual.score, manual.attributes) == (1, None, {"source": "manual"})
    assert (polygon.polygons, polygon.score) == ([[1.0, 2.0, 4.0, 2.0, 3.0, 6.0]], 0.0)
    assert (tag.bbox, tag.score) == ((0.0, 0.0, 64.0, 48.0), 0.5)
    assert tag.attributes == {"image_label": True, "source": "auto"}
    assert labels.notes == {}


def test_same_input_same_bytes(tmp_path: Path) -> None:
    first = _write(tmp_path / "one" / "a.xml", task_name="t").read_bytes()
    second = _write(tmp_path / "a.xml", list(reversed(SAMPLES)), task_name="t").read_bytes()
    assert first == second
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["a.xml"]  # no temporary


def test_scores_outside_0_1_widen_the_declared_range(tmp_path: Path) -> None:
    logits = [
        _sample(
            "a.jpg",
            8,
            8,
            Annotation(1, (0, 0, 1, 1), score=-2.5),
            Annotation(1, (0, 0, 1, 1), score=3.2),
        )
    ]
    text = _write(tmp_path / "x.xml", logits, score_attribute="logit").read_text()
    assert "<name>logit</name>" in text
    assert "<values>-3\n4\n0.000001</values>" in text
    labels = cvat.read(open_tree(str(tmp_path / "x.xml")), score_attribute="logit")
    assert [a.score for a in labels.items[0].annotations] == [-2.5, 3.2]


def test_a_polygon_of_two_parts_is_two_polygons(tmp_path: Path) -> None:
    parts = [[0.0, 0.0, 4.0, 0.0, 0.0, 4.0], [5.0, 5.0, 8.0, 5.0, 8.0, 8.0]]
    sample = _sample("a.jpg", 8, 8, Annotation(2, (0.0, 0.0, 8.0, 8.0), polygons=parts, score=0.4))
    labels = cvat.read(open_tree(str(_write(tmp_path / "a.xml", [sample]))))
    assert [(a.polygons, a.score) for a in labels.items[0].annotations] == [
        ([parts[0]], 0.4),
        ([parts[1]], 0.4),
    ]


BAD = [
    # a category id the class map does not have
    (
        [_sample("a.jpg", 8, 8, Annotation(5, (0, 0, 1, 1)))],
        r"a\.jpg annotations\[0\]: category id 5",
    ),
    # a NaN score
    (
        [_sample("a.jpg", 8, 8, Annotation(1, (0, 0, 1, 1), score=math.nan))],
        r"a\.jpg annotations\[0\]: its box, polygon or score holds a value that is not a finite",
    ),
    # a polygon part of two points
    (
        [_sample("a.jpg", 8, 8, Annotation(1, (0, 0, 1, 1), polygons=[[0.0, 0.0, 1.0, 1.0]]))],
        r"polygon part 0 needs at least 3 x, y pairs",
    ),
    # two samples with one image name
    ([_sample("a.jpg", 8, 8), _sample("a.jpg", 8, 8)], r"a\.jpg: image name 'a\.jpg' is also"),
    # a name XML cannot carry
    ([_sample("a\x01.jpg", 8, 8)], r"cannot be written in XML"),
]


@pytest.mark.parametrize(("samples", "message"), BAD)
def test_bad_samples(tmp_path: Path, samples: list[Sample], message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        _write(tmp_path / "a.xml", samples)
    assert not (tmp_path / "a.xml").exists()


def test_two_categories_with_one_name(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"categories: two categories are named 'car'"):
        cvat.write_xml(tmp_path / "a.xml", [], [Category(0, "car"), Category(1, "car")], str)


def _layout(path: Path) -> dict[str, set[str]]:
    """Each element path of an XML file, with the attribute names it carries anywhere."""
    found: dict[str, set[str]] = {}

    def walk(element: ET.Element, parent: str) -> None:
        here = f"{parent}/{element.tag}" if parent else element.tag
        found.setdefault(here, set()).update(element.attrib)
        for child in element:
            walk(child, here)

    walk(ET.parse(path).getroot(), "")
    return found


def test_the_real_export_layout_is_matched(corpora: Path, tmp_path: Path) -> None:
    real = _layout(corpora / "formats/datumaro/cvat_dataset/for_images/export_task/train.xml")
    ours = _layout(_write(tmp_path / "annotations.xml"))
    # what the real export lacks is in CVAT's documented layout (xml_format.md, version 1.1)
    assert sorted(set(ours) - set(real)) == [
        "annotations/image/polygon/attribute",
        "annotations/image/tag",
        "annotations/image/tag/attribute",
        "annotations/meta/task/labels/label/attributes/attribute/mutable",
        "annotations/meta/task/name",
        "annotations/meta/task/size",
    ]
    # the same attributes as the real export, plus the documented `source`
    for path in ("annotations/image", "annotations/image/box", "annotations/image/polygon"):
        assert ours[path] - real[path] <= {"source", "occluded"}, path
    assert ours["annotations/image/box"] - real["annotations/image/box"] == {"source"}


def test_a_bad_sample_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.xml")
    before = path.read_bytes()
    bad = [*SAMPLES, _sample("z.jpg", 8, 8, Annotation(1, (0, 0, math.inf, 1)))]  # written last
    with pytest.raises(PixelpipeError, match=r"z\.jpg annotations\[0\]"):
        _write(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xml"]  # no temporary left


def test_subsets_without_a_split_write_the_same_task(tmp_path: Path) -> None:
    plain = _write(tmp_path / "a.xml").read_bytes()
    path = tmp_path / "b.xml"
    cvat.write_xml(path, SAMPLES, CATEGORIES, lambda s: s.id, task_name="a", subsets=True)
    assert path.read_bytes() == plain  # no sample has a split: a task, no subsets
