"""Shared fixtures: real projects in temporary git repos, the shared corpora, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"
BIN = Path(sys.executable).parent
# Shared helpers (tests/support/shell.py) import as `shell`. Only that folder goes on the path:
# tests/ itself would let tests/stages shadow the real `stages` package.
sys.path.append(str(Path(__file__).parent / "support"))

# Every subprocess (pixelpipe, dvc, git) runs from this venv, quietly, with a git identity.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GIT_AUTHOR_NAME", "pixelpipe tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@pixelpipe.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "pixelpipe tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@pixelpipe.invalid")
os.environ.pop("PIXELPIPE_EXECUTOR", None)
# MLflow tracking costs ~3 s a stage; the tests of tracking (and the end-to-end run) turn it on.
os.environ["PIXELPIPE_TRACKING"] = "off"

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def corpora() -> Path:
    """``../shared/corpora`` beside the checkout; tests using it skip when it is absent."""
    if not CORPORA.is_dir():
        pytest.skip(f"real-data corpora not found at {CORPORA} (they sit beside the checkout)")
    return CORPORA


def _run(
    args: list[str], cwd: Path, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo raw dataset (real photos, COCO labels), written once; tests copy it."""
    from pixelpipe.project.demo import build

    return Path(build(tmp_path_factory.mktemp("demo") / "demo")["path"])


@pytest.fixture
def run() -> Run:
    """Run a command (``run(["dvc", "repro"], cwd)``); fails the test on a non-zero exit
    unless ``check=False``."""
    return _run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project from ``pixelpipe init`` in a temporary git repo, committed."""
    root = tmp_path / "project"
    _run(["pixelpipe", "init", str(root)], tmp_path)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "init"], root)
    return root


@pytest.fixture
def demo_project(project: Path) -> Path:
    """A project with the demo raw data written (not yet run)."""
    _run(["pixelpipe", "demo"], project)
    return project


@pytest.fixture(autouse=True)
def _isolated_project_imports() -> Iterator[None]:
    """Each test's project imports its own ``module:attr`` stage modules afresh."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n == "custom_stages" or n.startswith("custom_stages.")]:
        del sys.modules[name]
