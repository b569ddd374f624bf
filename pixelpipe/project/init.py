"""``pixelpipe init``: a ready project (git, DVC, pipeline, params, configs, dvc.yaml).

The templates are this repository's own ``pipelines/`` and ``configs/`` (linked into the
package), so a new project runs exactly the pipeline this repository runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from pixelpipe.engine.compile import compile_pipeline
from pixelpipe.engine.loader import DEFAULT_PIPELINE, PARAMS_FILE, load_pipeline
from pixelpipe.engine.registry import resolve
from pixelpipe.engine.yamlio import load_text
from pixelpipe.errors import PixelpipeError

TEMPLATES = resources.files("pixelpipe.project") / "templates"


def default_params_text(pipeline_text: str) -> str:
    """``params.yaml`` for a pipeline: every stage's params at their defaults."""
    stages = load_text(pipeline_text, DEFAULT_PIPELINE).data["stages"]
    values: dict[str, Any] = {
        name: resolve(spec["kind"]).params().model_dump(mode="json")
        for name, spec in stages.items()
    }
    header = (
        "# Tunable values of each stage, keyed by stage name; missing values take the defaults.\n"
        "# DVC tracks each stage's key, so `dvc exp run -S STAGE.PARAM=VALUE` reruns that stage.\n"
    )
    return header + yaml.safe_dump(values, sort_keys=False, default_flow_style=False)


def _tree(folder: Traversable, prefix: str) -> dict[str, str]:
    """Every text file under a template folder, by its path in the project."""
    files: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        name = f"{prefix}/{entry.name}"
        if entry.is_dir():
            files.update(_tree(entry, name))
        elif not entry.name.startswith("."):
            files[name] = entry.read_text(encoding="utf-8")
    return files


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PixelpipeError(f"`{' '.join(args)}` failed: {result.stderr.strip() or result.stdout}")


DVC_CONFIG = """[core]
    analytics = false
    autostage = true
[cache]
    type = reflink,hardlink,copy
"""
"""No analytics calls from a data pipeline; `dvc repro` stages what it changes in git; DVC's
cache links the outputs instead of copying them (outputs are never edited in place: every
run writes new files), so an output and its cached copy are one set of bytes."""


def init_project(directory: Path) -> Iterator[str]:
    """Create or complete a project in ``directory``; existing files are kept.

    Yields:
        One line per thing done, for the user.
    """
    directory.mkdir(parents=True, exist_ok=True)
    inside_git = (
        subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"],
            cwd=directory,
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if not inside_git:
        if shutil.which("git") is None:
            raise PixelpipeError("git is not installed; pixelpipe versions data with git and DVC")
        _run(["git", "init", "-q"], directory)
        yield "initialised git"
    if not (directory / ".dvc").is_dir():
        _run([sys.executable, "-m", "dvc", "init", "-q"], directory)
        # No analytics calls from a data pipeline; `dvc repro` stages what it changes in git.
        with (directory / ".dvc" / "config").open("a", encoding="utf-8") as config:
            config.write(DVC_CONFIG)
        with (directory / ".dvcignore").open("a", encoding="utf-8") as ignore:
            ignore.write("/.pixelpipe/\n")
        yield "initialised DVC (cache of hard links: each output byte is stored once)"
    pipeline_text = (TEMPLATES / "pipelines" / "default.yaml").read_text(encoding="utf-8")
    files = {
        DEFAULT_PIPELINE: pipeline_text,
        PARAMS_FILE: default_params_text(pipeline_text),
        ".gitignore": (TEMPLATES / "gitignore").read_text(encoding="utf-8"),
    }
    files.update(_tree(TEMPLATES / "configs", "configs"))
    for name, text in files.items():
        path = directory / name
        if path.exists():
            yield f"kept existing {name}"
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        yield f"wrote {name}"
    compile_pipeline(load_pipeline(directory.resolve(), DEFAULT_PIPELINE))
    yield "wrote dvc.yaml; next: `pixelpipe demo` then `dvc repro`"
