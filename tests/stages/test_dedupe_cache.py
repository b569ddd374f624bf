"""``dedupe`` on reruns: hashes and report thumbnails come from the per-item cache.

A rerun with one new image decodes only that image (``PIL.Image.open`` is wrapped by a
recording function that calls the real one and notes the sha256 of the bytes it opens),
and writes the very bytes a run with the cache off writes. Failures to read an image are
not cached; failures to decode it (the bytes decide them) are. On Dask workers without
the project's disk, workers get the bytes and touch no project file.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import PIL.Image
import pytest
import yaml
from PIL import Image

from pixelpipe import Annotation, Category, DatasetBuilder, Pixels, Sample, read_pixels
from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.imaging.hashing import HashSpec, hash_read
from stages._dedupe.thumbs import UNREADABLE

WATCH = Path(__file__).parents[1] / "support" / "watch"
"""A sitecustomize that watches worker processes (see its docstring)."""

SKIMAGE = Path(str(__import__("skimage").__file__)).parent / "data"
PIPELINE = "pipelines/p.yaml"
Opened = Callable[[], list[str]]


def _jpeg(name: str, size: int | None = None, quality: int = 90) -> bytes:
    with Image.open(SKIMAGE / name) as opened:
        image = opened.convert("RGB")
    if size is not None:
        image = image.resize((size, size * image.height // image.width))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _files() -> dict[str, bytes]:
    astronaut = _jpeg("astronaut.png")
    return {
        "astronaut.jpg": astronaut,
        "astronaut_small.jpg": _jpeg("astronaut.png", 256, 70),  # a near duplicate
        "coffee.jpg": _jpeg("coffee.png"),
        "coffee_copy.jpg": _jpeg("coffee.png"),  # the same bytes
        "chelsea.jpg": _jpeg("chelsea.png"),
        "camera.jpg": _jpeg("camera.png"),
        "rocket.jpg": _jpeg("rocket.jpg"),
        "truncated.jpg": astronaut[:3000],  # cannot be decoded: the bytes say so
    }


NEW = ("moon.jpg", "moon.png")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _project(root: Path, files: dict[str, bytes]) -> Path:
    """A project whose ``ingest`` output holds ``files`` (written here), with ``dedupe``."""
    folder = root / "data" / "ingest" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    builder = DatasetBuilder([Category(1, "thing")])
    for name, data in sorted(files.items()):
        (folder / name).write_bytes(data)
        boxes = [Annotation(1, (10.0, 10.0, 50.0, 40.0))] if name.startswith("a") else []
        builder.add(
            Sample(
                id=name,
                image=f"data/ingest/images/{name}",
                sha256=_sha(data),
                width=512,
                height=512,
                source=f"raw/{name}",
                annotations=boxes,
            )
        )
    write_dataset(
        root / "data" / "ingest", builder, stage="ingest", kind="ingest", params={}, inputs={}
    )
    stages = {"ingest": {"kind": "ingest"}, "dedupe": {"kind": "dedupe", "inputs": "ingest"}}
    (root / "pipelines").mkdir(exist_ok=True)
    (root / PIPELINE).write_text(yaml.safe_dump({"stages": stages}))
    (root / "params.yaml").write_text(yaml.safe_dump({"ingest": {}, "dedupe": {}}))
    return root


def _dedupe(root: Path, **run: Any) -> dict[str, Any]:
    run.setdefault("workers", 1)
    return run_stage(root, "dedupe", PIPELINE, **run)


def _outputs(root: Path) -> dict[str, bytes]:
    folders = [root / "data" / "dedupe", root / "reports" / "plots" / "dedupe"]
    return {p.name: p.read_bytes() for folder in folders for p in sorted(folder.iterdir())}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")
    for name in ("PIXELPIPE_CACHE", "PIXELPIPE_CACHE_DIR", "PIXELPIPE_SHARED_DISK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Opened:
    """Records the sha256 of the bytes every ``PIL.Image.open`` call opens; ``opened()``
    returns those since the last call."""
    real = PIL.Image.open
    seen: list[str] = []

    def recording(fp: Any, *args: Any, **kwargs: Any) -> Image.Image:
        if isinstance(fp, io.BytesIO):
            seen.append(_sha(fp.getvalue()))
        else:
            seen.append(_sha(Path(fp).read_bytes()))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", recording)

    def take() -> list[str]:
        taken = list(seen)
        seen.clear()
        return taken

    return take


def _uncached(root: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> bytes:
    """What a run with the cache off writes for ``files`` (in a project of its own)."""
    with monkeypatch.context() as patch:
        patch.setenv("PIXELPIPE_CACHE", "off")
        _dedupe(_project(root, files))
    assert not (root / ".pixelpipe" / "cache").exists()
    return repr(sorted(_outputs(root).items())).encode()


def test_a_rerun_with_one_new_image_decodes_only_that_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: Opened
) -> None:
    files = _files()
    root = _project(tmp_path / "p", files)
    opened()  # making the files here decoded images
    first = _dedupe(root)
    assert first["duplicates_removed"] == 2 and first["unhashable"] == 1
    first_opened = opened()
    assert set(first_opened) == {_sha(d) for d in files.values()}  # hashes and thumbnails
    # Nothing changed: nothing is decoded, the output is the same.
    before = _outputs(root)
    _dedupe(root)
    assert opened() == [] and _outputs(root) == before

    name, source = NEW
    files[name] = _jpeg(source)
    _project(root, files)
    opened()
    again = _dedupe(root)
    assert opened() == [_sha(files[name])]  # not even the undecodable file again
    assert again["hashed"] == first["hashed"] + 1 and again["unhashable"] == 1

    expected = _uncached(tmp_path / "fresh", files, monkeypatch)
    assert repr(sorted(_outputs(root).items())).encode() == expected
    assert set(opened()) == {_sha(d) for d in files.values()}  # the uncached run decoded all


def test_other_hash_settings_hash_again_and_the_first_ones_stay_cached(
    tmp_path: Path, opened: Opened
) -> None:
    files = _files()
    root = _project(tmp_path / "p", files)
    opened()  # making the files here decoded images
    _dedupe(root)
    opened()
    (root / "params.yaml").write_text(yaml.safe_dump({"ingest": {}, "dedupe": {"draft": False}}))
    _dedupe(root)
    hashed = {_sha(d) for d in files.values()}
    assert set(opened()) == hashed  # other hashes: every image decoded again (no thumbnail)
    (root / "params.yaml").write_text(yaml.safe_dump({"ingest": {}, "dedupe": {}}))
    _dedupe(root)
    assert opened() == []


def test_an_image_that_cannot_be_read_is_hashed_once_it_can_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: Opened
) -> None:
    files = _files()
    root = _project(tmp_path / "p", files)
    opened()  # making the files here decoded images
    hidden = root / "data" / "ingest" / "images" / "chelsea.jpg"
    hidden.unlink()
    metrics = _dedupe(root)
    assert metrics["unhashable"] == 2
    report = (root / "data" / "dedupe" / "report.html").read_text()
    assert "cannot read the image: FileNotFoundError: No such file or directory" in report
    assert str(root) not in report  # no absolute path in an output
    opened()

    hidden.write_bytes(files["chelsea.jpg"])  # back: its failure was not the image's
    metrics = _dedupe(root)
    assert opened() == [_sha(files["chelsea.jpg"])]
    assert metrics["unhashable"] == 1
    expected = _uncached(tmp_path / "fresh", files, monkeypatch)
    assert repr(sorted(_outputs(root).items())).encode() == expected


def test_a_report_thumbnail_that_cannot_be_read_is_drawn_once_it_can_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: Opened
) -> None:
    files = _files()
    root = _project(tmp_path / "p", files)
    opened()  # making the files here decoded images
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"ingest": {}, "dedupe": {"report_clusters": 0}}))
    _dedupe(root)  # hashes cached, no cluster shown: no thumbnail made
    params.write_text(yaml.safe_dump({"ingest": {}, "dedupe": {}}))
    hidden = root / "data" / "ingest" / "images" / "astronaut_small.jpg"
    hidden.unlink()
    opened()
    _dedupe(root)  # the hashes are reused; the copy's thumbnail cannot be drawn
    kept = {_sha(files["astronaut.jpg"]), _sha(files["coffee.jpg"])}
    assert set(opened()) == kept  # the thumbnails of the clusters' other images
    report = (root / "data" / "dedupe" / "report.html").read_text()
    assert UNREADABLE in report  # the placeholder saying "cannot read"

    hidden.write_bytes(files["astronaut_small.jpg"])
    _dedupe(root)
    assert opened() == [_sha(files["astronaut_small.jpg"])]  # its thumbnail, drawn now
    expected = _uncached(tmp_path / "fresh", files, monkeypatch)
    assert repr(sorted(_outputs(root).items())).encode() == expected


def test_reading_fails_transiently_and_decoding_for_good() -> None:
    spec = HashSpec()
    good, broken = _jpeg("coffee.png"), _jpeg("coffee.png")[:2000]
    sources: list[Pixels] = [good, b"not an image", broken, "/nowhere/x.jpg"]
    results = hash_read(spec, read_pixels, sources)
    (code, error, transient), garbage, truncated, missing = results
    assert len(code) == spec.nbytes and error is None and not transient
    assert garbage == (b"", "UnidentifiedImageError: cannot identify image file", False)
    assert truncated[0] == b"" and truncated[1] is not None and not truncated[2]
    assert "0x" not in str(garbage[1]) + str(truncated[1])  # no run-specific object address
    assert missing == (
        b"",
        "cannot read the image: FileNotFoundError: No such file or directory",
        True,
    )


def test_dask_workers_without_the_project_disk_get_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("distributed")
    files = _files()
    root = _project(tmp_path / "p", files)
    expected = _uncached(tmp_path / "fresh", files, monkeypatch)
    log = tmp_path / "workers.log"
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(WATCH), path]) if path else str(WATCH))
    monkeypatch.setenv("PIXELPIPE_TEST_WATCH_LOG", str(log))
    monkeypatch.setenv("PIXELPIPE_TEST_FORBIDDEN", str(root.resolve()))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        # A scheduler address: workers taken not to share the project's disk.
        metrics = _dedupe(root, executor=cluster.scheduler_address, workers=2)
    lines = log.read_text().splitlines()
    assert [line for line in lines if line.startswith("watching")], lines  # hooks were on
    assert not [line for line in lines if line.startswith("forbidden")], lines
    assert metrics["unhashable"] == 1 and metrics["duplicates_removed"] == 2
    assert repr(sorted(_outputs(root).items())).encode() == expected
    assert Dataset(root / "data" / "dedupe").info["counts"]["samples"] == len(files) - 2
