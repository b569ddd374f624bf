"""Ingest reruns: each image's result reused from the per-item cache, outputs unchanged.

Pillow's ``Image.open`` is wrapped by a function that records each call and calls the real
one: how many images a run opens is how many it computed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from steps import ingest, removed_reasons

from pixelpipe.dataset import Dataset
from pixelpipe.engine.executor import Executor, make_executor
from pixelpipe.engine.itemcache import DB_NAME, cache_dir, summary


def _recorded_opens(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What ``PIL.Image.open`` is called with from now on (the real one still runs)."""
    calls: list[object] = []
    real = Image.open

    def recording(fp: Any, *args: Any, **kwargs: Any) -> Image.Image:
        calls.append(fp)
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", recording)
    return calls


def _jpeg(size: tuple[int, int], seed: int, exif: bytes = b"") -> bytes:
    """A noisy JPEG (tens of KB for a few hundred pixels a side)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def _add(
    source: Path, name: str, data: bytes | None, size: tuple[int, int], labelled: bool = False
) -> None:
    """An image in the demo's ``images/`` folder, listed in its COCO file with ``size``."""
    if data is not None:
        (source / "images" / name).write_bytes(data)
    coco = json.loads((source / "annotations.json").read_text())
    number = max(image["id"] for image in coco["images"]) + 1
    coco["images"].append({"id": number, "file_name": name, "width": size[0], "height": size[1]})
    if labelled:
        box = {"id": len(coco["annotations"]) + 1, "image_id": number, "category_id": 1}
        coco["annotations"].append({**box, "bbox": [1, 1, 4, 4], "iscrowd": 0})
    (source / "annotations.json").write_text(json.dumps(coco))


def _image_hashes(root: Path, dataset: Dataset) -> dict[str, str]:
    """The sha256 of each stored image's file, checked against the manifest's."""
    hashes = {}
    for sample in dataset.samples():
        hashes[sample.id] = hashlib.sha256((root / sample.image).read_bytes()).hexdigest()
        assert hashes[sample.id] == sample.sha256, sample.id
    return hashes


@pytest.fixture
def raw(tmp_path: Path, demo_raw: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo dataset plus an EXIF-rotated photo (re-encoded upright by ingest)."""
    for name in ("PIXELPIPE_CACHE", "PIXELPIPE_CACHE_DIR", "PIXELPIPE_OBJECTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    source = tmp_path / "data" / "raw" / "demo"
    shutil.copytree(demo_raw, source)
    exif = Image.Exif()
    exif[0x0112] = 6
    _add(source, "turned.jpg", _jpeg((300, 200), 1, exif.tobytes()), (200, 300))
    return source


def test_a_rerun_opens_only_the_new_image(
    tmp_path: Path, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opens = _recorded_opens(monkeypatch)
    first, metrics = ingest(tmp_path)
    computed = len(opens)
    assert len(first) == 39 and metrics["exif_rotated"] == 1
    assert computed == 41, "each image opened once, the rotated photo once more to turn it"
    opens.clear()
    again, again_metrics = ingest(tmp_path)
    assert opens == [] and again.digest == first.digest and again_metrics == metrics
    _add(raw, "new.jpg", _jpeg((40, 30), 2), (40, 30))
    opens.clear()
    third, _ = ingest(tmp_path)
    assert len(opens) == 1 and len(third) == 40
    hashes = _image_hashes(tmp_path, third)
    monkeypatch.setenv("PIXELPIPE_CACHE", "off")
    opens.clear()
    fresh, _ = ingest(tmp_path)
    assert len(opens) == computed + 1
    assert fresh.digest == third.digest and _image_hashes(tmp_path, fresh) == hashes


def test_the_cache_keeps_no_pixels_and_no_transient_failure(
    tmp_path: Path, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (raw / "images" / "gone.jpg").symlink_to("nowhere.jpg")  # a link to nothing: missing
    _add(raw, "gone.jpg", None, (1, 1))
    exif = Image.Exif()
    exif[0x0112] = 6  # turned upright by the worker, then removed by its labels' size
    _add(raw, "mismatched.jpg", _jpeg((300, 200), 7, exif.tobytes()), (64, 64), labelled=True)
    dataset, _ = ingest(tmp_path)
    reasons = removed_reasons(dataset)
    assert reasons == {
        "notes.jpg": "unreadable",
        "gone.jpg": "missing",
        "mismatched.jpg": "size_mismatch",
    }
    # every image and the unreadable file are kept; the file that is not there is not
    assert summary(tmp_path)["entries"] == 41
    upright = next(s for s in dataset.samples() if s.id == "turned.jpg")
    assert (tmp_path / upright.image).stat().st_size > 50_000
    database = cache_dir(tmp_path) / DB_NAME
    with sqlite3.connect(database) as db:
        (largest,) = db.execute("SELECT MAX(LENGTH(value)) FROM items").fetchone()
    assert largest < 4_000, "results hold the image's sha256, never its bytes"
    opens = _recorded_opens(monkeypatch)
    (raw / "images" / "nowhere.jpg").write_bytes(_jpeg((1, 1), 3))
    again, _ = ingest(tmp_path)
    assert len(opens) == 1, "only the file the link now leads to is read"
    assert removed_reasons(again) == {
        "notes.jpg": "unreadable",
        "mismatched.jpg": "size_mismatch",
        "nowhere.jpg": "unlisted",
    }


def test_a_changed_file_is_read_again(
    tmp_path: Path, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = ingest(tmp_path)
    replaced = raw / "images" / "cat.jpg"  # a new file under the same name (a new inode)
    with Image.open(replaced) as image:
        size = image.size
    new_cat = _jpeg(size, 4)
    (raw / "images" / "cat.new").write_bytes(new_cat)
    os.replace(raw / "images" / "cat.new", replaced)
    rewritten = raw / "images" / "clock.jpg"  # the same file rewritten in place
    with Image.open(rewritten) as image:
        size = image.size
    new_clock = _jpeg(size, 5)
    with rewritten.open("r+b") as out:
        out.write(new_clock)
        out.truncate()
    opens = _recorded_opens(monkeypatch)
    again, _ = ingest(tmp_path)
    assert len(opens) == 2
    shas = {s.id: s.sha256 for s in again.samples()}
    assert shas["cat.jpg"] == hashlib.sha256(new_cat).hexdigest()
    assert shas["clock.jpg"] == hashlib.sha256(new_clock).hexdigest()
    assert again.digest != first.digest
    hashes = _image_hashes(tmp_path, again)
    monkeypatch.setenv("PIXELPIPE_CACHE", "off")
    fresh, _ = ingest(tmp_path)
    assert fresh.digest == again.digest and _image_hashes(tmp_path, fresh) == hashes


def test_images_collected_from_the_object_store_are_read_again(
    tmp_path: Path, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = ingest(tmp_path)
    hashes = _image_hashes(tmp_path, first)
    shutil.rmtree(tmp_path / ".pixelpipe" / "objects")
    opens = _recorded_opens(monkeypatch)
    again, _ = ingest(tmp_path)
    assert again.digest == first.digest and _image_hashes(tmp_path, again) == hashes
    # a source file whose sha256 is still the cached one is copied again, unopened; the
    # photo turned upright is made again (probed, then re-encoded)
    assert len(opens) == 2
    opens.clear()
    third, _ = ingest(tmp_path)
    assert opens == [] and third.digest == first.digest


def test_a_source_with_no_stable_listing_is_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem whose listing gives no ETag or modification time (fsspec's memory)."""
    import fsspec

    monkeypatch.delenv("PIXELPIPE_CACHE", raising=False)
    fs = fsspec.filesystem("memory")
    root = f"/ingest-cache-{os.getpid()}"
    try:
        for number in range(3):
            fs.pipe(f"{root}/p{number}.jpg", _jpeg((16, 12), number))
        opens = _recorded_opens(monkeypatch)
        first, _ = ingest(tmp_path, source=f"memory://{root}", format="images")
        assert len(first) == 3 and len(opens) == 3
        opens.clear()
        again, _ = ingest(tmp_path, source=f"memory://{root}", format="images")
        assert opens == [] and again.digest == first.digest
        fs.pipe(f"{root}/p1.jpg", _jpeg((16, 12), 9))
        opens.clear()
        third, _ = ingest(tmp_path, source=f"memory://{root}", format="images")
        assert len(opens) == 1
        assert {s.id: s.sha256 for s in third.samples()}["p1.jpg"] == hashlib.sha256(
            _jpeg((16, 12), 9)
        ).hexdigest()
    finally:
        fs.rm(root, recursive=True)


class _Elsewhere:
    """Runs chunks as workers on another machine would: each chunk and result pickled, the
    source folder out of reach, and nothing in the project written while a chunk runs."""

    workers = 1
    shared_disk = False

    def __init__(self, project: Path, source: Path) -> None:
        self.project = project
        self.source = source

    def map_chunks(
        self,
        fn: Callable[[list[Any]], list[Any]],
        items: Sequence[Any],
        chunk_size: int,
        on_chunk: Callable[[int], None] | None = None,
    ) -> Iterator[Any]:
        size = max(1, chunk_size)
        for start in range(0, len(items), size):
            chunk = list(items[start : start + size])
            sent = pickle.dumps((fn, chunk))  # the parent reads local bytes here
            away = self.source.with_name(f"{self.source.name}.away")
            self.source.rename(away)
            before = _snapshot(self.project)
            try:
                work, received = pickle.loads(sent)
                returned = pickle.dumps(work(received))
                assert _snapshot(self.project) == before, "a worker wrote into the project"
            finally:
                away.rename(self.source)
            yield from pickle.loads(returned)
            if on_chunk:
                on_chunk(len(chunk))

    def close(self) -> None:
        """Nothing to release."""


def _snapshot(root: Path) -> set[tuple[str, int, int]]:
    return {
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("where", ["elsewhere", "pool"])
def test_the_same_output_on_any_workers_cached_or_not(
    tmp_path: Path, raw: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    def executor() -> Executor:
        return _Elsewhere(tmp_path, raw) if where == "elsewhere" else make_executor("local", 2)

    monkeypatch.setenv("PIXELPIPE_CACHE", "off")
    expected, _ = ingest(tmp_path)
    hashes = _image_hashes(tmp_path, expected)
    monkeypatch.delenv("PIXELPIPE_CACHE")
    computed = ingest(tmp_path, executor())[0]
    assert computed.digest == expected.digest and _image_hashes(tmp_path, computed) == hashes
    reused = ingest(tmp_path, executor())[0]
    assert reused.digest == expected.digest and _image_hashes(tmp_path, reused) == hashes
    assert summary(tmp_path)["entries"] == 40
