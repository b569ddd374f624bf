"""Running commands in test projects: the environment and the checks the CLI tests share."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent


def env(**extra: str) -> dict[str, str]:
    """The environment of every command: one worker, no ambient MLflow settings."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIXELPIPE_", "AWS_"))
    }
    base["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    base["PIXELPIPE_WORKERS"] = "1"
    base["DVC_NO_ANALYTICS"] = "1"
    base["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return {**base, **extra}


def launch(
    args: list[str], cwd: Path, *, preexec_fn: Callable[[], None] | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run a command with the test environment plus ``extra`` (``preexec_fn`` runs in the
    child before the command, e.g. to set resource limits)."""
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env(**extra),
        stdin=subprocess.DEVNULL,
        preexec_fn=preexec_fn,
    )


def sh(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run a command; fail the test with its output when it fails."""
    result = launch(args, cwd, **extra)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        )
    return result


def fails(args: list[str], cwd: Path, **extra: str) -> str:
    """Run a command that must fail as a user mistake: exit 1, one line, no traceback."""
    result = launch(args, cwd, **extra)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]
