"""The Hugging Face export: Parquet shards and a card that ``datasets.load_dataset`` loads."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats import hf
from pixelpipe.formats.imagefolder import image_label

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora" / "detection" / "coco256"
# The class map has gaps and is given out of id order: ClassLabel index 0 is id 1.
CATEGORIES = [Category(7, "zebra"), Category(1, "cat"), Category(3, "dog")]
NAMES = ["cat", "dog", "zebra"]


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``datasets``, with its caches in ``tmp_path`` and no network."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return importlib.import_module("datasets")


def _load(datasets: ModuleType, out: Path, cache: Path) -> Any:
    # cache_dir as well as HF_DATASETS_CACHE: datasets reads the variable once, at import
    return datasets.load_dataset(str(out), cache_dir=str(cache))


def _expected_features(datasets: ModuleType, names: list[str]) -> Any:
    label = datasets.ClassLabel(names=names)
    obj = {
        "id": datasets.Value("int64"),
        "bbox": datasets.List(datasets.Value("float32"), length=4),
        "category": label,
        "area": datasets.Value("float32"),
        "iscrowd": datasets.Value("bool"),
    }
    return datasets.Features(
        {
            "image": datasets.Image(),
            "image_id": datasets.Value("string"),
            "width": datasets.Value("int32"),
            "height": datasets.Value("int32"),
            "objects": datasets.List(obj),
            "labels": datasets.List(label),
        }
    )


def _picture(path: Path, size: tuple[int, int], color: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix == ".jpg" else "PNG"
    Image.new("RGB", size, (color, 255 - color, 40)).save(path, fmt)
    return path


def _sample(
    sample_id: str, size: tuple[int, int], split: str | None, annotations: list[Annotation]
) -> Sample:
    return Sample(sample_id, sample_id, "0" * 64, *size, "", split, annotations=annotations)


def _corpus(tmp_path: Path) -> tuple[list[Sample], Callable[[Sample], Path | None]]:
    """Samples covering each case, their images in ``tmp_path/images``."""
    whole = image_label
    samples = [
        # boxes of several classes, one crowd box with its own area, non-integer corners
        _sample(
            "a/boxes.png",
            (40, 30),
            "train",
            [
                Annotation(1, (1.0, 2.0, 10.0, 12.0)),
                Annotation(7, (0.5, 0.25, 20.125, 9.75), iscrowd=True, area=55.5),
                Annotation(3, (30.1, 20.3, 9.9, 9.7)),
            ],
        ),
        # whole-image labels of two classes (one given twice, by two annotators)
        _sample(
            "b/labels.jpg",
            (24, 16),
            "train",
            [whole(3), whole(1), Annotation(1, (0, 0, 1, 1), attributes={"image_label": True})],
        ),
        # no label at all
        _sample("c/plain.png", (8, 12), "val", []),
        # no split: the split "unassigned"
        _sample("d/nosplit.png", (9, 7), None, [Annotation(3, (1.0, 1.0, 2.0, 2.0))]),
        # a box and a whole-image label on one image
        _sample("e/both.jpg", (33, 21), "test", [Annotation(7, (3.0, 4.0, 5.0, 6.0)), whole(7)]),
    ]
    folder = tmp_path / "images"
    for number, sample in enumerate(samples):
        _picture(folder / sample.id, (sample.width, sample.height), 40 * number)

    def source(sample: Sample) -> Path | None:
        return folder / sample.id

    return samples, source


def test_load_dataset_reads_every_row(datasets: ModuleType, tmp_path: Path) -> None:
    samples, source = _corpus(tmp_path)
    counts = hf.write(samples, CATEGORIES, tmp_path / "out", source)
    assert counts == {"images": 5, "boxes": 5, "image_labels": 3, "shards": 4}
    loaded = _load(datasets, tmp_path / "out", tmp_path / "cache")
    assert list(loaded) == ["train", "val", "test", "unassigned"]
    assert {name: split.num_rows for name, split in loaded.items()} == {
        "train": 2,
        "val": 1,
        "test": 1,
        "unassigned": 1,
    }
    features = loaded["train"].features
    assert features == _expected_features(datasets, NAMES)
    assert isinstance(features["image"], datasets.Image)
    assert isinstance(features["objects"].feature["category"], datasets.ClassLabel)
    assert features["objects"].feature["category"].names == NAMES
    assert isinstance(features["labels"].feature, datasets.ClassLabel)
    by_id = {s.id: s for s in samples}
    index = {1: 0, 3: 1, 7: 2}
    rows = [row for split in loaded.values() for row in split]
    assert [r["image_id"] for r in loaded["train"]] == ["a/boxes.png", "b/labels.jpg"]
    for row in rows:
        sample = by_id[row["image_id"]]
        assert row["image"].size == (row["width"], row["height"]) == (sample.width, sample.height)
        boxes = [
            (n, a) for n, a in enumerate(sample.annotations) if "image_label" not in a.attributes
        ]
        assert [o["id"] for o in row["objects"]] == [n for n, _ in boxes]
        assert [o["category"] for o in row["objects"]] == [index[a.category_id] for _, a in boxes]
        for obj, (_, ann) in zip(row["objects"], boxes, strict=True):
            assert obj["bbox"] == pytest.approx(list(ann.bbox), rel=1e-6)
            expected_area = ann.area if ann.area is not None else ann.bbox[2] * ann.bbox[3]
            assert obj["area"] == pytest.approx(expected_area, rel=1e-6)
            assert obj["iscrowd"] is ann.iscrowd
    labels = {r["image_id"]: r["labels"] for r in rows}
    assert labels == {
        "a/boxes.png": [],
        "b/labels.jpg": [0, 1],
        "c/plain.png": [],
        "d/nosplit.png": [],
        "e/both.jpg": [2],
    }


def test_schema_and_card_declare_features_as_datasets_does(
    datasets: ModuleType, tmp_path: Path
) -> None:
    samples, source = _corpus(tmp_path)
    hf.write(samples, CATEGORIES, tmp_path / "out", source)
    expected = _expected_features(datasets, NAMES)
    schema = pq.read_schema(tmp_path / "out" / "data" / "train-00000-of-00001.parquet")
    assert json.loads(schema.metadata[b"huggingface"]) == {"info": {"features": expected.to_dict()}}
    assert schema.remove_metadata() == expected.arrow_schema.remove_metadata()
    assert datasets.Features.from_arrow_schema(schema) == expected
    table = pq.read_table(tmp_path / "out" / "data" / "train-00000-of-00001.parquet")
    assert (
        table.column("image").to_pylist()
        == [  # the files' bytes, named by their base name
            {"bytes": source(s).read_bytes(), "path": name}  # type: ignore[union-attr]
            for s, name in zip(samples[:2], ["boxes.png", "labels.jpg"], strict=True)
        ]
    )
    text = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    card = yaml.safe_load(front)
    info = card["dataset_info"]
    assert info["features"] == datasets.DatasetInfo(features=expected)._to_yaml_dict()["features"]
    assert datasets.DatasetInfo._from_yaml_dict(info).features == expected
    assert [(s["name"], s["num_examples"]) for s in info["splits"]] == [
        ("train", 2),
        ("val", 1),
        ("test", 1),
        ("unassigned", 1),
    ]
    assert info["download_size"] == sum(
        p.stat().st_size for p in (tmp_path / "out" / "data").iterdir()
    )
    assert card["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": s, "path": f"data/{s}-*"} for s in ("train", "val", "test", "unassigned")
            ],
        }
    ]
    assert card["task_categories"] == ["object-detection", "image-classification"]
    assert "&" not in front  # no YAML anchors: the Hub's card parser is plain
    assert 'load_dataset("path/to/this/folder")' in body
    assert "`[x, y, w, h]` in pixels" in body and "pixelpipe" in body
    # objects / images labelled, per split (train, val, test, unassigned)
    assert "| 0 | cat | 1 / 1 | 0 / 0 | 0 / 0 | 0 / 0 |" in body
    assert "| 2 | zebra | 1 / 0 | 0 / 0 | 1 / 1 | 0 / 0 |" in body


def test_row_groups_hold_100_rows(tmp_path: Path) -> None:
    image = _picture(tmp_path / "one.png", (4, 4))
    samples = [_sample(f"{n:04d}.png", (4, 4), "train", []) for n in range(250)]
    hf.write(samples, CATEGORIES, tmp_path / "out", lambda s: image)
    meta = pq.ParquetFile(tmp_path / "out" / "data" / "train-00000-of-00001.parquet").metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [100, 100, 50]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_same_input_same_bytes(tmp_path: Path) -> None:
    samples, source = _corpus(tmp_path)
    hf.write(samples, CATEGORIES, tmp_path / "one", source, shard_bytes=200)
    hf.write(samples, CATEGORIES, tmp_path / "two", source, shard_bytes=200)
    first = _files(tmp_path / "one")
    assert "README.md" in first and len(first) > 2
    assert first == _files(tmp_path / "two")


SHARDING = [
    # every image passes the limit: one shard per image
    (1, {"train": 5, "val": 2}),
    # two images per shard, the last shard holds the rest
    (2, {"train": 3, "val": 1}),
    # the default: one shard per split
    (None, {"train": 1, "val": 1}),
]


@pytest.mark.parametrize(("images_per_shard", "shards"), SHARDING)
def test_shards_start_when_full(
    datasets: ModuleType,
    tmp_path: Path,
    images_per_shard: int | None,
    shards: dict[str, int],
) -> None:
    image = _picture(tmp_path / "same.png", (6, 5))
    size = image.stat().st_size
    samples = [_sample(f"t{n}.png", (6, 5), "train", []) for n in range(5)]
    samples += [_sample(f"v{n}.png", (6, 5), "val", []) for n in range(2)]
    limit = {} if images_per_shard is None else {"shard_bytes": size * images_per_shard}
    counts = hf.write(samples, CATEGORIES, tmp_path / "out", lambda s: image, **limit)
    assert counts["shards"] == sum(shards.values())
    names = sorted(p.name for p in (tmp_path / "out" / "data").iterdir())
    assert names == sorted(
        f"{split}-{k:05d}-of-{n:05d}.parquet" for split, n in shards.items() for k in range(n)
    )
    loaded = _load(datasets, tmp_path / "out", tmp_path / "cache")
    assert [r["image_id"] for r in loaded["train"]] == [f"t{n}.png" for n in range(5)]
    assert [r["image_id"] for r in loaded["val"]] == ["v0.png", "v1.png"]


def test_missing_images_are_null(datasets: ModuleType, tmp_path: Path) -> None:
    samples, source = _corpus(tmp_path)
    (tmp_path / "images" / "c" / "plain.png").unlink()

    def some(sample: Sample) -> Path | None:
        return None if sample.id == "a/boxes.png" else source(sample)

    counts = hf.write(samples, CATEGORIES, tmp_path / "out", some)
    assert counts["images"] == 3
    loaded = _load(datasets, tmp_path / "out", tmp_path / "cache")
    images = {r["image_id"]: r["image"] for split in loaded.values() for r in split}
    assert {k for k, v in images.items() if v is None} == {"a/boxes.png", "c/plain.png"}
    assert loaded["train"][0]["objects"][0]["bbox"] == [1.0, 2.0, 10.0, 12.0]


def test_earlier_shards_are_replaced(datasets: ModuleType, tmp_path: Path) -> None:
    samples, source = _corpus(tmp_path)
    first = hf.write(samples, CATEGORIES, tmp_path / "out", source, shard_bytes=1)
    assert first["shards"] == 5
    hf.write(samples[:2], CATEGORIES, tmp_path / "out", source)
    assert sorted(p.name for p in (tmp_path / "out" / "data").iterdir()) == [
        "train-00000-of-00001.parquet"
    ]
    loaded = _load(datasets, tmp_path / "out", tmp_path / "cache")
    assert list(loaded) == ["train"] and loaded["train"].num_rows == 2


def test_no_sample_is_refused(tmp_path: Path) -> None:
    # datasets cannot load a split without rows ("corresponds to no data")
    with pytest.raises(PixelpipeError, match="no sample to export"):
        hf.write([], CATEGORIES, tmp_path / "out", lambda s: None)
    assert not (tmp_path / "out" / "README.md").exists()


BAD = [
    # a category id the class map does not have, named with its sample and key
    (
        CATEGORIES,
        [_sample("x.png", (4, 4), "train", [Annotation(9, (0, 0, 1, 1))])],
        r"x\.png annotations\[0\]\.category_id: category id 9 is not in the class map",
    ),
    # an image label of an unknown class counts too
    (
        CATEGORIES,
        [_sample("x.png", (4, 4), "train", [image_label(2)])],
        "category id 2 is not in the class map",
    ),
    # a split name datasets refuses (a hyphen)
    (
        CATEGORIES,
        [_sample("x.png", (4, 4), "hold-out", [])],
        r"x\.png split: split 'hold-out' is not a Hugging Face split name",
    ),
    # two classes with one name: a ClassLabel's names are unique
    (
        [Category(1, "cat"), Category(2, "cat")],
        [_sample("x.png", (4, 4), "train", [])],
        "categories 1 and 2 are both named 'cat'",
    ),
]


@pytest.mark.parametrize(("categories", "samples", "message"), BAD)
def test_bad_input_is_refused_and_nothing_written(
    tmp_path: Path, categories: list[Category], samples: list[Sample], message: str
) -> None:
    image = _picture(tmp_path / "x.png", (4, 4))
    good = [_sample("a.png", (4, 4), "train", [])]  # a shard written first, then taken back
    with pytest.raises(PixelpipeError, match=message):
        hf.write(good + samples, categories, tmp_path / "out", lambda s: image, shard_bytes=1)
    data = tmp_path / "out" / "data"
    assert not data.exists() or not list(data.iterdir())
    assert not (tmp_path / "out" / "README.md").exists()


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    samples = [
        _sample("a.png", (4, 4), "train", [Annotation(9, (0, 0, 1, 1))]),
        _sample("b.png", (4, 4), "bad split", []),
        _sample(
            "c.png", (4, 4), "train", [Annotation(9, (0, 0, 1, 1)), Annotation(8, (0, 0, 1, 1))]
        ),
    ]
    with pytest.raises(PixelpipeError) as caught:
        hf.write(samples, CATEGORIES, tmp_path / "out", lambda s: None)
    assert [(p.file, p.key) for p in caught.value.problems] == [
        ("a.png", "annotations[0].category_id"),
        ("b.png", "split"),
        ("c.png", "annotations[1].category_id"),
    ]


def test_shard_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shard_bytes must be positive"):
        hf.write([], CATEGORIES, tmp_path / "out", lambda s: None, shard_bytes=0)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found: {CORPUS}")
def test_real_coco_subset_loads(datasets: ModuleType, tmp_path: Path) -> None:
    from pixelpipe.formats import coco
    from pixelpipe.sources import open_tree

    labels = coco.read(open_tree(str(CORPUS)))
    samples = [
        Sample(
            i.image,
            i.image,
            "",
            i.width or 0,
            i.height or 0,
            "",
            i.split,
            annotations=i.annotations,
        )
        for i in sorted(labels.items, key=lambda i: i.image)
    ]
    counts = hf.write(samples, labels.categories, tmp_path / "out", lambda s: CORPUS / s.image)
    assert counts["images"] == len(samples) == 128
    assert counts["boxes"] == sum(len(s.annotations) for s in samples)
    loaded = _load(datasets, tmp_path / "out", tmp_path / "cache")
    names = [c.name for c in sorted(labels.categories, key=lambda c: c.id)]
    assert loaded["train"].features["objects"].feature["category"].names == names
    index = {c.id: n for n, c in enumerate(sorted(labels.categories, key=lambda c: c.id))}
    for row, sample in zip(loaded["train"], samples, strict=True):
        assert row["image_id"] == sample.id
        assert row["image"].size == (sample.width, sample.height)
        assert [o["category"] for o in row["objects"]] == [
            index[a.category_id] for a in sample.annotations
        ]
        got = [o["bbox"] for o in row["objects"]]
        assert got == [pytest.approx(list(a.bbox), rel=1e-6) for a in sample.annotations]
