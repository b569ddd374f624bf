"""Label CSV (item, annotator, label): image-level labels, seen-without-label rows, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import labelcsv
from pixelpipe.formats.base import LabelSet, ReadOptions
from pixelpipe.sources import open_tree

ROWS = """item,annotator,label,comment
b.jpg,ann,dog,
a.jpg,ann,cat,sure
a.jpg,bob,dog,
a.jpg,bob,cat,
c.jpg,bob,,nothing there
a.jpg,ann,cat,repeated
"""


def _read(tmp_path: Path, text: str, files: tuple[str, ...] = (), **options: Any) -> LabelSet:
    (tmp_path / "labels.csv").write_text(text, encoding="utf-8")
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return labelcsv.read(open_tree(str(tmp_path / "labels.csv")), ReadOptions(**options))


def test_rows_become_image_labels(tmp_path: Path) -> None:
    labels = _read(tmp_path, ROWS)
    assert [(c.id, c.name) for c in labels.categories] == [(0, "cat"), (1, "dog")]
    a, b, c = labels.items
    assert a.image == "a.jpg" and a.normalized
    assert a.annotators == ["ann", "bob"]
    assert [(x.annotator, x.category_id, x.bbox) for x in a.annotations] == [
        ("ann", 0, (0.0, 0.0, 1.0, 1.0)),
        ("bob", 1, (0.0, 0.0, 1.0, 1.0)),
        ("bob", 0, (0.0, 0.0, 1.0, 1.0)),
    ]
    assert a.annotations[0].attributes == {"image_label": True}
    assert (b.annotators, [x.category_id for x in b.annotations]) == (["ann"], [1])
    # a blank label: bob saw c.jpg and gave no label
    assert (c.annotators, c.annotations) == (["bob"], [])
    assert labels.notes == {"csv_duplicate_rows": 1}


def test_ids_do_not_depend_on_row_order(tmp_path: Path) -> None:
    header, *rows = ROWS.splitlines()
    reversed_rows = "\n".join([header, *reversed(rows)]) + "\n"
    assert _read(tmp_path, reversed_rows).categories == _read(tmp_path, ROWS).categories


def test_image_alias_and_column_order(tmp_path: Path) -> None:
    labels = _read(tmp_path, " LABEL , Image,annotator\ncat,a.jpg,ann\n")  # any case, spaces, order
    (item,) = labels.items
    assert (item.image, item.annotators, item.annotations[0].annotator) == ("a.jpg", ["ann"], "ann")


def test_classes_option_and_folder_lookup(tmp_path: Path) -> None:
    labels = _read(
        tmp_path,
        "item,annotator,label\na.jpg,ann,cat\nimages/b.jpg,ann,dog\n",
        ("set/images/a.jpg", "set/images/b.jpg", "set/images/c.jpg"),
        classes=["dog", "cat"],
    )
    assert [(i.image, i.annotations[0].category_id) for i in labels.items] == [
        ("set/images/a.jpg", 1),
        ("set/images/b.jpg", 0),
    ]
    assert [(r.id, r.reason) for r in labels.removed] == [("set/images/c.jpg", "unlisted")]


ERRORS = [
    # no label column: the header's line
    ("\nitem,annotator\na.jpg,ann\n", r"labels\.csv:2: missing column 'label'"),
    # neither item nor image, annotator nor label
    ("name,who\n", r"labels\.csv:1: missing column 'item' and 'annotator' and 'label'"),
    # an empty annotator: every label names its annotator
    ("item,annotator,label\na.jpg,,cat\n", r"labels\.csv:2: the annotator is empty"),
    # an empty item, with its line
    ("item,annotator,label\na.jpg,ann,cat\n ,ann,dog\n", r"labels\.csv:3: the item is empty"),
    # a quoted field over two lines: the line where the row ends
    ('item,annotator,label\n"a\n.jpg",ann,cat\n,bob,dog\n', r"labels\.csv:4: the item is empty"),
    # an empty file
    ("", r"labels\.csv: the file is empty"),
    # a stray quote inside a field
    ('item,annotator,label\na.jpg,ann,"c"at\n', r"labels\.csv:2: invalid CSV: ',' expected"),
    # a quote never closed: it would swallow every later row
    ('item,annotator,label\na.jpg,ann,"cat\nb.jpg,ann,dog\n', r"labels\.csv:3: invalid CSV"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        _read(tmp_path, text)


def test_class_outside_classes(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"labels\.csv:3: class 'bird' is not in `classes`"):
        _read(tmp_path, "item,annotator,label\na.jpg,ann,cat\na.jpg,bob,bird\n", classes=["cat"])


def test_unsafe_item_is_removed(tmp_path: Path) -> None:
    labels = _read(tmp_path, "item,annotator,label\n../a.jpg,ann,cat\n")
    assert labels.items == []
    assert [(r.id, r.reason) for r in labels.removed] == [("../a.jpg", "unsafe_path")]
