"""Leftovers of killed runs in ``data/``: found, cleaned, and named.

Outputs are swapped into ``data/`` through hidden sibling folders named after the output
and the process that writes them: ``data/.<stage>.tmp-<pid>`` (a stage's output being
written), ``data/.<stage>.old-<pid>`` (the previous output, between the two renames of a
swap) and ``data/.<stage>.checkout-<pid>`` (a version being checked out). The process
removes them when it ends; a process killed with SIGKILL cannot, and when DVC later
restores the stage from its cache, the stage never runs again to clean up after itself.

So every command that touches ``data/`` calls :func:`clean_leftovers` first. It removes the
folders of processes that are gone, never those of a running process (a stage running
right now in another terminal), and puts a previous output back when the kill came between
the two renames of a swap (``.old-`` left, the output itself missing), because that is the
output ``dvc.lock`` still names.

The process test is ``kill(pid, 0)`` on this machine: a ``data/`` shared between machines
or PID namespaces (containers) should not be used by two of them at once.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Action = Literal["removed", "restored", "kept"]
_LEFTOVER = re.compile(r"^\.(?P<output>.+)\.(?P<kind>tmp|old|checkout)-(?P<pid>\d+)$")


@dataclass(frozen=True)
class Leftover:
    """A hidden folder in ``data/`` that a run left behind.

    Attributes:
        path: The folder.
        output: The output it belongs to (the stage name: ``.slow.tmp-42`` -> ``slow``).
        kind: ``tmp``, ``old`` or ``checkout``.
        pid: The process that made it.
        action: ``removed`` (its process is gone), ``restored`` (an ``.old-`` folder put back
            as the missing output) or ``kept`` (its process is still running).
    """

    path: Path
    output: str
    kind: str
    pid: int
    action: Action

    def __str__(self) -> str:
        data = self.path.parent.name
        name = f"{data}/{self.path.name}"
        if self.action == "kept":
            return f"kept {name}: in use by running process {self.pid}"
        if self.action == "restored":
            return (
                f"restored {data}/{self.output} from {name}: a killed run (process {self.pid}) "
                "was replacing it"
            )
        return f"removed {name}: left by a killed run (process {self.pid} is gone)"


def alive(pid: int) -> bool:
    """True when process ``pid`` exists on this machine (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_leftovers(data_dir: Path) -> list[tuple[Path, str, str, int]]:
    """The hidden run folders directly in ``data_dir``, sorted: ``(path, output, kind, pid)``."""
    if not data_dir.is_dir():
        return []
    found = []
    for entry in sorted(data_dir.iterdir()):
        match = _LEFTOVER.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink():
            found.append((entry, match["output"], match["kind"], int(match["pid"])))
    return found


def clean_leftovers(data_dir: Path) -> list[Leftover]:
    """Remove the run folders of dead processes in ``data_dir``; say what was found.

    An ``.old-`` folder whose output is missing is renamed back into place instead (the
    previous output, which ``dvc.lock`` still names). Folders of running processes, and of
    this process, are left alone; those of running processes are returned as ``kept``.

    Args:
        data_dir: The project's ``data/`` folder (nothing happens when it does not exist).

    Returns:
        Every leftover found, with what was done to it, in name order.
    """
    done: list[Leftover] = []
    for path, output, kind, pid in find_leftovers(data_dir):
        if pid == os.getpid():
            continue
        if alive(pid):
            done.append(Leftover(path, output, kind, pid, "kept"))
            continue
        final = data_dir / output
        action: Action = "removed"
        if kind == "old" and not final.exists() and not final.is_symlink():
            try:
                os.replace(path, final)
                action = "restored"
            except OSError:  # another command restored it first
                pass
        if action == "removed":
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():  # another command removing it too, or not ours to remove
                continue
        done.append(Leftover(path, output, kind, pid, action))
    return done
