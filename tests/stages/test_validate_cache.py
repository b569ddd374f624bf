"""``validate`` on reruns and on Dask: per-image results come from the cache, checks run on workers.

Images are decoded in guarded processes (fresh interpreters started by whichever process
runs the executor's chunk), never in the test's own process, so a monkeypatch of
``PIL.Image.open`` here sees nothing. Decodes are counted for real in every process
instead: ``tests/support/decodes/sitecustomize.py`` goes on the ``PYTHONPATH`` the
guarded processes start with, and logs the sha256 of every image ``PIL.Image.open`` reads
(the real function runs). A monkeypatch here also counts, to show the stage's own process
decodes nothing. The Dask test writes a ``sitecustomize`` of its own that also logs which
process decoded, and makes every process of the cluster (workers and their guarded
processes) refuse to open any file under the project, as on a machine without the
project's disk.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pixelpipe import Annotation, Category, DatasetBuilder, Sample
from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.runner import run_stage

WATCH = Path(__file__).parents[1] / "support" / "watch"
"""A sitecustomize that watches worker processes (see its docstring)."""

DECODES = Path(__file__).resolve().parents[1] / "support" / "decodes"
OUTPUTS = ("samples.parquet", "removed.parquet", "findings.parquet", "report.html", "dataset.json")
RULES = """\
rules:
  decode: error
  extension: warn
  color_mode: fix
  blur: warn
  box_inside: fix
  unlabelled: warn
"""
PIPELINE = """\
stages:
  ingest:
    kind: ingest
  validate:
    kind: validate
    inputs: ingest
    configs:
      rules: configs/validation/rules.yaml
"""


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")
    for name in ("PIXELPIPE_CACHE", "PIXELPIPE_CACHE_DIR", "PIXELPIPE_SHARED_DISK"):
        monkeypatch.delenv(name, raising=False)


def _encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _sharp(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    board = ((xx // 6 + yy // 6) % 2) * 120 + 60
    noise = rng.integers(-30, 30, size=(height, width, 3))
    return Image.fromarray(np.clip(board[..., None] + noise, 0, 255).astype(np.uint8), "RGB")


# name -> (bytes, labels): one image per kind of result (kept, warned, converted, removed).
FILES: dict[str, tuple[bytes, list[Annotation]]] = {
    "sharp.jpg": (_encoded(_sharp(96, 64, 0), "JPEG", quality=95), [Annotation(1, (4, 4, 20, 20))]),
    "blurred.png": (
        _encoded(_sharp(96, 64, 1).filter(ImageFilter.GaussianBlur(4)), "PNG"),
        [Annotation(1, (10, 10, 20, 20))],
    ),
    "cmyk.jpg": (
        _encoded(_sharp(80, 60, 2).convert("CMYK"), "JPEG", quality=95),
        [Annotation(2, (70, 50, 20, 20))],  # past the corner: clipped by box_inside
    ),
    "truncated.jpg": (_encoded(_sharp(256, 256, 3), "JPEG", quality=90)[:6000], []),
    "png_named.jpg": (_encoded(_sharp(64, 64, 4), "PNG"), [Annotation(1, (0, 0, 8, 8))]),
}
NEW = "new.png"
NEW_FILE = (_encoded(_sharp(72, 48, 5).convert("P"), "PNG"), [Annotation(2, (60, 40, 30, 30))])


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


SIZES = {name: _size(data) for name, (data, _) in [*FILES.items(), (NEW, NEW_FILE)]}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _project(root: Path, names: list[str], rules: str = RULES, params: str = "{}") -> Path:
    """A project whose ``data/ingest`` holds ``names`` (files of :data:`FILES` and ``NEW``)."""
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "pipelines" / "v.yaml").write_text(PIPELINE)
    (root / "configs" / "validation").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "validation" / "rules.yaml").write_text(rules)
    (root / "params.yaml").write_text(f"ingest: {{}}\nvalidate: {params}\n")
    raw = root / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    builder = DatasetBuilder([Category(1, "cat"), Category(2, "dog")])
    for name in names:
        data, labels = FILES.get(name) or NEW_FILE
        (raw / name).write_bytes(data)
        width, height = SIZES[name]
        image_path = f"data/raw/{name}"
        builder.add(
            Sample(name, image_path, _sha(data), width, height, image_path, annotations=labels)
        )
    write_dataset(
        root / "data" / "ingest", builder, stage="ingest", kind="ingest", params={}, inputs={}
    )
    return root


def _outputs(root: Path) -> dict[str, bytes]:
    """Every output file of the stage, including converted images, by relative path."""
    out = root / "data" / "validate"
    files = {name: (out / name).read_bytes() for name in OUTPUTS}
    for path in sorted((out / "images").rglob("*")) if (out / "images").is_dir() else []:
        if path.is_file():
            files[path.relative_to(out).as_posix()] = path.read_bytes()
    return files


class Decodes:
    """``PIL.Image.open`` calls: in this process (monkeypatched) and in every child process."""

    def __init__(self, log: Path, here: list[str]) -> None:
        self.log = log
        self.here = here

    def take(self) -> list[str]:
        """The sha256 of each image opened since the last call, in any process."""
        found = self.log.read_text().split() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        found += self.here
        self.here.clear()
        return found


@pytest.fixture
def decodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Decodes]:
    log = tmp_path / "decodes.log"
    monkeypatch.setenv("PYTHONPATH", str(DECODES))  # the guarded processes count their opens
    monkeypatch.setenv("PIXELPIPE_TEST_DECODES", str(log))
    here: list[str] = []
    real_open = Image.open

    def counted(fp: Any, *args: Any, **kwargs: Any) -> Any:
        here.append(f"stage-process:{fp!r}")
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counted)
    yield Decodes(log, here)


def _guarded_children() -> list[int]:
    """Guarded processes this process started and that still run."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"stages._validate.guard" in command:
            found.append(int(entry.name))
    return found


def _validate(root: Path, **kwargs: Any) -> dict[str, Any]:
    return run_stage(root, "validate", "pipelines/v.yaml", **kwargs)


def _uncached(
    root: Path, monkeypatch: pytest.MonkeyPatch, names: list[str], rules: str = RULES
) -> dict[str, bytes]:
    """The outputs of a run on the same input with ``PIXELPIPE_CACHE=off``."""
    with monkeypatch.context() as patch:
        patch.setenv("PIXELPIPE_CACHE", "off")
        _project(root, names, rules)
        _validate(root, workers=1)
    assert not (root / ".pixelpipe").exists()
    return _outputs(root)


def test_a_rerun_with_one_new_image_decodes_only_that_image(
    tmp_path: Path, decodes: Decodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = list(FILES)
    root = _project(tmp_path / "p", names)
    metrics = _validate(root, workers=1)
    assert set(decodes.take()) == {_sha(FILES[n][0]) for n in names}  # each image, no other
    assert metrics["quarantined"] == 1 and metrics["fixed"] == 1
    first = _outputs(root)
    assert any(name.startswith("images/") for name in first)  # the CMYK file's RGB copy

    _project(root, [*names, NEW])  # a data drop: one more image
    _validate(root, workers=1)
    # Checked, converted and drawn for the report: the new image, and nothing else.
    assert set(decodes.take()) == {_sha(NEW_FILE[0])}
    assert _guarded_children() == []  # the stage stopped its guarded process

    rerun = _outputs(root)
    assert rerun == _uncached(tmp_path / "fresh", monkeypatch, [*names, NEW])
    copies = [name for name in rerun if name.startswith("images/")]
    assert len(copies) == 2  # the cached conversion linked again, and the new one
    assert all(rerun[name] == first[name] for name in first if name.startswith("images/"))

    decodes.take()  # the uncached run's
    _validate(root, workers=2)  # another executor: still nothing decoded, same bytes
    assert decodes.take() == []
    assert _outputs(root) == rerun


def test_changing_the_rule_set_recomputes_only_what_it_affects(
    tmp_path: Path, decodes: Decodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = list(FILES)
    every = {_sha(FILES[n][0]) for n in names}
    root = _project(tmp_path / "p", names)
    _validate(root, workers=1)
    assert set(decodes.take()) == every

    stricter = RULES.replace("blur: warn", "blur:\n    severity: warn\n    min_variance: 5000")
    (root / "configs" / "validation" / "rules.yaml").write_text(stricter)
    _validate(root, workers=1)
    assert set(decodes.take()) == every  # an image rule changed: every image checked again
    assert _outputs(root) == _uncached(tmp_path / "fresh", monkeypatch, names, stricter)
    decodes.take()  # the uncached run's

    labels_only = stricter.replace("box_inside: fix", "box_inside: warn")
    (root / "configs" / "validation" / "rules.yaml").write_text(labels_only)
    _validate(root, workers=1)
    assert decodes.take() == []  # a label rule changed: the image reports still hold
    assert _outputs(root) == _uncached(tmp_path / "fresh2", monkeypatch, names, labels_only)


def test_time_outs_and_unreadable_files_are_not_cached(
    tmp_path: Path, decodes: Decodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = list(FILES)
    root = _project(tmp_path / "p", names, params="{time_limit: 0.000001}")
    _validate(root, workers=1)
    removed = Dataset(root / "data" / "validate").removed().to_pylist()
    assert {r["reason"] for r in removed} == {"timeout"} and len(removed) == len(names)
    decodes.take()

    (root / "params.yaml").write_text("ingest: {}\nvalidate: {}\n")
    hidden = root / "data" / "raw" / "sharp.jpg"
    hidden.rename(hidden.with_name("elsewhere"))
    _validate(root, workers=1)
    assert set(decodes.take()) == {_sha(FILES[n][0]) for n in names if n != "sharp.jpg"}
    removed = {r["id"]: r for r in Dataset(root / "data" / "validate").removed().to_pylist()}
    assert removed["sharp.jpg"]["detail"] == "file not found: data/raw/sharp.jpg"

    hidden.with_name("elsewhere").rename(hidden)  # back: its result was not the image's
    _validate(root, workers=1)
    assert set(decodes.take()) == {_sha(FILES["sharp.jpg"][0])}
    assert _outputs(root) == _uncached(tmp_path / "fresh", monkeypatch, names)


def test_checks_run_on_dask_workers_that_get_bytes_and_enforce_the_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("distributed")
    names = [*FILES, NEW]
    root = _project(tmp_path / "p", names, params="{time_limit: 0.000001}")
    expected = _uncached(tmp_path / "local", monkeypatch, names)

    log = tmp_path / "cluster.log"
    monkeypatch.setenv("PYTHONPATH", str(WATCH))
    monkeypatch.setenv("PIXELPIPE_TEST_WATCH_LOG", str(log))
    monkeypatch.setenv("PIXELPIPE_TEST_FORBIDDEN", str(root.resolve()))
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(client.run(os.getpid).values())
        address = cluster.scheduler_address  # tcp://: workers without the project's disk

        # A time limit each worker enforces itself: every check is killed...
        _validate(root, executor=address)
        removed = Dataset(root / "data" / "validate").removed().to_pylist()
        assert {r["reason"] for r in removed} == {"timeout"} and len(removed) == len(names)
        assert _guarded_children() == []  # no guarded process of this one did it

        # ...and nothing of that is cached: the next run checks every image.
        log.unlink(missing_ok=True)
        (root / "params.yaml").write_text("ingest: {}\nvalidate: {}\n")
        _validate(root, executor=address)
        assert _outputs(root) == expected
        lines = log.read_text().splitlines()
        assert not [line for line in lines if line.startswith("forbidden")], lines
        decoded = [line.split() for line in lines if line.startswith("decode")]
        assert {sha for _, sha, _ in decoded} == {_sha(d) for d, _ in [*FILES.values(), NEW_FILE]}
        assert {int(ppid) for _, _, ppid in decoded} <= workers  # children of Dask workers
        assert _guarded_children() == []
