"""The per-item cache: reuse, keys, transient results, concurrency, kills and its bound."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from shell import launch

from pixelpipe.engine import itemcache
from pixelpipe.engine.itemcache import ItemCache, code_version
from pixelpipe.errors import PixelpipeError


class Counting:
    """A compute function that records the items it was given."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, items: list[int]) -> Iterator[dict[str, float]]:
        self.seen += items
        return iter([{"square": float(i * i), "third": i / 3} for i in items])


def squares(
    cache: ItemCache, items: list[int], salt: object = "s"
) -> tuple[list[object], list[int]]:
    compute = Counting()
    results = list(cache.map("squares", salt, items, lambda i: i, compute))
    return results, compute.seen


def test_a_second_run_computes_only_new_items_and_returns_identical_results(
    tmp_path: Path,
) -> None:
    first, seen = squares(ItemCache(tmp_path, "v1"), list(range(100)))
    assert seen == list(range(100))
    cache = ItemCache(tmp_path, "v1")
    second, seen = squares(cache, [*range(100), 100, 101])
    assert seen == [100, 101]
    assert second[:100] == first
    assert second[100] == {"square": 10000.0, "third": 100 / 3}
    assert (cache.stats["squares"].hits, cache.stats["squares"].computed) == (100, 2)


def test_results_keep_input_order_when_hits_and_misses_interleave(tmp_path: Path) -> None:
    squares(ItemCache(tmp_path, "v1"), list(range(0, 50, 2)))
    results, seen = squares(ItemCache(tmp_path, "v1"), list(range(50)))
    assert seen == list(range(1, 50, 2))
    assert [r["square"] for r in results] == [float(i * i) for i in range(50)]  # type: ignore[index]


@pytest.mark.parametrize(
    ("version", "salt"),
    [
        ("v2", "s"),  # the kind's code changed
        ("v1", "other"),  # a param that affects results changed
    ],
)
def test_a_new_code_version_or_salt_misses(tmp_path: Path, version: str, salt: str) -> None:
    squares(ItemCache(tmp_path, "v1"), [1, 2, 3])
    _, seen = squares(ItemCache(tmp_path, version), [1, 2, 3], salt)
    assert seen == [1, 2, 3]


def test_results_the_stage_calls_transient_are_not_stored(tmp_path: Path) -> None:
    def compute(items: list[int]) -> Iterator[str]:
        return iter(["timeout" if i % 2 else "ok" for i in items])

    for _ in range(2):
        cache = ItemCache(tmp_path, "v1")
        list(cache.map("n", "", [1, 2, 3, 4], lambda i: i, compute, keep=lambda r: r == "ok"))
    assert (cache.stats["n"].hits, cache.stats["n"].computed) == (2, 2)


def test_off_stores_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_CACHE", "off")
    squares(ItemCache(tmp_path, "v1"), [1, 2])
    _, seen = squares(ItemCache(tmp_path, "v1"), [1, 2])
    assert seen == [1, 2]
    assert not (tmp_path / ".pixelpipe").exists()


def test_the_code_version_follows_the_kind_module_and_its_helpers(tmp_path: Path) -> None:
    (tmp_path / "mykind.py").write_text("X = 1\n")
    (tmp_path / "_mykind").mkdir()
    (tmp_path / "_mykind" / "helper.py").write_text("Y = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import mykind  # noqa: F401

        before = code_version("mykind")
        assert code_version("mykind") == before
        (tmp_path / "_mykind" / "helper.py").write_text("Y = 2\n")
        assert code_version("mykind") != before
        # a helper package another kind shares (select hashes with split's helpers)
        (tmp_path / "_other").mkdir()
        (tmp_path / "_other" / "shared.py").write_text("Z = 1\n")
        again = code_version("mykind")
        (tmp_path / "_other" / "shared.py").write_text("Z = 2\n")
        assert code_version("mykind") != again
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mykind", None)


def _writer(root: str, start: int) -> None:
    cache = ItemCache(Path(root), "v1")
    items = list(range(start, start + 3000))
    list(cache.map("n", "", items, lambda i: i, lambda xs: iter([x * 2 for x in xs])))
    cache.close()


def test_concurrent_runs_store_everything(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(str(tmp_path), s)) for s in (0, 2000)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        assert process.exitcode == 0
    cache = ItemCache(tmp_path, "v1")
    found = list(
        cache.map("n", "", list(range(5000)), lambda i: i, lambda xs: iter([-1] * len(xs)))
    )
    assert found == [i * 2 for i in range(5000)]


KILLED_WRITER = """
import sys
from pathlib import Path
from pixelpipe.engine.itemcache import ItemCache
cache = ItemCache(Path(sys.argv[1]), "v1")
n = 0
while True:
    cache.put_many((cache.key("n", "", n + i), b"x" * 5000) for i in range(2000))
    n += 2000
    print(n, flush=True)
"""


def test_a_run_killed_while_writing_leaves_a_sound_cache(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert writer.stdout is not None
    while int(writer.stdout.readline() or 0) < 20000:
        pass
    time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    db = sqlite3.connect(tmp_path / ".pixelpipe" / "cache" / "items.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    count = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    db.close()
    assert count >= 20000 and count % 2000 == 0  # whole transactions only
    cache = ItemCache(tmp_path, "v1")
    assert set(cache.get_many([cache.key("n", "", i) for i in range(count)]).values()) == {
        b"x" * 5000
    }


def test_gc_drops_the_least_recently_used_first(tmp_path: Path) -> None:
    cache = ItemCache(tmp_path, "v1")
    cache.put_many((cache.key("n", "", i), os.urandom(1000)) for i in range(10))
    db = sqlite3.connect(cache.path)
    db.execute("UPDATE items SET used = used - 10")  # all old ...
    db.commit()
    db.close()
    cache.get_many([cache.key("n", "", i) for i in range(5, 10)])  # ... but five used today
    done = itemcache.gc(tmp_path, 6000)
    assert done["dropped"] == 5 and done["bytes"] <= 6000
    kept = cache.get_many([cache.key("n", "", i) for i in range(10)])
    assert sorted(kept) == sorted(cache.key("n", "", i) for i in range(5, 10))


def test_a_run_past_the_limit_trims_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXELPIPE_CACHE_MAX", "20K")
    cache = ItemCache(tmp_path, "v1")
    cache.put_many((cache.key("n", "", i), os.urandom(1000)) for i in range(50))
    cache.close()
    assert itemcache.summary(tmp_path)["bytes"] <= 16000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500M", 500 * 10**6),  # a suffix
        ("20G", 20 * 10**9),
        ("1.5GB", 1_500_000_000),  # a fraction and a B
        ("1234", 1234),  # bytes
    ],
)
def test_sizes(text: str, expected: int) -> None:
    assert itemcache.parse_size(text, "--max-size") == expected


def test_a_size_that_is_not_one_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_CACHE_MAX", "lots")
    with pytest.raises(PixelpipeError, match=r"PIXELPIPE_CACHE_MAX: not a size: 'lots'"):
        itemcache.max_bytes()


def test_cache_commands(tmp_path: Path) -> None:
    cache = ItemCache(tmp_path, "v1")
    cache.put_many((cache.key("n", "", i), os.urandom(1000)) for i in range(10))
    cache.close()
    objects = tmp_path / ".pixelpipe" / "objects" / "ab"
    objects.mkdir(parents=True)
    (objects / ("ab" * 32)).write_bytes(b"pixels")
    info = launch(["pixelpipe", "cache", "info"], tmp_path)
    assert info.returncode == 0, info.stderr
    assert "10 results" in info.stdout and "1 images" in info.stdout
    collected = launch(["pixelpipe", "cache", "gc", "--max-size", "5K"], tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert "dropped 6 results" in collected.stdout
    assert "deleted 1 images linked by nothing" in collected.stdout
    bad = launch(["pixelpipe", "cache", "gc", "--max-size", "big"], tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: --max-size: not a size: 'big' (e.g. 500M, 20G)"
