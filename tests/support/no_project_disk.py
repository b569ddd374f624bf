"""A Dask worker preload: the worker may not touch the project's folder.

Every file access under ``PIXELPIPE_TEST_FORBIDDEN`` (open, listing, creating, linking,
renaming, removing) raises ``PermissionError`` and prints ``FORBIDDEN ACCESS`` to the
worker's log, as if the worker ran on a machine without the project's disk.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_EVENTS = {
    "open", "os.listdir", "os.scandir", "os.mkdir", "os.rename", "os.link", "os.symlink",
    "os.remove", "os.rmdir", "os.truncate", "os.chmod", "shutil.copyfile",
}  # fmt: skip


def _forbidden_hook(root: str) -> Any:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in _EVENTS or not args:
            return
        for candidate in args[:2]:
            if isinstance(candidate, str | bytes | os.PathLike):
                path = os.path.abspath(os.fsdecode(candidate))
                if path == root or path.startswith(root + os.sep):
                    print(f"FORBIDDEN ACCESS: {event} {path}", file=sys.__stderr__, flush=True)
                    raise PermissionError(f"a worker may not touch the project: {path}")

    return hook


class _TasksDone:
    """Prints ``TASK DONE`` for each task this worker finished (so a test sees it worked)."""

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish == "memory":
            print(f"TASK DONE {key}", file=sys.__stderr__, flush=True)


async def dask_setup(worker: Any) -> None:
    """Install the audit hook and the task counter when the worker starts."""
    from distributed import WorkerPlugin

    sys.addaudithook(_forbidden_hook(os.environ["PIXELPIPE_TEST_FORBIDDEN"]))
    plugin = type("TasksDone", (_TasksDone, WorkerPlugin), {})()
    await worker.plugin_add(plugin, name="tasks-done")
