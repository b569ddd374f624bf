"""``split`` on reruns: the perceptual hashes it computes come from the per-item cache.

With no hash column upstream (no dedupe), split hashes the images itself. A rerun with one
new image decodes only that image (``PIL.Image.open`` is wrapped by a recording function
that calls the real one) and writes the very bytes a run with the cache off writes; an
image that could not be read is hashed once it can be.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import PIL.Image
import pytest
import yaml
from PIL import Image

from pixelpipe import Annotation, Category, DatasetBuilder, Sample
from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.runner import run_stage

SKIMAGE = Path(str(__import__("skimage").__file__)).parent / "data"
PIPELINE = "pipelines/p.yaml"
SOURCES = {
    "astronaut.jpg": ("astronaut.png", None),
    "astronaut_small.jpg": ("astronaut.png", 256),  # a near duplicate: one group
    "coffee.jpg": ("coffee.png", None),
    "chelsea.jpg": ("chelsea.png", None),
    "camera.jpg": ("camera.png", None),
    "rocket.jpg": ("rocket.jpg", None),
    "coins.jpg": ("coins.png", None),
    "page.jpg": ("page.png", None),
}
NEW = ("moon.jpg", ("moon.png", None))


def _jpeg(name: str, size: int | None) -> bytes:
    with Image.open(SKIMAGE / name) as opened:
        image = opened.convert("RGB")
    if size is not None:
        image = image.resize((size, size * image.height // image.width))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _project(root: Path, files: dict[str, bytes]) -> Path:
    """A project whose stage ``src`` holds ``files`` (no hash column), with ``split``."""
    folder = root / "data" / "src" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    builder = DatasetBuilder([Category(1, "thing")])
    for name, data in sorted(files.items()):
        (folder / name).write_bytes(data)
        builder.add(
            Sample(
                id=name,
                image=f"data/src/images/{name}",
                sha256=_sha(data),
                width=512,
                height=512,
                source=f"raw/{name}",
                annotations=[Annotation(1, (1.0, 1.0, 10.0, 10.0))],
            )
        )
    write_dataset(root / "data" / "src", builder, stage="src", kind="ingest", params={}, inputs={})
    stages = {"src": {"kind": "ingest"}, "split": {"kind": "split", "inputs": ["src"]}}
    (root / "pipelines").mkdir(exist_ok=True)
    (root / PIPELINE).write_text(yaml.safe_dump({"stages": stages}))
    (root / "params.yaml").write_text(yaml.safe_dump({"src": {}, "split": {}}))
    return root


def _split(root: Path) -> dict[str, Any]:
    return run_stage(root, "split", PIPELINE, workers=1)


def _outputs(root: Path) -> bytes:
    folder = root / "data" / "split"
    return repr([(p.name, p.read_bytes()) for p in sorted(folder.iterdir())]).encode()


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")
    for name in ("PIXELPIPE_CACHE", "PIXELPIPE_CACHE_DIR", "PIXELPIPE_SHARED_DISK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def files() -> dict[str, bytes]:
    return {name: _jpeg(*source) for name, source in SOURCES.items()}


class Opened:
    """The sha256 of the bytes of every ``PIL.Image.open`` call, while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[str] = []
        real = PIL.Image.open

        def recording(fp: Any, *args: Any, **kwargs: Any) -> Image.Image:
            data = fp.getvalue() if isinstance(fp, io.BytesIO) else Path(fp).read_bytes()
            self.seen.append(_sha(data))
            return real(fp, *args, **kwargs)

        monkeypatch.setattr(PIL.Image, "open", recording)

    def take(self) -> list[str]:
        """What was opened since the last call."""
        taken, self.seen = self.seen, []
        return taken


def _uncached(root: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> bytes:
    with monkeypatch.context() as patch:
        patch.setenv("PIXELPIPE_CACHE", "off")
        _split(_project(root, files))
    assert not (root / ".pixelpipe" / "cache").exists()
    return _outputs(root)


def test_a_rerun_with_one_new_image_hashes_only_that_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]
) -> None:
    root = _project(tmp_path / "p", files)
    opened = Opened(monkeypatch)
    _split(root)
    assert sorted(opened.take()) == sorted(_sha(d) for d in files.values())
    groups = {r["split_group"] for r in _rows(root) if r["id"].startswith("astronaut")}
    assert len(groups) == 1  # the near duplicates share a group

    name, source = NEW
    files[name] = _jpeg(*source)
    _project(root, files)
    opened.take()
    _split(root)
    assert opened.take() == [_sha(files[name])]
    assert _outputs(root) == _uncached(tmp_path / "fresh", files, monkeypatch)
    assert sorted(opened.take()) == sorted(_sha(d) for d in files.values())


def test_an_image_that_cannot_be_read_is_hashed_once_it_can_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]
) -> None:
    root = _project(tmp_path / "p", files)
    hidden = root / "data" / "src" / "images" / "astronaut_small.jpg"
    hidden.unlink()
    _split(root)  # no hash for it: grouped by its other reasons only
    assert len({r["split_group"] for r in _rows(root) if r["id"].startswith("astronaut")}) == 2
    opened = Opened(monkeypatch)
    hidden.write_bytes(files["astronaut_small.jpg"])
    _split(root)
    assert opened.take() == [_sha(files["astronaut_small.jpg"])]
    groups = {r["split_group"] for r in _rows(root) if r["id"].startswith("astronaut")}
    assert len(groups) == 1
    assert _outputs(root) == _uncached(tmp_path / "fresh", files, monkeypatch)


def _rows(root: Path) -> list[dict[str, Any]]:
    table = Dataset(root / "data" / "split").table
    return list(table.select(["id", "split_group"]).to_pylist())
