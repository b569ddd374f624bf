"""Publish links the stored images into the exports and streams its COCO documents."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from steps import serial_context

from pixelpipe.dataset import (
    Annotation,
    Category,
    Dataset,
    DatasetBuilder,
    ImageStore,
    Sample,
    write_dataset,
)
from pixelpipe.dataset.images import objects_dir
from pixelpipe.engine.registry import resolve
from pixelpipe.formats import coco
from pixelpipe.formats.base import flat_name
from stages.publish import Samples

CATEGORIES = [Category(1, "cat"), Category(4, "dog", "animal")]
FORMATS = ["coco", "yolo", "voc", "imagefolder"]


def _ingested(root: Path, count: int, *, objects: bool = True) -> Dataset:
    """``data/ingest`` with ``count`` images in its store (links to the object store)."""
    store = ImageStore(
        root / "data" / "ingest", "data/ingest", objects_dir(root) if objects else None
    )
    builder = DatasetBuilder(CATEGORIES)
    for index in range(count):
        source = root / "raw" / f"{index}.png"
        source.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (index * 9 % 256, 20, 0)).save(source)
        image, sha = store.put_file(source)
        labels = [Annotation(1 + 3 * (index % 2), (1.5, 2.0, 10.0 + index, 8.25))]
        if index % 3 == 0:
            labels.append(Annotation(4, (5.0, 5.0, 3.0, 3.0), attributes={"occluded": True}))
        split = ("train", "val", None)[index % 3]
        builder.add(
            Sample(f"d/{index:03d}.png", image, sha, 40, 30, str(source), split, annotations=labels)
        )
    write_dataset(
        root / "data" / "ingest", builder, stage="ingest", kind="ingest", params={}, inputs={}
    )
    return Dataset(root / "data" / "ingest")


def _publish(root: Path, formats: list[str]) -> Path:
    kind = resolve("publish")
    out = root / "data" / "publish"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    kind.step(
        [Dataset(root / "data" / "ingest")],
        kind.params(formats=formats),
        serial_context(root, "publish", out),
    )
    return out


def _exported(out: Path, sample: Sample) -> list[Path]:
    folder = sample.split or "unassigned"
    return [
        out / "coco" / "images" / folder / sample.id,
        out / "yolo" / "images" / folder / flat_name(sample.id),
        out / "voc" / "JPEGImages" / flat_name(sample.id),
    ]


def test_exported_images_are_links_of_the_stored_ones(tmp_path: Path) -> None:
    dataset = _ingested(tmp_path, 6)
    out = _publish(tmp_path, FORMATS)
    inodes = set()
    for sample in dataset.samples():
        stored = tmp_path / sample.image
        obj = objects_dir(tmp_path) / sample.sha256[:2] / sample.sha256
        assert stored.stat().st_ino == obj.stat().st_ino
        inodes.add(stored.stat().st_ino)
        for path in _exported(out, sample):
            assert path.stat().st_ino == stored.stat().st_ino, path
            assert path.read_bytes() == stored.read_bytes()
        # the object, the store's file, COCO, YOLO, VOC (and image folders: one class only)
        assert obj.stat().st_nlink >= 5
    in_folders = list((out / "imagefolder").rglob("*.png"))
    assert in_folders and all(p.stat().st_ino in inodes for p in in_folders)


def test_images_are_copied_where_links_are_refused(tmp_path: Path) -> None:
    elsewhere = Path("/dev/shm")
    if not elsewhere.is_dir() or elsewhere.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) to link across")
    dataset = _ingested(tmp_path, 2, objects=False)
    sample = next(dataset.samples())
    stored = tmp_path / sample.image
    target = elsewhere / f"pixelpipe-test-{os.getpid()}-{sample.sha256}.png"
    shutil.move(stored, target)
    try:
        stored.symlink_to(target)  # the store's file lives on another file system
        out = _publish(tmp_path, ["coco"])
        exported = out / "coco" / "images" / (sample.split or "unassigned") / sample.id
        assert exported.read_bytes() == target.read_bytes()
        assert not exported.is_symlink() and exported.stat().st_ino != target.stat().st_ino
    finally:
        target.unlink()


def test_coco_documents_are_streamed_to_the_bytes_of_one_document(tmp_path: Path) -> None:
    dataset = _ingested(tmp_path, 7)
    out = _publish(tmp_path, ["coco"])
    samples = list(dataset.samples())

    def name(sample: Sample) -> str:
        return sample.id

    expected = tmp_path / "expected.json"
    for split in ("train", "val", None):
        members = [s for s in samples if s.split == split]
        coco.write_json(expected, coco.dump(members, CATEGORIES, name))
        streamed = out / "coco" / "annotations" / f"instances_{split or 'unassigned'}.json"
        assert streamed.read_bytes() == expected.read_bytes(), split
    assert sorted(p.name for p in (out / "coco" / "annotations").iterdir()) == [
        "instances_train.json",
        "instances_unassigned.json",
        "instances_val.json",
    ]


def test_an_empty_dataset_and_unlabelled_images_make_valid_coco(tmp_path: Path) -> None:
    for count in (0, 1):
        builder = DatasetBuilder(CATEGORIES)
        if count:
            builder.add(Sample("a.png", "data/ingest/none.png", "0" * 64, 4, 4, "a.png"))
        write_dataset(
            tmp_path / "data" / "ingest",
            builder,
            stage="ingest",
            kind="ingest",
            params={},
            inputs={},
        )
        out = _publish(tmp_path, ["coco"])
        written = out / "coco" / "annotations" / "instances_unassigned.json"
        if not count:  # no sample, no subset
            assert not (out / "coco" / "annotations").exists()
            continue
        document = json.loads(written.read_text())
        assert (len(document["images"]), document["annotations"]) == (count, [])
        assert [c["id"] for c in document["categories"]] == [1, 4]


def test_samples_are_decoded_when_iterated(tmp_path: Path) -> None:
    dataset = _ingested(tmp_path, 5)
    samples = Samples(dataset.table)
    assert len(samples) == 5 and list(samples) == list(dataset.samples())
    assert samples[-1] == list(dataset.samples())[-1] and samples[1:3] == list(samples)[1:3]
    with pytest.raises(IndexError, match="5"):
        samples[5]
