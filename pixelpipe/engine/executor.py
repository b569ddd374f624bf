"""One map-over-chunks interface, run in-process, on a local process pool, or on Dask.

Results always come back in input order, so outputs never depend on the number of
workers or on the executor. Choose with ``--executor``/``PIXELPIPE_EXECUTOR``:

- ``local`` (default): a process pool of ``--workers``/``PIXELPIPE_WORKERS`` processes
  (1 runs in-process);
- ``dask``: a ``distributed.LocalCluster`` on loopback with that many workers;
- ``dask://HOST:PORT`` or ``tcp://HOST:PORT``: an existing Dask scheduler. Its workers are
  taken not to share the project's disk (``shared_disk`` is False): stages send them the
  bytes of images stored in the project and URLs of the rest, and workers write nothing
  into the project. ``PIXELPIPE_SHARED_DISK=1`` says they do share it (an NFS mount at
  the same path).

A :class:`~pixelpipe.errors.PixelpipeError` raised in a worker (a user mistake, a source
that went away) travels back as a value and is raised in the parent as itself, with its
problems, and nothing else: no worker traceback is chained to it or logged by Dask.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pixelpipe.errors import PixelpipeError, Problem

T = TypeVar("T")
R = TypeVar("R")
ChunkFn = Callable[[list[T]], list[R]]


class Executor(Protocol):
    """Maps a function over chunks of items; results in input order."""

    workers: int
    shared_disk: bool
    """Whether workers see the project's files at the same paths."""

    def map_chunks(
        self,
        fn: ChunkFn[T, R],
        items: Sequence[T],
        chunk_size: int,
        on_chunk: Callable[[int], None] | None = None,
    ) -> Iterator[R]:
        """Apply ``fn`` to consecutive chunks of ``items``; yield results in order.

        Args:
            fn: A picklable top-level function from a list of items to a list of
                results of the same length.
            items: The items.
            chunk_size: Items per chunk.
            on_chunk: Called with the chunk's size as each chunk completes (progress).
        """
        ...

    def close(self) -> None:
        """Release workers."""
        ...


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    size = max(1, size)
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _checked(chunk: list[T], result: list[R]) -> list[R]:
    if len(result) != len(chunk):
        raise RuntimeError(f"chunk function returned {len(result)} results for {len(chunk)} items")
    return result


class SerialExecutor:
    """Runs every chunk in this process."""

    workers = 1
    shared_disk = True

    def map_chunks(
        self,
        fn: ChunkFn[T, R],
        items: Sequence[T],
        chunk_size: int,
        on_chunk: Callable[[int], None] | None = None,
    ) -> Iterator[R]:
        """See :meth:`Executor.map_chunks`."""
        for chunk in _chunks(items, chunk_size):
            yield from _checked(chunk, fn(chunk))
            if on_chunk:
                on_chunk(len(chunk))

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class _Refused:
    """A :class:`PixelpipeError` raised by a chunk in a worker, carried back as a value."""

    kind: type[PixelpipeError]
    problems: list[Problem]

    def error(self) -> PixelpipeError:
        """The error, as it was raised."""
        try:
            return self.kind(self.problems)
        except TypeError:  # a subclass built differently
            return PixelpipeError(self.problems)


@dataclass(frozen=True)
class _Carried:
    """``fn`` for a worker: a :class:`PixelpipeError` it raises is returned as :class:`_Refused`."""

    fn: Callable[[list[Any]], list[Any]]

    def __call__(self, chunk: list[Any]) -> list[Any] | _Refused:
        try:
            return self.fn(chunk)
        except PixelpipeError as exc:
            return _Refused(type(exc), exc.problems)


def _pipelined(
    submit: Callable[[list[T]], Any],
    items: Sequence[T],
    chunk_size: int,
    window: int,
    on_chunk: Callable[[int], None] | None,
) -> Iterator[R]:
    """Submit chunks with at most ``window`` in flight; yield results in input order."""
    chunks = _chunks(items, chunk_size)
    pending: deque[tuple[list[T], Any]] = deque(
        (chunk, submit(chunk)) for chunk in itertools.islice(chunks, window)
    )
    while pending:
        chunk, future = pending.popleft()
        returned = future.result()
        if isinstance(returned, _Refused):
            raise returned.error()
        result: list[R] = _checked(chunk, returned)
        following = next(chunks, None)
        if following is not None:
            pending.append((following, submit(following)))
        if on_chunk:
            on_chunk(len(chunk))
        yield from result


class _PoolExecutor:
    """What the process pool and Dask share: chunks go through ``_submit``.

    At most ``2 * workers`` chunks are in flight, results come in order, and a worker's
    ``PixelpipeError`` is re-raised as itself.
    """

    workers: int
    shared_disk = True

    def _submit(self, fn: Callable[[list[Any]], Any], chunk: list[Any]) -> Any:
        raise NotImplementedError

    def map_chunks(
        self,
        fn: ChunkFn[T, R],
        items: Sequence[T],
        chunk_size: int,
        on_chunk: Callable[[int], None] | None = None,
    ) -> Iterator[R]:
        """See :meth:`Executor.map_chunks`."""
        carried = _Carried(fn)
        return _pipelined(
            lambda chunk: self._submit(carried, chunk),
            items,
            chunk_size,
            2 * self.workers,
            on_chunk,
        )


class ProcessExecutor(_PoolExecutor):
    """A local process pool; at most ``2 * workers`` chunks in flight (bounded memory).

    Args:
        workers: Number of worker processes.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        # forkserver: no fork of a threaded parent (progress bars and loggers run threads).
        context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def _submit(self, fn: Callable[[list[Any]], Any], chunk: list[Any]) -> Any:
        return self._pool.submit(fn, chunk)

    def close(self) -> None:
        """Shut the pool down."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(_PoolExecutor):
    """Runs chunks on a Dask ``distributed`` cluster; at most ``2 * workers`` in flight.

    Args:
        address: A scheduler address, or ``None`` to start a ``LocalCluster`` on loopback.
        workers: Workers of the local cluster.
    """

    def __init__(self, address: str | None, workers: int) -> None:
        from distributed import Client, LocalCluster

        self._cluster: Any = None
        self.shared_disk = address is None or os.environ.get("PIXELPIPE_SHARED_DISK") == "1"
        if address is None:
            self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
                processes=True,
            )
            self._client: Any = Client(self._cluster)  # type: ignore[no-untyped-call]
        else:
            self._client = Client(address)  # type: ignore[no-untyped-call]
        self.workers = max(1, len(self._client.scheduler_info().get("workers", {})) or workers)
        self._running: list[Any] = []

    def _submit(self, fn: Callable[[list[Any]], Any], chunk: list[Any]) -> Any:
        future = self._client.submit(fn, chunk, pure=False)
        self._running = [f for f in self._running if not f.done()] + [future]
        return future

    def close(self) -> None:
        """Close the client and any cluster this executor started.

        Chunks still running are let finish first, as the process pool does: a task
        cancelled by closing makes Dask log a warning.
        """
        from distributed import wait

        running = [f for f in self._running if not f.done()]
        if running:
            wait(running)  # type: ignore[no-untyped-call]
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def chunk_size(total: int, workers: int, largest: int = 256) -> int:
    """Items per chunk: at most ``largest``, small enough to give every worker ~4 chunks.

    Chunking changes speed only, never results, so it is no stage param (params rerun stages).
    """
    return max(1, min(largest, -(-total // (4 * max(workers, 1)))))


def default_workers() -> int:
    """``PIXELPIPE_WORKERS``, else the number of usable CPUs."""
    raw = os.environ.get("PIXELPIPE_WORKERS")
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise PixelpipeError(f"PIXELPIPE_WORKERS: not a whole number: {raw!r}") from None
        if value < 1:
            raise PixelpipeError(f"PIXELPIPE_WORKERS: must be at least 1, got {value}")
        return value
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def make_executor(spec: str | None = None, workers: int | None = None) -> Executor:
    """Build the executor named by ``spec`` (or ``PIXELPIPE_EXECUTOR``).

    Args:
        spec: ``local``, ``dask``, or a scheduler address ``dask://host:port``.
        workers: Worker count; defaults to :func:`default_workers`.

    Raises:
        PixelpipeError: For an unknown executor name.
    """
    spec = spec or os.environ.get("PIXELPIPE_EXECUTOR") or "local"
    count = workers if workers is not None else default_workers()
    if spec == "local":
        return SerialExecutor() if count <= 1 else ProcessExecutor(count)
    if spec == "dask":
        return DaskExecutor(None, count)
    if spec.startswith(("dask://", "tcp://")):
        return DaskExecutor("tcp://" + spec.split("://", 1)[1], count)
    raise PixelpipeError(f"unknown executor {spec!r}: use 'local', 'dask' or 'dask://HOST:PORT'")
