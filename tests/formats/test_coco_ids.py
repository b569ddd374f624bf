"""COCO ids that do not fit the manifest, or are not whole numbers: one line with the JSON path.

Ids are whole numbers that fit in a signed 64-bit integer (the manifest's type); image and
annotation ids may also be strings. Anything else is refused by the one COCO reader that
ingest and `pixelpipe convert` share, naming the file and the element.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from bounded import bounded, error_lines
from cocofiles import coco_file
from PIL import Image

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import coco

PIXELPIPE = str(Path(sys.executable).parent / "pixelpipe")
BIG = 2**63  # one past the largest signed 64-bit integer


def _doc(
    image: dict[str, Any] | None = None,
    category: dict[str, Any] | None = None,
    annotation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One image, one category, one annotation, with fields replaced."""
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8, **(image or {})}],
        "categories": [{"id": 3, "name": "cat", **(category or {})}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2], **(annotation or {})}
        ],
    }


FITS = "does not fit in a signed 64-bit integer"
CASES = [
    # A category id of 2**63, used by an annotation: was an OverflowError in pyarrow at
    # ingest, and kept by convert. Both places are named.
    (
        _doc(category={"id": BIG}, annotation={"category_id": BIG}),
        [
            rf"categories\[0\]\.id: category id {BIG} {FITS}$",
            rf"annotations\[0\]\.category_id: category_id {BIG} {FITS}$",
        ],
    ),
    # One below the smallest signed 64-bit integer.
    (
        _doc(category={"id": -BIG - 1}, annotation={"category_id": -BIG - 1}),
        [
            rf"categories\[0\]\.id: category id {-BIG - 1} {FITS}$",
            rf"annotations\[0\]\.category_id: category_id {-BIG - 1} {FITS}$",
        ],
    ),
    # A fractional category id.
    (
        _doc(category={"id": 1.5}, annotation={"category_id": 1.5}),
        [
            r"categories\[0\]\.id: category id must be a whole number, got 1\.5$",
            r"annotations\[0\]\.category_id: category_id must be a whole number, got 1\.5$",
        ],
    ),
    # A whole float is still not an integer id (the annotation says 3, which is then unknown).
    (
        _doc(category={"id": 3.0}),
        [
            r"categories\[0\]\.id: category id must be a whole number, got 3\.0$",
            r"annotations\[0\]\.category_id: category id 3 is not in 'categories'$",
        ],
    ),
    # A boolean (Python's True is 1).
    (
        _doc(category={"id": True}, annotation={"category_id": True}),
        [r"categories\[0\]\.id: .*got True$", r"annotations\[0\]\.category_id: .*got True$"],
    ),
    # An annotation's category_id of 2**63 (and so not in 'categories').
    (_doc(annotation={"category_id": BIG}), [rf"annotations\[0\]\.category_id: category_id {BIG}"]),
    # An annotation's category_id true: was taken as category 1 when there is one.
    (_doc(annotation={"category_id": False}), [r"annotations\[0\]\.category_id: .*got False$"]),
    # An image id of 2**63.
    (
        _doc(image={"id": BIG}, annotation={"image_id": BIG}),
        [
            rf"images\[0\]\.id: image id {BIG} {FITS}",
            rf"annotations\[0\]\.image_id: image_id {BIG} {FITS}",
        ],
    ),
    # A fractional image id.
    (
        _doc(image={"id": 1.5}, annotation={"image_id": 1.5}),
        [
            r"images\[0\]\.id: image id must be a whole number or a string, got 1\.5$",
            r"annotations\[0\]\.image_id: image_id must be a whole number or a string, got 1\.5$",
        ],
    ),
    # image_id true: was matched to image 1, since True == 1.
    (_doc(annotation={"image_id": True}), [r"annotations\[0\]\.image_id: .*got True$"]),
    # image_id 1.0: was matched to image 1, since 1.0 == 1.
    (_doc(annotation={"image_id": 1.0}), [r"annotations\[0\]\.image_id: .*got 1\.0$"]),
    # An annotation id of 2**64.
    (_doc(annotation={"id": 2**64}), [rf"annotations\[0\]\.id: annotation id {2**64} {FITS}"]),
    # An annotation id that is a float.
    (_doc(annotation={"id": 0.5}), [r"annotations\[0\]\.id: annotation id must be .*got 0\.5$"]),
    # An RLE mask of 2**63 rows: was an OverflowError in pyarrow at ingest.
    (
        _doc(annotation={"segmentation": {"size": [BIG, 1], "counts": [1]}, "bbox": None}),
        [r"annotations\[0\]\.segmentation: segmentation RLE is malformed: size must be \[height"],
    ),
    # A box coordinate of 10**400, more than a float holds: was an OverflowError.
    (_doc(annotation={"bbox": [1, 1, 10**400, 2]}), [r"annotations\[0\]\.bbox: bbox must be \["]),
]


@pytest.mark.parametrize(("doc", "messages"), CASES)
def test_ids_out_of_range_or_not_whole_are_named_by_json_path(
    doc: dict[str, Any], messages: list[str]
) -> None:
    with pytest.raises(PixelpipeError) as caught:
        coco.parse(doc, "x.json")
    lines = [str(p) for p in caught.value.problems]
    assert len(lines) == len(messages), lines
    for line, message in zip(lines, messages, strict=True):
        assert re.match(rf"x\.json {message}", line), line
        assert "\n" not in line and len(line) < 200, line


DECODE = [
    # An id of 5000 digits: Python refuses to convert it (was a ValueError traceback).
    (b'{"images": [{"id": ' + b"1" * 5000 + b"}]}", r"x\.json: invalid JSON: a number has more"),
    # Arrays nested 100,000 deep (was a RecursionError traceback).
    (b"[" * 100_000 + b"]" * 100_000, r"x\.json: invalid JSON: arrays or objects nest too deeply"),
]


@pytest.mark.parametrize(("data", "message"), DECODE)
def test_json_python_cannot_hold_is_one_line(data: bytes, message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        coco.decode(data, "x.json")


def test_the_extremes_of_64_bits_are_kept() -> None:
    doc = _doc(category={"id": BIG - 1}, annotation={"category_id": BIG - 1, "id": -BIG})
    parsed = coco.parse(doc, "x.json")
    assert [c.id for c in parsed.categories] == [BIG - 1]
    assert [a.category_id for a in parsed.annotations[1]] == [BIG - 1]


def _coco(root: Path, doc: dict[str, Any]) -> None:
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "images/a.jpg")
    (root / "annotations.json").write_text(json.dumps(doc))


def _project(root: Path) -> None:
    (root / "pipelines").mkdir()
    (root / "pipelines/default.yaml").write_text("stages:\n  ingest:\n    kind: ingest\n")
    (root / "params.yaml").write_text("ingest:\n  source: coco\n")


@pytest.mark.parametrize("entry", ["convert", "ingest"])
def test_a_category_id_of_2_63_is_one_line_in_convert_and_ingest(
    tmp_path: Path, entry: str
) -> None:
    _coco(tmp_path / "coco", _doc(category={"id": BIG}, annotation={"category_id": BIG}))
    if entry == "convert":
        lines = error_lines([PIXELPIPE, "convert", "coco", "out", "--to", "coco"], tmp_path)
    else:
        _project(tmp_path)
        lines = error_lines([PIXELPIPE, "run", "ingest"], tmp_path)
    assert lines == [
        f"coco/annotations.json categories[0].id: category id {BIG} {FITS}",
        f"coco/annotations.json annotations[0].category_id: category_id {BIG} {FITS}",
    ]
    assert not (tmp_path / "out").exists() and not (tmp_path / "data/ingest").exists()


@pytest.mark.parametrize("entry", ["convert", "ingest"])
def test_the_largest_id_that_fits_goes_through(tmp_path: Path, entry: str) -> None:
    _coco(tmp_path / "coco", _doc(category={"id": BIG - 1}, annotation={"category_id": BIG - 1}))
    if entry == "convert":
        result = bounded([PIXELPIPE, "convert", "coco", "out", "--to", "coco"], tmp_path)
        assert result.returncode == 0, result.stderr
        written = json.loads(coco_file(tmp_path / "out").read_text())
        assert [c["id"] for c in written["categories"]] == [BIG - 1]
    else:
        _project(tmp_path)
        result = bounded([PIXELPIPE, "run", "ingest"], tmp_path)
        assert result.returncode == 0, result.stderr
        categories = json.loads((tmp_path / "data/ingest/categories.json").read_text())
        assert [c["id"] for c in categories] == [BIG - 1]
