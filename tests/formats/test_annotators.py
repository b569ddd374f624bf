"""Several annotators' label sets: tagging one, merging them by class name and image path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelpipe.dataset import Annotation, Category
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import annotators, cvat, labelcsv
from pixelpipe.formats.base import Item, LabelSet, Removal
from pixelpipe.formats.imagefolder import image_label
from pixelpipe.sources import open_tree


def _set(
    categories: dict[int, str], items: list[Item], fmt: str = "coco", **extra: object
) -> LabelSet:
    return LabelSet(
        format=fmt,
        categories=[Category(i, n) for i, n in categories.items()],
        items=items,
        **extra,  # type: ignore[arg-type]
    )


def _box(category: int, x: float = 1.0, who: str | None = None) -> Annotation:
    return Annotation(category, (x, 2.0, 3.0, 4.0), annotator=who)


def test_tag_names_the_annotator_of_every_item() -> None:
    original = _set(
        {0: "car"},
        [
            Item("a.jpg", annotations=[_box(0), _box(0, who="model")]),
            Item("b.jpg"),  # no boxes: the annotator still looked at it
        ],
    )
    tagged = annotators.tag(original, "ann")
    assert [a.annotator for a in tagged.items[0].annotations] == ["ann", "model"]
    assert [i.annotators for i in tagged.items] == [["ann"], ["ann"]]
    assert original.items[0].annotations[0].annotator is None  # the input is unchanged
    assert original.items[1].annotators == []


def test_tag_does_not_repeat_an_annotator() -> None:
    tagged = annotators.tag(_set({}, [Item("a.jpg", annotators=["ann"])]), "ann")
    assert tagged.items[0].annotators == ["ann"]


def test_merge_matches_classes_by_name() -> None:
    first = _set({1: "car", 2: "bus"}, [Item("a.jpg", annotations=[_box(1, who="a")])])
    second = _set(
        {0: "bus", 1: "truck", 2: "car"},
        [Item("a.jpg", annotations=[_box(0, who="b"), _box(1, who="b"), _box(2, who="b")])],
    )
    third = _set({7: "bike"}, [Item("a.jpg", annotations=[_box(7, who="c")])])
    merged = annotators.merge([first, second, third])
    # car and bus keep the first part's ids; truck's own 1 is taken: next free is 3;
    # bike's own 7 is free
    assert [(c.id, c.name) for c in merged.categories] == [
        (1, "car"),
        (2, "bus"),
        (3, "truck"),
        (7, "bike"),
    ]
    (item,) = merged.items
    assert [(a.annotator, a.category_id) for a in item.annotations] == [
        ("a", 1),
        ("b", 2),
        ("b", 3),
        ("b", 1),
        ("c", 7),
    ]
    assert second.items[0].annotations[0].category_id == 0  # the parts are unchanged


def test_a_new_class_keeps_its_free_id_before_others_take_the_next() -> None:
    first = _set({0: "a", 1: "b"}, [])
    second = _set({0: "c", 2: "d"}, [])
    merged = annotators.merge([first, second])
    # d keeps its own 2 although c (whose 0 is taken) is listed before it
    assert [(c.id, c.name) for c in merged.categories] == [(0, "a"), (1, "b"), (2, "d"), (3, "c")]


def test_merge_joins_items_in_part_order() -> None:
    first = _set(
        {0: "car"},
        [Item("b.jpg", split="train", annotations=[_box(0, 1, "ann")], annotators=["ann"])],
        notes={"x": 1},
        warnings=["one"],
    )
    second = _set(
        {0: "car"},
        [
            Item("b.jpg", width=64, height=48, annotators=["bob"]),
            Item("a.jpg", annotations=[_box(0, 5, "bob")], annotators=["bob"]),
        ],
        fmt="cvat",
        notes={"x": 2, "y": 1},
        warnings=["two"],
    )
    merged = annotators.merge([first, second])
    assert [i.image for i in merged.items] == ["a.jpg", "b.jpg"]
    b = merged.items[1]
    assert (b.split, b.width, b.height, b.annotators) == ("train", 64, 48, ["ann", "bob"])
    assert merged.format == "coco+cvat"
    assert (merged.notes, merged.warnings) == ({"x": 3, "y": 1}, ["one", "two"])
    assert annotators.merge([first, second]) == merged  # deterministic


@pytest.mark.parametrize("normalized_first", [True, False])
def test_fractions_meet_pixels(normalized_first: bool) -> None:
    fractions = _set(
        {0: "cat"},
        [Item("a.jpg", normalized=True, annotations=[image_label(0)], origin="labels.csv:2")],
        fmt="csv",
    )
    pixels = _set(
        {0: "cat"},
        [Item("a.jpg", width=640, height=480, annotations=[_box(0)], origin="cvat.xml:3")],
        fmt="cvat",
    )
    parts = [fractions, pixels] if normalized_first else [pixels, fractions]
    (item,) = annotators.merge(parts).items
    assert not item.normalized
    boxes = sorted(a.bbox for a in item.annotations)
    assert boxes == [(0.0, 0.0, 640.0, 480.0), (1.0, 2.0, 3.0, 4.0)]


CONFLICTS = [
    # two declared sizes: both files are named
    (
        Item("a.jpg", width=64, height=48, origin="x.xml:3"),
        Item("a.jpg", width=48, height=64, origin="y.xml:9"),
        r"a\.jpg is 48x64 in y\.xml:9 but 64x48 in x\.xml:3",
    ),
    # two splits
    (
        Item("a.jpg", split="train", origin="x.xml:3"),
        Item("a.jpg", split="val", origin="y.xml:9"),
        r"a\.jpg is in split 'val' in y\.xml:9 but 'train' in x\.xml:3",
    ),
    # fractions and pixels, and no size anywhere
    (
        Item("a.jpg", normalized=True, annotations=[image_label(0)], origin="l.csv:2"),
        Item("a.jpg", annotations=[_box(0)], origin="a.json:1"),
        r"fractions of the image in l\.csv:2 and in pixels in a\.json:1, but no file declares",
    ),
]


@pytest.mark.parametrize(("one", "two", "message"), CONFLICTS)
def test_conflicts_name_both_files(one: Item, two: Item, message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        annotators.merge([_set({0: "car"}, [one]), _set({0: "car"}, [two])])


def test_a_class_named_twice_in_one_part() -> None:
    with pytest.raises(PixelpipeError, match=r"part 2 \(coco\) names class 'car' twice"):
        annotators.merge([_set({0: "car"}, []), _set({0: "car", 4: "car"}, [])])


def test_removals() -> None:
    first = _set(
        {},
        [Item("a.jpg")],
        removed=[
            Removal("b.jpg", "unlisted", "in no file", "b.jpg"),
            Removal("../x.jpg", "unsafe_path", "escapes"),
        ],
    )
    second = _set(
        {},
        [Item("b.jpg"), Item("c.jpg")],
        removed=[
            Removal("a.jpg", "unlisted", "in no file", "a.jpg"),
            Removal("../x.jpg", "unsafe_path", "escapes too"),
            Removal("c.jpg", "rotated", "a rotated box", "c.jpg"),
        ],
    )
    merged = annotators.merge([first, second])
    # unlisted here but listed there: not removed; a rotated box in one part removes it
    assert [i.image for i in merged.items] == ["a.jpg", "b.jpg"]
    assert [(r.id, r.detail) for r in merged.removed] == [
        ("../x.jpg", "escapes"),
        ("c.jpg", "a rotated box"),
    ]
    assert merged.notes == {"images_removed_by_another_part": 1}
    assert "c.jpg is removed (rotated)" in merged.warnings[0]


def test_real_cvat_file_and_a_csv(corpora: Path, tmp_path: Path) -> None:
    folder = corpora / "formats/datumaro/cvat_dataset/for_images/export_task"
    boxes = annotators.tag(cvat.read(open_tree(str(folder / "train.xml"))), "train")
    (tmp_path / "labels.csv").write_text(
        "item,annotator,label\nimages/img0.jpg,ann,label2\nimages/img1.jpg,ann,\n"
    )
    classes = labelcsv.read(open_tree(str(tmp_path / "labels.csv")))
    merged = annotators.merge([boxes, classes])
    assert [(c.id, c.name) for c in merged.categories] == [(0, "label1"), (1, "label2")]
    img0, img1 = merged.items
    assert img0.annotators == ["train", "ann"]
    assert [(a.annotator, a.category_id, a.bbox) for a in img0.annotations] == [
        ("train", 0, (0.0, 2.0, 4.0, 2.0)),
        ("ann", 1, (0.0, 0.0, 8.0, 8.0)),  # the CSV's fraction label, in CVAT's 8x8 pixels
    ]
    assert (img1.annotators, img1.annotations) == (["train", "ann"], [])
