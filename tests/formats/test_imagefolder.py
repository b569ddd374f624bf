"""Image folders: class per folder in, class folders and HF metadata.jsonl out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import imagefolder
from pixelpipe.formats.base import ReadOptions, to_pixels
from pixelpipe.sources import open_tree


def _tree(tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path


LAYOUTS = [
    # one folder per class, sorted names give ids (torchvision's order)
    (
        ["dog/1.jpg", "cat/2.png", "cat/deep/3.jpg", "loose.jpg"],
        {
            "cat/2.png": (None, 0),
            "cat/deep/3.jpg": (None, 0),
            "dog/1.jpg": (None, 1),
            "loose.jpg": (None, None),
        },
    ),
    # split folders first, classes below
    (
        ["train/cat/1.jpg", "valid/dog/2.jpg", "test/3.jpg"],
        {
            "train/cat/1.jpg": ("train", 0),
            "valid/dog/2.jpg": ("val", 1),
            "test/3.jpg": ("test", None),
        },
    ),
]


@pytest.mark.parametrize(("names", "expected"), LAYOUTS)
def test_read_class_folders(tmp_path: Path, names: list[str], expected: dict) -> None:
    labels = imagefolder.read(open_tree(str(_tree(tmp_path, names))))
    got = {
        i.image: (i.split, i.annotations[0].category_id if i.annotations else None)
        for i in labels.items
    }
    assert got == expected
    labelled = next(i for i in labels.items if i.annotations)
    (whole,) = to_pixels(labelled.annotations, 40, 30)
    assert whole.bbox == (0.0, 0.0, 40.0, 30.0) and imagefolder.is_image_label(whole)


def test_classes_option_fixes_ids_and_refuses_unknown_folders(tmp_path: Path) -> None:
    tree = open_tree(str(_tree(tmp_path, ["dog/1.jpg", "cat/2.jpg"])))
    labels = imagefolder.read(tree, ReadOptions(classes=["dog", "cat", "bird"]))
    assert [(c.id, c.name) for c in labels.categories] == [(0, "dog"), (1, "cat"), (2, "bird")]
    with pytest.raises(PixelpipeError, match=r"class folders \['cat'\] are not in `classes`"):
        imagefolder.read(tree, ReadOptions(classes=["dog"]))


def test_write_class_folders_metadata_and_skipped(tmp_path: Path) -> None:
    cats = [Category(1, "cat"), Category(2, "dog")]
    samples = [
        Sample(
            "a.jpg",
            "",
            "",
            10,
            10,
            "",
            split="train",
            annotations=[Annotation(1, (0, 0, 10, 10), attributes={"image_label": True})],
        ),
        Sample(
            "b/c.jpg", "", "", 10, 10, "", split="train", annotations=[Annotation(2, (1, 2, 3, 4))]
        ),
        Sample(
            "mixed.jpg",
            "",
            "",
            10,
            10,
            "",
            split="val",
            annotations=[Annotation(1, (0, 0, 1, 1)), Annotation(2, (0, 0, 1, 1))],
        ),
    ]
    copied: list[Path] = []
    counts = imagefolder.write(samples, cats, tmp_path, lambda s, p: copied.append(p) or True)
    assert counts == {"images": 2, "skipped_not_single_class": 1}
    assert copied == [tmp_path / "train/cat/a.jpg", tmp_path / "train/dog/b/c.jpg"]
    lines = [
        json.loads(line) for line in (tmp_path / "train/metadata.jsonl").read_text().splitlines()
    ]
    assert lines == [
        {"file_name": "cat/a.jpg", "label": "cat"},
        {
            "file_name": "dog/b/c.jpg",
            "label": "dog",
            "objects": {"bbox": [[1, 2, 3, 4]], "category": [2]},
        },
    ]
    assert (tmp_path / "skipped.txt").read_text() == "mixed.jpg\n"


def test_class_names_that_are_not_folder_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"class name 'a/b' cannot be a folder name"):
        imagefolder.write([], [Category(0, "a/b")], tmp_path, lambda s, p: True)


def test_plain_image_dirs(corpora: Path) -> None:
    labels = imagefolder.read_unlabelled(
        open_tree(str(corpora / "formats/datumaro/image_dir_dataset"))
    )
    assert [i.image for i in labels.items] == ["1.jpg", "2.jpg"]
