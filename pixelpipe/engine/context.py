"""What a step gets besides its inputs and params: paths, seeds, workers, logs, progress."""

from __future__ import annotations

import errno
import hashlib
import logging
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

from pixelpipe.dataset.images import ImageStore, Pixels, dvc_cache_dir, is_url, objects_dir
from pixelpipe.engine.executor import Executor, chunk_size
from pixelpipe.engine.itemcache import ItemCache, enabled
from pixelpipe.engine.progress import Advance, progress

T = TypeVar("T")
R = TypeVar("R")


def derive_seed(*key: object) -> int:
    """A 64-bit seed from a key such as ``(stage seed, sample id, copy)``; stable everywhere."""
    text = "\x1f".join(str(k) for k in key)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


class _Prepared(Sequence[Any]):
    """``prepare(item)`` for each item, made when a slice is taken (a chunk is sent)."""

    def __init__(self, items: Sequence[T], prepare: Callable[[T], object]) -> None:
        self._items: Sequence[Any] = items
        self._prepare: Callable[[Any], object] = prepare

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._prepare(item) for item in self._items[index]]
        return self._prepare(self._items[index])


@dataclass
class StageContext:
    """Everything a step may use besides its inputs and params.

    Attributes:
        stage: The stage's name in the pipeline.
        kind: The stage's kind.
        root: The project root; relative paths in params are relative to it.
        output_dir: The directory the runner will rename into place; write files here.
        final_dir: Where the output will be, relative to the project root.
        configs: Config files the pipeline gives the stage, by name (absolute paths).
        seed: The stage seed (the ``seed`` param when the stage has one, else 0).
        executor: Maps work over chunks on workers.
        log: The stage's logger.
        cache: The per-item cache (results reused across runs and stages).
    """

    stage: str
    kind: str
    root: Path
    output_dir: Path
    final_dir: str
    configs: Mapping[str, Path]
    seed: int
    executor: Executor
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("pixelpipe"))
    cache: ItemCache | None = None

    def __post_init__(self) -> None:
        if self.cache is None:
            self.cache = ItemCache(self.root)

    @property
    def images(self) -> ImageStore:
        """The content-addressed image store of this output (linked to the object store)."""
        if not enabled():
            return ImageStore(self.output_dir, self.final_dir)
        return ImageStore(
            self.output_dir, self.final_dir, objects_dir(self.root), dvc_cache_dir(self.root)
        )

    def cached_map(
        self,
        namespace: str,
        salt: object,
        fn: Callable[[list[Any]], list[R]],
        items: Sequence[T],
        content: Callable[[T], object],
        *,
        advance: Advance | None = None,
        largest_chunk: int = 256,
        keep: Callable[[R], bool] = lambda _: True,
        prepare: Callable[[T], object] | None = None,
    ) -> Iterator[R]:
        """``executor.map_chunks(fn, items)``, with each item's result reused from the cache.

        Only the items whose key (``namespace``, ``salt``, ``content(item)`` and the kind's
        code version) is not in the cache go to the workers; results come in input order.

        Args:
            namespace: What the results are, e.g. ``"dedupe.hashes"``.
            salt: The params that affect the results (a value with a stable ``repr``).
            fn: A picklable chunk function, as for ``map_chunks``.
            items: The items.
            content: An item's content key (its sha256, and its annotations or id where
                the result depends on them).
            advance: Progress callback, called for cached and computed items alike.
            largest_chunk: Most items per chunk sent to a worker.
            keep: Whether a computed result may be stored (not a transient failure).
            prepare: What a worker gets for an item, made in this process only for the
                items not found in the cache, one chunk at a time as chunks are sent
                (e.g. ``lambda row: ctx.pixels(images[row])``, so the bytes of cached
                images are never read); ``fn`` gets the items themselves when ``None``.
        """
        assert self.cache is not None

        def compute(missing: list[T]) -> Iterator[R]:
            size = chunk_size(len(missing), self.executor.workers, largest_chunk)
            sent: Sequence[Any] = missing if prepare is None else _Prepared(missing, prepare)
            return self.executor.map_chunks(fn, sent, size, advance)

        return self.cache.map(namespace, salt, items, content, compute, keep, advance)

    def pixels(self, image: str) -> Pixels:
        """Where a worker reads an image from: a URL or local path, or the bytes themselves.

        A manifest's ``image`` is a URL (read by the worker through fsspec) or a path in
        the project. Workers that share the project's disk get the absolute path; workers
        that do not (a Dask cluster elsewhere) get the bytes, read here; a file that cannot
        be read (gone, not a regular file such as a FIFO) goes as its error, which the
        worker's :func:`~pixelpipe.open_pixels` raises.
        """
        if is_url(image):
            return image
        path = self.resolve(image)
        if self.executor.shared_disk:
            return str(path)
        try:
            if not stat.S_ISREG(path.stat().st_mode):
                return OSError(errno.EINVAL, "not a regular file", image)
            return path.read_bytes()
        except OSError as exc:
            return exc

    def rng(self, *key: object) -> np.random.Generator:
        """A generator seeded from (stage seed, ``*key``), e.g. ``ctx.rng(sample.id, copy)``."""
        return np.random.default_rng(derive_seed(self.seed, *key))

    def progress(self, total: int, desc: str) -> AbstractContextManager[Advance]:
        """Progress of ``total`` items: a bar on a terminal, log lines otherwise."""
        return progress(total, f"{self.stage}: {desc}", self.log)

    def resolve(self, path: str) -> Path:
        """A path from params, relative to the project root unless absolute."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.root / candidate
