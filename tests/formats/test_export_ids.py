"""The category ids each export writes (``category_ids``), and the warning about id 0."""

from __future__ import annotations

import pytest

from pixelpipe.dataset import Category
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import id_map
from pixelpipe.formats.export import ExportOptions, class_ids, id_warnings

FROM_VOC = [Category(0, "cat"), Category(1, "dog")]  # numbered by a reader, from 0
FROM_COCO = [Category(1, "cat"), Category(3, "dog")]  # the ids a COCO file gave

POLICIES = [
    # auto: a class map with id 0 is written 1..n to COCO (Datumaro, Detectron2: 0 = background)
    (FROM_VOC, "auto", "coco", {0: 1, 1: 2}),
    # auto: ids without 0 are kept, gaps included
    (FROM_COCO, "auto", "coco", {1: 1, 3: 3}),
    # auto: YOLO indices are 0..n-1 whatever the ids
    (FROM_COCO, "auto", "yolo", {1: 0, 3: 1}),
    (FROM_VOC, "auto", "yolo", {0: 0, 1: 1}),
    # preserve keeps a 0 for COCO (with a warning, below)
    (FROM_VOC, "preserve", "coco", {0: 0, 1: 1}),
    # zero_based and one_based number in id order
    (FROM_COCO, "zero_based", "coco", {1: 0, 3: 1}),
    (FROM_COCO, "one_based", "coco", {1: 1, 3: 2}),
]


@pytest.mark.parametrize(("categories", "policy", "fmt", "expected"), POLICIES)
def test_id_map(
    categories: list[Category], policy: str, fmt: str, expected: dict[int, int]
) -> None:
    assert id_map(categories, policy, fmt) == expected  # type: ignore[arg-type]


def test_yolo_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(PixelpipeError, match=r"YOLO class indices start at 0"):
        id_map(FROM_VOC, "one_based", "yolo")
    with pytest.raises(PixelpipeError, match=r"must be 0\.\.1, but the class map's ids are"):
        id_map(FROM_COCO, "preserve", "yolo")


WARNINGS = [
    # a COCO id 0 kept on purpose is warned about
    (FROM_VOC, "preserve", ["coco"], True),
    # auto never writes 0 to COCO
    (FROM_VOC, "auto", ["coco", "yolo"], False),
    # YOLO's 0 is its first class index, not a background
    (FROM_VOC, "zero_based", ["yolo"], False),
    # zero_based COCO writes a 0
    (FROM_COCO, "zero_based", ["coco"], True),
]


@pytest.mark.parametrize(("categories", "policy", "formats", "warned"), WARNINGS)
def test_a_coco_id_0_is_warned_about(
    categories: list[Category], policy: str, formats: list[str], warned: bool
) -> None:
    ids = class_ids(categories, ExportOptions(category_ids=policy), formats)  # type: ignore[arg-type]
    warnings = id_warnings(ids)
    assert bool(warnings) == warned
    assert all("category id 0" in w and "background" in w for w in warnings)
