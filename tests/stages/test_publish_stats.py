"""Publish's plots and metrics: counts per split, per class, box size and aspect bins."""

from __future__ import annotations

import pytest

from pixelpipe.dataset import Annotation, Category, DatasetBuilder, Sample
from pixelpipe.formats.imagefolder import image_label
from stages._publish import stats

CATEGORIES = [Category(2, "cat"), Category(5, "dog")]


def _sample(sid: str, split: str | None, *annotations: Annotation) -> Sample:
    return Sample(
        sid, f"data/x/{sid}", "0" * 64, 640, 480, sid, split=split, annotations=list(annotations)
    )


def _collect(*samples: Sample) -> stats.Stats:
    builder = DatasetBuilder(CATEGORIES)
    for sample in samples:
        builder.add(sample)
    return stats.collect(builder.samples_table())


BINS = [
    # (w, h): size bin (sqrt(w*h)) and aspect bin (w/h)
    ((4.0, 4.0), "< 8 px", "1-2"),  # tiny square: 1 is the first edge of "1-2"
    ((16.0, 64.0), "32-64 px", "0.25-0.5"),  # sqrt(1024) = 32 starts "32-64"
    ((100.0, 10.0), "16-32 px", ">= 4"),  # wide
    ((600.0, 400.0), "256-512 px", "1-2"),
    ((10.0, 0.0), "< 8 px", ">= 4"),  # a flat box: area 0, aspect infinite
    ((0.0, 10.0), "< 8 px", "< 0.25"),  # a thin one: aspect 0
]


@pytest.mark.parametrize(("size", "size_bin", "aspect_bin"), BINS)
def test_a_box_falls_in_its_bins(size: tuple[float, float], size_bin: str, aspect_bin: str) -> None:
    counted = _collect(_sample("a.jpg", "train", Annotation(2, (1.0, 1.0, *size))))
    sizes = stats.histogram_rows(counted.sizes, stats.SIZE_BINS, "size", counted)
    aspects = stats.histogram_rows(counted.aspects, stats.ASPECT_BINS, "aspect", counted)
    assert [r["size"] for r in sizes if r["boxes"]] == [size_bin]
    assert [r["aspect"] for r in aspects if r["boxes"]] == [aspect_bin]
    assert len(sizes) == len(stats.SIZE_BINS) and len(aspects) == len(stats.ASPECT_BINS)


def test_counts_per_split_and_class_with_zeros_in_a_fixed_order() -> None:
    counted = _collect(
        _sample("a.jpg", "val", Annotation(2, (0, 0, 10, 10)), Annotation(5, (0, 0, 50, 50))),
        _sample("b.jpg", "train", Annotation(2, (0, 0, 10, 10))),
        _sample("c.jpg", None, image_label(5), image_label(2)),  # whole-image labels, no split
        _sample("d.jpg", "train"),  # no label at all
    )
    assert counted.splits() == ["train", "val", "unassigned"]
    assert stats.images_rows(counted) == [
        {"split": "train", "images": 2, "boxes": 1},
        {"split": "val", "images": 1, "boxes": 2},
        {"split": "unassigned", "images": 1, "boxes": 0},
    ]
    rows = stats.instances_rows(counted, CATEGORIES)
    assert [(r["class_split"], r["instances"]) for r in rows] == [
        ("cat / train", 1),
        ("cat / val", 1),
        ("cat / unassigned", 1),
        ("dog / train", 0),
        ("dog / val", 1),
        ("dog / unassigned", 1),
    ]
    sizes = stats.histogram_rows(counted.sizes, stats.SIZE_BINS, "size", counted)
    assert sum(r["boxes"] for r in sizes) == 3  # image labels are not boxes
    assert sizes[0] == {
        "size_split": "< 8 px / train",
        "size": "< 8 px",
        "split": "train",
        "boxes": 0,
    }
    assert stats.metrics(counted) == {
        "images": 4,
        "boxes": 3,
        "image_labels": 2,
        "splits": {
            "train": {"images": 2, "boxes": 1, "image_labels": 0},
            "val": {"images": 1, "boxes": 2, "image_labels": 0},
            "unassigned": {"images": 1, "boxes": 0, "image_labels": 2},
        },
    }


def test_batches_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = [
        _sample(f"{i:05d}.jpg", "train" if i % 3 else "test", Annotation(2, (0, 0, 20, 20)))
        for i in range(10)
    ]
    builder = DatasetBuilder(CATEGORIES)
    for sample in samples:
        builder.add(sample)
    table = builder.samples_table()
    whole = stats.collect(table)
    assert whole.images == {"train": 6, "test": 4} and whole.boxes == whole.images
    monkeypatch.setattr(stats, "BATCH_ROWS", 3)
    assert stats.collect(table) == whole


def test_an_empty_manifest() -> None:
    counted = _collect()
    assert stats.images_rows(counted) == [] and stats.metrics(counted)["images"] == 0
