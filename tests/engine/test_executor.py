"""Executors: the same results, in input order, whatever runs them."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from pixelpipe.engine.executor import SerialExecutor, make_executor
from pixelpipe.errors import PixelpipeError
from pixelpipe.fileaccess import FileAccess
from pixelpipe.project.demo import build
from stages._ingest.keys import stamp_local
from stages._ingest.worker import Failed, Job, Settings, probe_chunk


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    root = Path(build(tmp_path_factory.mktemp("demo") / "demo")["path"]) / "images"
    return sorted((p.name, str(p)) for p in root.glob("*.jpg"))


def _run(spec: str, workers: int, images: list[tuple[str, str]]) -> list[object]:
    """Ingest's worker function (probe and fully decode) over the demo photos."""
    executor = make_executor(spec, workers)
    done: list[int] = []
    jobs = [Job(Path(p).resolve().as_posix().lstrip("/"), stamp_local(Path(p))) for _, p in images]
    try:
        fn = functools.partial(
            probe_chunk, FileAccess(None, "/", Path("/")), Settings(10**8, True, 95)
        )
        results: list[object] = list(executor.map_chunks(fn, jobs, 4, done.append))
    finally:
        executor.close()
    assert sum(done) == len(images)
    return results


@pytest.mark.parametrize(
    ("spec", "workers"),
    [
        ("local", 1),  # in-process
        ("local", 2),  # process pool
        ("dask", 2),  # a real distributed.LocalCluster on loopback
    ],
)
def test_results_are_identical_and_ordered(
    images: list[tuple[str, str]], spec: str, workers: int
) -> None:
    expected = _run("local", 1, images)
    results = _run(spec, workers, images)
    assert results == expected and len(results) == len(images)
    assert {r.reason for r in results if isinstance(r, Failed)} >= {"truncated", "unreadable"}


def test_a_chunk_function_must_keep_the_count() -> None:
    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        list(SerialExecutor().map_chunks(lambda chunk: chunk[:1], [1, 2], 2))


def test_bad_executor_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PixelpipeError, match="unknown executor 'spark'"):
        make_executor("spark", 1)
    monkeypatch.setenv("PIXELPIPE_WORKERS", "many")
    with pytest.raises(PixelpipeError, match="PIXELPIPE_WORKERS: not a whole number"):
        make_executor("local")
