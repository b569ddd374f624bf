"""The dataset contract: manifest rows, digest, deterministic writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest

from pixelpipe.dataset import (
    Annotation,
    Category,
    Dataset,
    DatasetBuilder,
    Sample,
    content_digest,
    write_dataset,
)
from pixelpipe.errors import PixelpipeError

CATS = [Category(17, "cat", "animal"), Category(0, "background")]


def _sample(i: int, **changes: object) -> Sample:
    sample = Sample(
        id=f"img_{i:03d}.jpg",
        image=f"data/ingest/images/aa/{i:064x}.jpg",
        sha256=f"{i:064x}",
        width=640,
        height=480,
        source=f"/home/someone/photos/img_{i:03d}.jpg",
        tags=["a"],
        annotations=[
            Annotation(
                17,
                (1.5, 2.0, 30.0, 40.25),
                polygons=[[1.5, 2, 31.5, 2, 31.5, 42.25]],
                attributes={"occluded": True},
            ),
            Annotation(
                0,
                (0, 0, 10, 10),
                rle={"size": [480, 640], "counts": "abc"},
                iscrowd=True,
                score=0.5,
                annotator="model",
            ),
        ],
        extra={"phash": f"{i:016x}"},
    )
    for key, value in changes.items():
        setattr(sample, key, value)
    return sample


def _table(samples: list[Sample]) -> pa.Table:
    builder = DatasetBuilder(CATS)
    for sample in samples:
        builder.add(sample)
    return builder.samples_table()


def test_sample_round_trips_through_a_row() -> None:
    sample = _sample(1)
    (row,) = _table([sample]).to_pylist()
    again = Sample.from_row(row)
    assert again.to_row() == row  # stable: a second round trip changes nothing
    assert (again.id, again.extra, again.tags) == (sample.id, sample.extra, sample.tags)
    assert again.annotations[0].attributes == {"occluded": True}
    assert again.annotations[1].area == 100.0  # box area when none is given


def test_digest_ignores_row_order_and_location_but_not_content() -> None:
    samples = [_sample(i) for i in range(5)]
    base = content_digest(_table(samples), CATS)
    assert base.startswith("sha256:")
    assert content_digest(_table(samples[::-1]), CATS) == base
    moved = [
        _sample(i, source=f"s3://bucket/{i}.jpg", image=f"data/other/{i}.jpg") for i in range(5)
    ]
    assert content_digest(_table(moved), CATS) == base
    relabelled = [*samples[:4], _sample(4, split="val")]
    assert content_digest(_table(relabelled), CATS) != base
    assert content_digest(_table(samples), CATS[:1]) != base


def test_digest_of_nan_boxes_is_stable() -> None:
    bad = _sample(1, annotations=[Annotation(17, (math.nan, 0.0, math.inf, 1.0))])
    assert content_digest(_table([bad]), CATS) == content_digest(_table([bad]), CATS)


def test_write_is_deterministic_and_reads_back(tmp_path: Path) -> None:
    def write(folder: Path, order: list[int]) -> dict[str, bytes]:
        builder = DatasetBuilder(CATS[::-1])
        for i in order:
            builder.add(_sample(i))
        builder.remove(_sample(9), "duplicate", "same as img_001.jpg", duplicate_of="img_001.jpg")
        write_dataset(folder, builder, stage="s", kind="k", params={"x": 1}, inputs={"a": "d"})
        return {p.name: p.read_bytes() for p in folder.iterdir()}

    first = write(tmp_path / "a", [0, 1, 2])
    assert write(tmp_path / "b", [2, 0, 1]) == first
    dataset = Dataset(tmp_path / "a")
    assert [s.id for s in dataset.samples()] == ["img_000.jpg", "img_001.jpg", "img_002.jpg"]
    assert [c.id for c in dataset.categories] == [0, 17]
    removed = dataset.removed().to_pylist()
    assert removed == [
        {
            "id": "img_009.jpg",
            "reason": "duplicate",
            "detail": "same as img_001.jpg",
            "source": "/home/someone/photos/img_009.jpg",
            "duplicate_of": "img_001.jpg",
        }
    ]
    info = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert info["counts"]["removed_by_reason"] == {"duplicate": 1}
    assert info["counts"]["annotations"] == 6
    assert dataset.table.column_names[-1] == "phash"  # stage columns after the core ones


def test_duplicate_ids_are_a_bug() -> None:
    with pytest.raises(ValueError, match="duplicate ids in samples"):
        _table([_sample(1), _sample(1)])


def test_extra_columns_cannot_shadow_core_ones() -> None:
    with pytest.raises(ValueError, match="shadow core columns"):
        _sample(1, extra={"split": "x"}).to_row()


def test_reading_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match="not a pixelpipe dataset"):
        Dataset(tmp_path)


def test_schema_version_mismatch_says_what_to_do(tmp_path: Path) -> None:
    write_dataset(tmp_path, DatasetBuilder(CATS), stage="s", kind="k", params={}, inputs={})
    info = json.loads((tmp_path / "dataset.json").read_text())
    (tmp_path / "dataset.json").write_text(json.dumps({**info, "schema_version": 99}))
    with pytest.raises(PixelpipeError, match=r"schema version 99.*dvc repro -f"):
        Dataset(tmp_path)
