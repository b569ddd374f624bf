"""Which files of a dataset folder are exports, and how they are hashed and checked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pixelpipe.dataset import files_digest, first_difference, is_listed
from pixelpipe.dataset.files import scan


@pytest.mark.parametrize(
    ("path", "listed"),
    [
        ("coco/annotations.json", True),  # an export
        ("coco/images/a.jpg", True),  # an exported copy of an image
        ("class_map.json", True),  # a top-level export file
        ("findings.parquet", True),  # a stage's own table
        ("samples.parquet", False),  # the manifest: covered row by row
        ("dataset.json", False),  # the record itself
        ("files.parquet", False),  # the list itself
        ("images/ab/abcd.jpg", False),  # the store: named by the sha256 the manifest holds
        ("README.md", False),  # the dataset card: presentation
        ("report.html", False),  # a report: presentation
        ("report.json", False),  # a report's data: presentation
        ("coco/README.md", True),  # only the top-level card is presentation
    ],
)
def test_what_is_listed(path: str, listed: bool) -> None:
    assert is_listed(path) is listed


def test_scan_hashes_what_it_does_not_know(tmp_path: Path) -> None:
    (tmp_path / "coco" / "images").mkdir(parents=True)
    (tmp_path / "coco" / "annotations.json").write_text("{}")
    (tmp_path / "coco" / "images" / "a.jpg").write_bytes(b"jpeg")
    (tmp_path / "samples.parquet").write_bytes(b"not listed")
    known = {"coco/images/a.jpg": "f" * 64}  # trusted: the store's name of the copied bytes
    table = scan(tmp_path, known)
    assert table.column("path").to_pylist() == ["coco/annotations.json", "coco/images/a.jpg"]
    assert table.column("sha256").to_pylist() == [hashlib.sha256(b"{}").hexdigest(), "f" * 64]
    assert table.column("size").to_pylist() == [2, 4]


def test_the_digest_depends_on_paths_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("1")
    first = files_digest(scan(tmp_path))
    (tmp_path / "a.json").write_text("2")
    second = files_digest(scan(tmp_path))
    assert second != first
    (tmp_path / "a.json").rename(tmp_path / "b.json")  # same bytes, another path
    assert files_digest(scan(tmp_path)) not in (first, second)


def test_first_difference_in_path_order(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("1")
    (tmp_path / "b.json").write_text("2")
    listed = scan(tmp_path)
    assert first_difference(tmp_path, listed) is None
    (tmp_path / "b.json").write_text("3")
    (tmp_path / "c.json").write_text("new")
    assert first_difference(tmp_path, listed) == "b.json: content differs"
    (tmp_path / "a.json").unlink()
    assert first_difference(tmp_path, listed) == "a.json: missing"
