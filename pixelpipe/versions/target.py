"""A state to read data from: a version, a git revision, or the workspace (:func:`resolve`).

A :class:`Target` reads git-tracked files with git and DVC-tracked files through DVC's file
system (workspace, DVC cache, else the DVC remote); checkout, get and diff read through it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import yaml

from pixelpipe.engine.compile import DATA_DIR, DVC_FILE
from pixelpipe.errors import PixelpipeError
from pixelpipe.versions.tags import WORKSPACE, Version, list_versions, unknown
from pixelpipe.versions.vcs import git, git_ok, project_root


def _sink_stage(dvc_yaml: str) -> str:
    """The stage whose output is *the* dataset.

    That is the one no other stage reads (``publish`` when several are).
    """
    stages = (yaml.safe_load(dvc_yaml) or {}).get("stages") or {}
    read = {str(dep) for entry in stages.values() for dep in entry.get("deps") or []}
    sinks = [name for name in stages if f"{DATA_DIR}/{name}" not in read]
    if not sinks:
        raise PixelpipeError(f"{DVC_FILE} has no stages")
    return "publish" if "publish" in sinks else sinks[-1]


@dataclass(frozen=True)
class Target:
    """A state to read data from: a version, a git revision, or the workspace.

    Attributes:
        root: The project.
        label: What the user named (``v1``, ``HEAD``, ``workspace``).
        commit: The git commit, or ``None`` for the workspace.
        version: The released version, when ``label`` is one.
    """

    root: Path
    label: str
    commit: str | None
    version: Version | None = None

    def read_text(self, path: str) -> str:
        """A git-tracked file (``dvc.yaml``) as of this state."""
        if self.commit is None:
            return (self.root / path).read_text(encoding="utf-8")
        return git(self.root, "show", f"{self.commit}:./{path}")

    @property
    def stage(self) -> str:
        """The stage whose output is the dataset."""
        if self.version is not None:
            return self.version.stage
        return _sink_stage(self.read_text(DVC_FILE))

    @cached_property
    def _fs(self) -> Any:
        from dvc.api import DVCFileSystem

        return DVCFileSystem(str(self.root), rev=self.commit)

    def open(self, path: str) -> IO[bytes]:
        """A DVC-tracked file of this state, from the workspace, the DVC cache or the remote."""
        if self.commit is None:
            return (self.root / path).open("rb")
        try:
            handle: IO[bytes] = self._fs.open(path, "rb")
        except Exception as exc:
            raise _fetch_error(self.label, path, exc) from None
        return handle

    def get(self, path: str, dest: Path) -> None:
        """Copy a DVC-tracked folder or file of this state to ``dest`` (which must not exist)."""
        if self.commit is None:
            source = self.root / path
            if source.is_dir():
                shutil.copytree(source, dest)
            else:
                shutil.copyfile(source, dest)
            return
        try:
            self._fs.get(path, str(dest), recursive=True)
        except Exception as exc:
            shutil.rmtree(dest, ignore_errors=True)
            raise _fetch_error(self.label, path, exc) from None


def _fetch_error(label: str, path: str, exc: Exception) -> PixelpipeError:
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return PixelpipeError(
        f"cannot read {path} of {label}: it is neither in the DVC cache nor on a reachable "
        f"DVC remote ({detail})"
    )


def resolve(root: Path, name: str, *, workspace: bool = True) -> Target:
    """A version, ``HEAD`` or any git revision, or ``workspace`` (the files as they are).

    Raises:
        PixelpipeError: With a did-you-mean among the versions when nothing has that name.
    """
    root = project_root(root)
    if name == WORKSPACE and workspace:
        return Target(root, name, None)
    found = list_versions(root)
    for version in found:
        if version.name == name:
            return Target(root, name, version.commit, version)
    if not name.startswith("-"):
        commit = git_ok(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        if commit:
            return Target(root, name, commit)
    raise unknown(name, [v.name for v in found])
