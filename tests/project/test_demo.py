"""The demo dataset: deterministic, real, and holding what later stages must catch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixelpipe.project.demo import build


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build(tmp_path_factory.mktemp("a") / "demo")["path"])


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_build_is_byte_identical(demo: Path, tmp_path: Path) -> None:
    assert _files(Path(build(tmp_path / "again")["path"])) == _files(demo)


def test_planted_problems(demo: Path) -> None:
    images = demo / "images"
    coco = json.loads((demo / "annotations.json").read_text())
    by_name = {i["file_name"]: i for i in coco["images"]}
    boxes = {
        name: [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        for name, image in by_name.items()
    }
    # An exact duplicate.
    assert (images / "cat_copy.jpg").read_bytes() == (images / "cat.jpg").read_bytes()
    # Resized, re-encoded near-duplicates.
    assert Image.open(images / "coffee_small.jpg").size == (300, 200)
    # A truncated image that opens but does not decode.
    with (
        Image.open(images / "launchpad_truncated.jpg") as image,
        pytest.raises(OSError, match="truncated"),
    ):
        image.load()
    # A file that is not an image.
    assert (images / "notes.jpg").read_bytes().startswith(b"This is a text file")
    # A box past the right edge of its image.
    (box,) = boxes["cameraman.jpg"]
    assert box["bbox"][0] + box["bbox"][2] > by_name["cameraman.jpg"]["width"]
    # A category with a single instance, and images without labels.
    per_class = [a["category_id"] for a in coco["annotations"]]
    assert per_class.count(85) == 1
    assert boxes["unlabelled/retina.jpg"] == []
    # COCO's own ids, with gaps, plus one that is not COCO's.
    assert [c["id"] for c in coco["categories"]] == [1, 4, 17, 47, 50, 85, 91]


def test_the_review_demo_is_byte_identical_and_its_last_annotator_skips_images(
    tmp_path: Path,
) -> None:
    from pixelpipe.project.review_demo import SKIPPED, build_review

    first = Path(build_review(tmp_path / "a", 3)["path"])
    assert _files(Path(build_review(tmp_path / "b", 3)["path"])) == _files(first)
    gold = json.loads((first / "gold.json").read_text())
    files = {p.stem: json.loads(p.read_text()) for p in (first / "annotators").glob("*.json")}
    assert sorted(files) == ["alice", "bob", "carol"]
    assert len(files["carol"]["images"]) == len(gold["images"]) - SKIPPED
    # each file numbers the classes its own way, as real tools do
    orders = {tuple(c["name"] for c in doc["categories"]) for doc in files.values()}
    assert len(orders) > 1
    # perturbed, never copied: the annotators' boxes differ from the gold set's
    assert all(doc["annotations"] != gold["annotations"] for doc in files.values())
