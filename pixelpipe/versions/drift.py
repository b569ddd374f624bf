"""``pixelpipe diff A B --stats``: the ``drift`` stage's tests between two versions or folders.

Each side is a dataset folder (``data/publish``, or one ``pixelpipe get`` wrote) or a state
:func:`~pixelpipe.versions.target.resolve` names (a version, a git revision, ``workspace``):
its dataset stage's manifest, class map and ``dataset.json`` are read (through DVC for a
version) into a temporary folder. The ``drift`` kind's own step then runs on the two, in a
temporary output folder, with the kind's default params, the project's item cache under the
kind's code version and the usual executor, exactly as ``dvc repro`` would run it: the
verdicts are the stage's, and an image property either one measured is reused by the other.

Images are read from where the step looks (the manifest's path in the project, then the
object store by sha256). For a version, the images found in neither place are first copied
out of the version's DVC data (the DVC cache, else the DVC remote) into the temporary
folder, so a fresh clone compares old versions too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpipe.dataset import CATEGORIES_FILE, INFO_FILE, SAMPLES_FILE, Dataset
from pixelpipe.dataset.images import is_url, objects_dir
from pixelpipe.engine.compile import DATA_DIR
from pixelpipe.engine.context import StageContext
from pixelpipe.engine.executor import make_executor
from pixelpipe.engine.itemcache import ItemCache, code_version
from pixelpipe.engine.registry import resolve as resolve_kind
from pixelpipe.errors import PixelpipeError
from pixelpipe.versions.target import Target, resolve
from pixelpipe.versions.vcs import project_root

KIND = "drift"
"""The stage kind whose step does the comparison."""
REPORT_JSON = "drift.json"
"""The file the step writes its verdicts to (``stages/drift.py``)."""
REPORT_HTML = "report.html"
"""The step's HTML report."""
MANIFEST_FILES = (SAMPLES_FILE, CATEGORIES_FILE, INFO_FILE)


@dataclass
class Side:
    """One of the two datasets compared.

    Attributes:
        label: What the user named (``v1``, ``data/publish``).
        stage: The stage that wrote the dataset.
        digest: Its content digest.
        samples: Its images.
    """

    label: str
    stage: str
    digest: str
    samples: int

    @classmethod
    def of(cls, label: str, dataset: Dataset) -> Side:
        """Describe ``dataset``, named ``label``."""
        return cls(label, str(dataset.info.get("stage", "")), dataset.digest, len(dataset))


@dataclass
class DriftStats:
    """What :func:`stats` found.

    Attributes:
        reference: The first dataset named (``A``).
        current: The second (``B``), compared with the reference.
        result: The verdicts: ``pixelpipe.quality.drift.compare``'s JSON.
        reused: Image properties found in the item cache.
        computed: Image properties measured.
        fetched: Images of a version copied out of its DVC data.
    """

    reference: Side
    current: Side
    result: dict[str, Any] = field(default_factory=dict)
    reused: int = 0
    computed: int = 0
    fetched: int = 0


def _root(start: Path) -> Path:
    """The project the command runs in; the folder itself outside any project."""
    try:
        return project_root(start)
    except PixelpipeError:
        return start.resolve()


def _folder(name: str, start: Path) -> Path | None:
    """The dataset folder ``name`` names, or ``None`` when it names no folder."""
    path = Path(name).expanduser()
    path = path if path.is_absolute() else start / path
    if not path.is_dir():
        return None
    if not (path / SAMPLES_FILE).is_file():
        raise PixelpipeError(
            f"{name}: a folder, but not a pixelpipe dataset (no {SAMPLES_FILE}); name a stage "
            f"output such as {DATA_DIR}/publish, or a version"
        )
    return path


def _missing_images(dataset: Dataset, root: Path) -> list[str]:
    """Image paths of ``dataset`` found neither in the project nor in its object store."""
    table = dataset.table.select(["image", "sha256"])
    objects = objects_dir(root)
    missing: dict[str, None] = {}
    for image, sha in zip(
        table.column("image").to_pylist(), table.column("sha256").to_pylist(), strict=True
    ):
        if is_url(image) or (root / image).is_file() or (objects / sha[:2] / sha).is_file():
            continue
        missing[image] = None
    return list(missing)


def _checkout(target: Target, root: Path, into: Path) -> tuple[Dataset, int]:
    """Copy a version's manifest (and the images the project lacks) under ``into``.

    ``into`` plays the version's project: the manifest goes to ``into/data/<stage>``, so
    the step looks for the copied images under ``into`` first.
    """
    folder = f"{DATA_DIR}/{target.stage}"
    (into / folder).mkdir(parents=True)
    for name in MANIFEST_FILES:
        with target.open(f"{folder}/{name}") as stream, (into / folder / name).open("wb") as out:
            shutil.copyfileobj(stream, out)
    dataset = Dataset(into / folder)
    missing = _missing_images(dataset, root)
    for image in missing:
        dest = into / image
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.get(image, dest)
        except PixelpipeError:
            continue  # the step reports it as an image that cannot be read
    return dataset, len(missing)


def _dataset(name: str, start: Path, root: Path, into: Path) -> tuple[Dataset, int]:
    """The dataset ``name`` names, and how many of its images were fetched for it."""
    folder = _folder(name, start)
    if folder is not None:
        return Dataset(folder), 0
    target = resolve(root, name)
    if target.commit is None:
        return Dataset(target.root / DATA_DIR / target.stage), 0
    return _checkout(target, root, into)


@contextmanager
def _context(root: Path, output: Path, workers: int | None) -> Iterator[StageContext]:
    """The context the runner would give a ``drift`` stage, writing into ``output``."""
    kind = resolve_kind(KIND, root)
    executor = make_executor(None, workers)
    cache = ItemCache(root, code_version(kind.step.__module__))
    try:
        yield StageContext(
            stage="diff --stats",
            kind=KIND,
            root=root,
            output_dir=output,
            final_dir=str(output),
            configs={},
            seed=0,
            executor=executor,
            cache=cache,
        )
    finally:
        executor.close()
        cache.close()


def stats(
    start: Path, a: str, b: str, workers: int | None = None, report: Path | None = None
) -> DriftStats:
    """Run the ``drift`` tests on ``b`` against ``a`` (the reference).

    Args:
        start: Where the command runs (inside a project for versions).
        a: The reference: a version, git revision, ``workspace`` or dataset folder.
        b: The dataset compared with it, likewise.
        workers: Worker count (default: the executor's).
        report: Where to copy the step's HTML report, if anywhere.

    Returns:
        The two sides, the verdicts and what the item cache saved.

    Raises:
        PixelpipeError: On an unknown version, a folder that is no dataset, or data that
            cannot be fetched.
    """
    root = _root(start)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pixelpipe-drift-")))
        reference, fetched_a = _dataset(a, start, root, tmp / "reference")
        current, fetched_b = _dataset(b, start, root, tmp / "current")
        output = tmp / "output"
        output.mkdir()
        ctx = stack.enter_context(_context(root, output, workers))
        kind = resolve_kind(KIND, root)
        kind.step([current, reference], kind.params(), ctx)
        found = DriftStats(
            Side.of(a, reference),
            Side.of(b, current),
            json.loads((output / REPORT_JSON).read_text(encoding="utf-8")),
            fetched=fetched_a + fetched_b,
        )
        assert ctx.cache is not None
        found.reused = sum(s.hits for s in ctx.cache.stats.values())
        found.computed = sum(s.computed for s in ctx.cache.stats.values())
        if report is not None:
            copy_atomic(output / REPORT_HTML, report)
    return found


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (a temporary file renamed into place), in ``value``'s order."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def copy_atomic(source: Path, path: Path) -> None:
    """Copy a file to ``path`` through a temporary file renamed into place."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
