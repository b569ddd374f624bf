"""A process pool with a real per-item time limit: a stuck or crashing item costs one worker.

:class:`GuardedPool` runs ``fn(*args, item)`` for each item in worker processes, one item
per worker at a time (:func:`guarded_map` is the one-shot form). The parent waits on every
busy worker's pipe with a deadline; a worker still busy when its item's time is up is
killed (``SIGKILL``: a decoder stuck in C code cannot ignore it) and replaced, and the
item's outcome is ``timeout``. A worker that dies (a segfault in a decoder, an abort, the
kernel's OOM killer) gives ``crash``; an exception raised by ``fn`` gives ``error``.
Outcomes come back in input order, so results never depend on the number of workers.

Workers are fresh interpreters (``subprocess``, not ``multiprocessing``), so a pool can be
started anywhere: in the stage's process, in a worker of the engine's process pool, and in
a Dask worker, whose process is daemonic and may not have ``multiprocessing`` children.
Each worker imports ``fn`` by name, then lowers its own limits (address space, core
dumps), and reports ready before the first item is sent, so start-up time never counts
against an item's time limit. A worker whose parent went away exits by itself.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Status = Literal["ok", "timeout", "crash", "error"]
_READY = "ready"
_START_LIMIT = 120.0
"""Seconds a new worker may take to import its function before the run fails."""
_BOOT = "import sys; from stages._validate.guard import serve; serve(int(sys.argv[1]))"
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What became of one item.

    Attributes:
        status: ``ok`` (``value`` holds the result), ``timeout`` (the worker was killed at
            the time limit), ``crash`` (the worker died) or ``error`` (``fn`` raised).
        value: The result when ``status`` is ``ok``.
        detail: For the other statuses, a sentence for people.
    """

    status: Status
    value: R | None = None
    detail: str = ""


class GuardError(RuntimeError):
    """A worker could not start at all (its function does not import)."""


def _limit_memory(megabytes: int) -> None:
    """Cap this process's address space at its current size plus ``megabytes`` (Linux)."""
    try:
        import resource
    except ImportError:  # not on POSIX: no limit
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if megabytes <= 0:
        return
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # no /proc (macOS): the start-up size is unknown, no cap
        return
    limit = current + megabytes * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _resolve(name: str) -> Callable[..., Any]:
    module, _, attr = name.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return fn


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone (killed while this worker was stuck on an item)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def serve(fd: int) -> None:
    """A worker's main: read its setup from the pipe ``fd``, then serve items.

    The first message is ``(fn_name, args, memory_mb)``; the worker imports ``fn``, caps
    its memory, says it is ready, then answers each ``(index, item)`` with
    ``(index, (status, value))`` until ``None`` or the end of the pipe.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    conn = Connection(fd)
    try:
        fn_name, args, memory_mb = conn.recv()
        fn = _resolve(fn_name)
    except BaseException as exc:  # report and stop: the parent raises GuardError
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    _limit_memory(memory_mb)
    conn.send(_READY)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, item = message
        try:
            reply: tuple[str, Any] = ("ok", fn(*args, item))
        except BaseException as exc:  # any failure of one item is that item's outcome
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send((index, reply))
        except Exception as exc:  # an unpicklable result
            conn.send((index, ("error", f"result could not be sent: {exc}")))


def _child_env() -> dict[str, str]:
    """The worker's environment: this one, this process's import path, one BLAS thread."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths += [p for p in sys.path if p and p not in paths]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # One thread per worker: the pool is the parallelism; BLAS threads only add memory.
    env.update(dict.fromkeys(_ONE_THREAD, "1"))
    return env


class _Worker:
    """One worker process and its pipe; starting until it says it is ready."""

    def __init__(self, fn_name: str, args: tuple[Any, ...], memory_mb: int) -> None:
        self.fn_name = fn_name
        mine, theirs = socket.socketpair()
        self.conn = Connection(mine.detach())
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
        self.conn.send((fn_name, args, memory_mb))
        self.ready = False
        self.index: int | None = None
        self.deadline = time.monotonic() + _START_LIMIT

    @property
    def waiting(self) -> bool:
        """True while the parent expects a message from this worker."""
        return not self.ready or self.index is not None

    @property
    def exitcode(self) -> int | None:
        """The exit code once the process ended (negative: killed by that signal)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        return self.process.returncode

    def hello(self) -> None:
        """Read the worker's first message.

        Raises:
            GuardError: When the worker cannot load its function or died starting.
        """
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise GuardError(f"worker for {self.fn_name} died while starting") from None
        if message != _READY:
            self.kill()
            raise GuardError(f"worker cannot load {self.fn_name}: {message[1]}")
        self.ready = True

    def send(self, index: int, item: Any, time_limit: float) -> None:
        self.index = index
        self.conn.send((index, item))
        self.deadline = time.monotonic() + time_limit

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.kill()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "the worker stopped responding"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker was killed by {name}"
    return f"the worker exited with code {code}"


class GuardedPool:
    """Worker processes that run ``fn(*args, item)`` with a time limit per item.

    The workers live until :meth:`close` (or the end of a ``with`` block), so several
    :meth:`map` calls share them.

    Args:
        fn_name: The function as ``module:attr`` (imported by each worker).
        args: Leading arguments of every call (picklable; sent once per worker).
        workers: Worker processes (at least 1).
        time_limit: Seconds one call may take before its worker is killed.
        memory_limit_mb: Address space each worker may add to its start-up size;
            0 for no limit. Past it, allocations fail (``MemoryError``, an ``error``).
        window: Most items dispatched ahead of the oldest unfinished one (bounds the
            results held for reordering).
    """

    def __init__(
        self,
        fn_name: str,
        args: tuple[Any, ...] = (),
        *,
        workers: int,
        time_limit: float,
        memory_limit_mb: int = 0,
        window: int = 256,
    ) -> None:
        self.fn_name = fn_name
        self.args = args
        self.workers = max(1, workers)
        self.time_limit = time_limit
        self.memory_limit_mb = memory_limit_mb
        self.window = max(1, window)
        self._pool: list[_Worker] = []

    def __enter__(self) -> GuardedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> _Worker:
        return _Worker(self.fn_name, self.args, self.memory_limit_mb)

    def close(self) -> None:
        """Stop every worker (idle ones politely, busy or starting ones by force)."""
        for worker in self._pool:
            if worker.ready and worker.index is None:
                worker.stop()
            else:
                worker.kill()
        self._pool = []

    def map(
        self, items: Sequence[T], on_item: Callable[[int], None] | None = None
    ) -> Iterator[Outcome[Any]]:
        """Run every item; yield one :class:`Outcome` per item, in input order.

        Args:
            items: The items (picklable).
            on_item: Called with 1 as each item finishes (progress).

        Raises:
            GuardError: When a worker cannot start (``fn_name`` does not import).
        """
        total = len(items)
        if total == 0:
            return
        while len(self._pool) < min(self.workers, total):
            self._pool.append(self._start())
        done: dict[int, Outcome[Any]] = {}
        next_index = emitted = 0
        try:
            while emitted < total:
                limit = min(total, emitted + self.window)
                for worker in self._pool:
                    if worker.ready and worker.index is None and next_index < limit:
                        worker.send(next_index, items[next_index], self.time_limit)
                        next_index += 1
                for index, outcome in self._collect():
                    done[index] = outcome
                    if on_item:
                        on_item(1)
                while emitted in done:
                    yield done.pop(emitted)
                    emitted += 1
        except BaseException:
            self.close()  # items in flight belong to this call: stop their workers
            raise

    def _collect(self) -> list[tuple[int, Outcome[Any]]]:
        """Wait for the next message or deadline; return the items that finished."""
        waiting = [w for w in self._pool if w.waiting]
        wait_for = max(0.0, min(w.deadline for w in waiting) - time.monotonic())
        ready = wait([w.conn for w in waiting], wait_for)  # a worker that dies closes its end
        finished: list[tuple[int, Outcome[Any]]] = []
        for slot, worker in enumerate(self._pool):
            if not worker.waiting:
                continue
            signalled = worker.conn in ready
            if not worker.ready:
                if signalled:
                    worker.hello()
                elif time.monotonic() >= worker.deadline:
                    worker.kill()
                    raise GuardError(
                        f"worker for {self.fn_name} did not start within {_START_LIMIT:.0f} s"
                    )
                continue
            index = worker.index
            assert index is not None
            if signalled:
                try:
                    got, (status, value) = worker.conn.recv()
                except (EOFError, OSError):
                    detail = _exit_text(worker.exitcode)
                    worker.kill()
                    finished.append((index, Outcome("crash", detail=detail)))
                    self._pool[slot] = self._start()
                    continue
                if got != index:  # cannot happen: one item per worker at a time
                    raise RuntimeError(f"worker answered item {got}, expected {index}")
                worker.index = None
                finished.append(
                    (
                        index,
                        Outcome("ok", value=value)
                        if status == "ok"
                        else Outcome("error", detail=str(value)),
                    )
                )
            elif time.monotonic() >= worker.deadline:
                worker.kill()
                detail = (
                    f"took longer than the time limit of {self.time_limit:g} s; "
                    "the worker was stopped"
                )
                finished.append((index, Outcome("timeout", detail=detail)))
                self._pool[slot] = self._start()
        return finished


def guarded_map(
    fn_name: str,
    args: tuple[Any, ...],
    items: Sequence[T],
    *,
    workers: int,
    time_limit: float,
    memory_limit_mb: int = 0,
    window: int = 256,
    on_item: Callable[[int], None] | None = None,
) -> Iterator[Outcome[Any]]:
    """Apply ``fn(*args, item)`` to every item in a :class:`GuardedPool` of its own.

    Args:
        fn_name: The function as ``module:attr`` (imported by each worker).
        args: Leading arguments of every call (picklable; sent once per worker).
        items: The items (picklable).
        workers: Worker processes (never more than the items).
        time_limit: Seconds one call may take before its worker is killed.
        memory_limit_mb: Address space each worker may add to its start-up size; 0: none.
        window: Most items dispatched ahead of the oldest unfinished one.
        on_item: Called with 1 as each item finishes (progress).

    Yields:
        One :class:`Outcome` per item, in input order.

    Raises:
        GuardError: When a worker cannot start (``fn_name`` does not import).
    """
    with GuardedPool(
        fn_name,
        args,
        workers=min(workers, max(1, len(items))),
        time_limit=time_limit,
        memory_limit_mb=memory_limit_mb,
        window=window,
    ) as pool:
        yield from pool.map(items, on_item)
