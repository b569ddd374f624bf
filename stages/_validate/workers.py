"""Guarded work on the executor's workers: each worker enforces the limits itself.

:class:`Guarded` is a chunk function for ``ctx.executor`` and ``ctx.cached_map``: wherever
the executor runs it (in the stage's process, a worker of the local process pool, a Dask
worker on this machine or another), it runs every item of its chunk in a
:class:`~stages._validate.guard.GuardedPool` of one worker process started right there,
with the time and memory limits. So the checks run where the executor runs its work, and
a decoder that hangs or crashes costs one guarded process on that worker, never the
worker itself.

The guarded process is kept for the next chunk of the same work on the same thread (a
fresh interpreter takes about half a second to import the checks), and ended by
:func:`release` (the stage calls it in its own process when done), at the exit of the
process, or by itself when its parent is gone.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from typing import Any

from stages._validate.guard import GuardedPool, Outcome

_local = threading.local()
_lock = threading.Lock()
_pools: list[GuardedPool] = []
"""Every pool this process started and has not closed (for :func:`release`)."""


@dataclass(frozen=True)
class Guarded:
    """``fn(*args, item)`` for each item of a chunk, in a guarded process of this worker.

    Attributes:
        fn_name: The function as ``module:attr`` (imported by the guarded process).
        args: Its leading arguments (picklable).
        time_limit: Seconds one item may take before its process is killed.
        memory_limit_mb: Address space the guarded process may add to its start-up size;
            0 for no limit.
    """

    fn_name: str
    args: tuple[Any, ...]
    time_limit: float
    memory_limit_mb: int

    def __call__(self, chunk: list[Any]) -> list[Outcome[Any]]:
        """One :class:`Outcome` per item, in order (``timeout``, ``crash``... included)."""
        return list(_pool(self).map(chunk))


def _pool(work: Guarded) -> GuardedPool:
    """This thread's pool for ``work``: the last one when it was for the same work."""
    current: tuple[Guarded, GuardedPool] | None = getattr(_local, "pool", None)
    if current is not None and current[0] == work and current[1] in _pools:
        return current[1]
    if current is not None:
        _close(current[1])
    pool = GuardedPool(
        work.fn_name,
        work.args,
        workers=1,
        time_limit=work.time_limit,
        memory_limit_mb=work.memory_limit_mb,
    )
    with _lock:
        _pools.append(pool)
    _local.pool = (work, pool)
    return pool


def _close(pool: GuardedPool) -> None:
    with _lock:
        if pool in _pools:
            _pools.remove(pool)
    pool.close()


def release() -> None:
    """Stop the guarded processes this process started (the stage's own, when it ran work)."""
    with _lock:
        pools = list(_pools)
    for pool in pools:
        _close(pool)
    _local.pool = None


atexit.register(release)
