"""The per-item cache: results of per-image work, reused when nothing that matters changed.

A stage maps a function over items (images); each result is stored under a key made of the
stage kind's code version, a namespace and salt the stage names (the params that affect the
result) and the item's content (its sha256, its annotations where they matter). A rerun
finds the results of unchanged items and computes only the rest, so adding 1% new images to
a dataset of millions decodes only the new 1%.

The cache is one SQLite database, ``.pixelpipe/cache/items.sqlite`` in the project (git- and
DVC-ignored; ``PIXELPIPE_CACHE_DIR`` moves it, ``PIXELPIPE_CACHE=off`` turns it off). SQLite
makes it safe under concurrent runs (WAL, one short transaction per block of results) and
under kills (a transaction is committed whole or not at all). Values are pickled (and zlib-
compressed): a hit is the very object the computation returned, so outputs are byte-
identical either way. It is bounded: ``pixelpipe cache gc`` drops the least recently used
entries down to a size, and a run that leaves it past ``PIXELPIPE_CACHE_MAX`` (default 20
GB) trims it to 80% of that.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pixelpipe.errors import PixelpipeError

T = TypeVar("T")
R = TypeVar("R")

CACHE_DIR = ".pixelpipe/cache"
DB_NAME = "items.sqlite"
DEFAULT_MAX_BYTES = 20 * 10**9
BLOCK = 4096
"""Items looked up (and results committed) per transaction."""
_SQL_VARS = 500


def cache_dir(root: Path) -> Path:
    """Where the project's cache lives (``PIXELPIPE_CACHE_DIR`` overrides)."""
    override = os.environ.get("PIXELPIPE_CACHE_DIR")
    return Path(override).expanduser() if override else root / CACHE_DIR


def enabled() -> bool:
    """False when ``PIXELPIPE_CACHE=off`` (every item is computed, nothing stored)."""
    return os.environ.get("PIXELPIPE_CACHE", "on").strip().lower() not in {"off", "0", "false"}


def max_bytes() -> int:
    """``PIXELPIPE_CACHE_MAX`` in bytes (suffixes K, M, G allowed), else 20 GB."""
    raw = os.environ.get("PIXELPIPE_CACHE_MAX", "").strip()
    return parse_size(raw, "PIXELPIPE_CACHE_MAX") if raw else DEFAULT_MAX_BYTES


def parse_size(text: str, what: str) -> int:
    """``"500M"`` -> 500_000_000; raises a one-line error naming ``what``."""
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    value = text.strip().upper().removesuffix("B")
    unit = value[-1:] if value[-1:] in units else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        raise PixelpipeError(f"{what}: not a size: {text!r} (e.g. 500M, 20G)") from None
    if number < 0:
        raise PixelpipeError(f"{what}: a size cannot be negative: {text!r}")
    return int(number * units[unit])


def code_version(module: str) -> str:
    """A digest of the code that computes a stage kind's results.

    It covers the kind's module, every private helper package beside it (``stages/_*/``:
    its own, ``stages/_validate/`` for ``stages/validate.py``, and those kinds share, as
    ``select`` uses split's hashing), the private modules beside it (``stages/_<name>.py``)
    and the ``pixelpipe`` package, so editing any of them misses the cache instead of
    reusing a stale result. Library versions that change pixels or keypoints
    (Pillow, NumPy, OpenCV) are part of it too.
    """
    digest = hashlib.sha256()
    files: list[Path] = []
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None)
    if origin:
        path = Path(origin)
        files.append(path)
        files += sorted(path.parent.glob("_*/**/*.py"))
        files += sorted(p for p in path.parent.glob("_*.py") if p.name != "__init__.py")
    files += sorted(Path(__file__).resolve().parents[1].rglob("*.py"))
    for file in files:
        digest.update(file.name.encode() + b"\0")
        digest.update(file.read_bytes())
    from importlib.metadata import PackageNotFoundError, version

    # OpenCV finds dedupe's keypoints; it ships under several distribution names.
    for library in ("pillow", "numpy", "opencv-python-headless", "opencv-python"):
        try:
            digest.update(f"{library}={version(library)}\0".encode())
        except PackageNotFoundError:
            continue
    return digest.hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    """Open (and on first use create) the database; waits while another run sets it up.

    Switching a new database to WAL takes an exclusive lock that SQLite does not wait for,
    so two runs starting together retry here instead of failing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 120
    while True:
        connection = sqlite3.connect(path, timeout=120, isolation_level=None)
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS items ("
                " key BLOB PRIMARY KEY, value BLOB NOT NULL, size INTEGER NOT NULL,"
                " used INTEGER NOT NULL) WITHOUT ROWID"
            )
            return connection
        except sqlite3.OperationalError as exc:
            connection.close()
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _today() -> int:
    return int(time.time() // 86400)


@dataclass
class CacheStats:
    """What one cached map did: items found in the cache and items computed."""

    hits: int = 0
    computed: int = 0


class ItemCache:
    """The project's per-item cache (see the module docstring).

    Args:
        root: The project root.
        version: The code version of the stage kind using it (:func:`code_version`).
    """

    def __init__(self, root: Path, version: str = "") -> None:
        self.path = cache_dir(root) / DB_NAME
        self.version = version
        self.enabled = enabled()
        self.stats: dict[str, CacheStats] = {}
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = _connect(self.path)
            except sqlite3.Error as exc:
                raise PixelpipeError(f"cannot open the item cache {self.path}: {exc}") from None
        return self._db

    def key(self, namespace: str, salt: object, item: object) -> bytes:
        """The key of one item's result: code version, namespace, salt and item content."""
        text = repr((self.version, namespace, salt, item))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Any]:
        """The stored results among ``keys``; marks them used today."""
        if not self.enabled or not keys:
            return {}
        db = self._connection()
        found: dict[bytes, Any] = {}
        today = _today()
        for start in range(0, len(keys), _SQL_VARS):
            part = list(keys[start : start + _SQL_VARS])
            marks = ",".join("?" * len(part))
            rows = db.execute(
                f"SELECT key, value, used FROM items WHERE key IN ({marks})", part
            ).fetchall()
            stale = []
            for key, value, used in rows:
                try:
                    found[key] = pickle.loads(zlib.decompress(value))
                except Exception:  # written by other code (a cache older than this one)
                    continue
                if used < today:
                    stale.append(key)
            if stale:
                marks = ",".join("?" * len(stale))
                db.execute(f"UPDATE items SET used = ? WHERE key IN ({marks})", [today, *stale])
        return found

    def put_many(self, results: Iterable[tuple[bytes, Any]]) -> None:
        """Store results, in one transaction (all or nothing if the process is killed)."""
        if not self.enabled:
            return
        rows = []
        today = _today()
        for key, value in results:
            blob = zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1)
            rows.append((key, blob, len(blob) + len(key), today))
        if not rows:
            return
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def map(
        self,
        namespace: str,
        salt: object,
        items: Sequence[T],
        content: Callable[[T], object],
        compute: Callable[[list[T]], Iterator[R]],
        keep: Callable[[R], bool] = lambda _: True,
        on_hits: Callable[[int], None] | None = None,
    ) -> Iterator[R]:
        """Results for ``items`` in order: stored ones reused, the rest computed and stored.

        Args:
            namespace: What the results are (``"dedupe.hashes"``); one per kind of result.
            salt: The params that affect the result (anything with a stable ``repr``).
            items: The items.
            content: An item's content key: its sha256 and whatever else decides the result
                (annotations, the sample id when seeds derive from it).
            compute: Computes the results of a list of items, in order (usually the
                executor's ``map_chunks``).
            keep: Whether a computed result may be stored (not a transient failure such as
                a time-out or a file that went missing).
            on_hits: Called with the number of results found per block (progress).

        A block's computed results are stored only after the caller has taken all of them,
        so a caller may drop what must not be cached (an image's encoded bytes, stored in
        the image store instead) from a result as it takes it; ingest, validate and augment
        do, and their tests check that no pixels reach the cache.
        """
        stats = self.stats.setdefault(namespace, CacheStats())
        for start in range(0, len(items), BLOCK):
            block = list(items[start : start + BLOCK])
            keys = [self.key(namespace, salt, content(item)) for item in block]
            found = self.get_many(keys)
            missing = [item for item, key in zip(block, keys, strict=True) if key not in found]
            computed = compute(missing) if missing else iter(())
            if on_hits and len(found):
                on_hits(len(found))
            fresh: list[tuple[bytes, Any]] = []
            for key in keys:
                if key in found:
                    stats.hits += 1
                    yield found[key]
                    continue
                result = next(computed)
                stats.computed += 1
                if keep(result):
                    fresh.append((key, result))
                yield result
            self.put_many(fresh)

    def close(self) -> None:
        """Close the database; trim it when it grew past ``PIXELPIPE_CACHE_MAX``."""
        if self._db is None:
            return
        try:
            limit = max_bytes()
            if total_size(self._db) > limit:
                collect(self._db, int(limit * 0.8))
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no WAL file left behind
        finally:
            self._db.close()
            self._db = None


def total_size(db: sqlite3.Connection) -> int:
    """Bytes of stored results (keys and values)."""
    return int(db.execute("SELECT COALESCE(SUM(size), 0) FROM items").fetchone()[0])


def collect(db: sqlite3.Connection, limit: int) -> tuple[int, int]:
    """Drop least recently used entries until at most ``limit`` bytes remain.

    Returns:
        ``(entries dropped, bytes dropped)``.
    """
    size = total_size(db)
    dropped = freed = 0
    if size <= limit:
        return 0, 0
    db.execute("BEGIN IMMEDIATE")
    try:
        rows = db.execute("SELECT key, size FROM items ORDER BY used, key")
        doomed: list[bytes] = []
        for key, length in rows:
            if size - freed <= limit:
                break
            doomed.append(key)
            freed += length
        for start in range(0, len(doomed), _SQL_VARS):
            part = doomed[start : start + _SQL_VARS]
            db.execute(f"DELETE FROM items WHERE key IN ({','.join('?' * len(part))})", part)
        dropped = len(doomed)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return dropped, freed


def summary(root: Path) -> dict[str, Any]:
    """Where the cache is, its entries and bytes (for ``pixelpipe cache info``)."""
    path = cache_dir(root) / DB_NAME
    if not path.exists():
        return {"path": str(path), "entries": 0, "bytes": 0, "file_bytes": 0}
    with closing(_connect(path)) as db:
        entries = int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
        size = total_size(db)
    on_disk = sum(p.stat().st_size for p in path.parent.glob(f"{DB_NAME}*") if p.is_file())
    return {"path": str(path), "entries": entries, "bytes": size, "file_bytes": on_disk}


def gc(root: Path, limit: int) -> dict[str, int]:
    """Trim the cache to ``limit`` bytes (least recently used first) and compact the file."""
    path = cache_dir(root) / DB_NAME
    if not path.exists():
        return {"dropped": 0, "freed": 0, "entries": 0, "bytes": 0}
    with closing(_connect(path)) as db:
        dropped, freed = collect(db, limit)
        db.execute("VACUUM")
        entries = int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
        size = total_size(db)
    return {"dropped": dropped, "freed": freed, "entries": entries, "bytes": size}
