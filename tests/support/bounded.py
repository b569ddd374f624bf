"""Running a command on hostile input under a memory limit, expecting one clear error line."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

from shell import launch

# A pixelpipe command maps about 400 MB of address space; an alias bomb would take all of
# the machine's memory. Past this limit the command fails with a MemoryError instead.
MEMORY_LIMIT = 2 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def bounded(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run a command with the test environment, tracking off and the address space bounded."""
    return launch(args, cwd, preexec_fn=_limit_memory, **{"PIXELPIPE_TRACKING": "off", **extra})


def error_lines(args: list[str], cwd: Path, **extra: str) -> list[str]:
    """Run a command that must fail as a user mistake (exit 1, no traceback, within the
    memory limit) and return its ``error:`` lines, without the prefix."""
    result = bounded(args, cwd, **extra)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines, result.stderr
    return [line.removeprefix("error: ") for line in lines]
