"""Versions as git tags: :class:`Version`, listing and finding them, checking a new name.

A version is an annotated tag whose message ends with ``pixelpipe-*`` trailer lines (the
stage, digest, counts and MLflow runs of the dataset), so listing versions needs git only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pixelpipe.errors import PixelpipeError, did_you_mean
from pixelpipe.versions.vcs import HEAD, git, git_ok, project_root, run

WORKSPACE = "workspace"
TRAILER = "pixelpipe-"
_RESERVED = frozenset({HEAD, WORKSPACE})


@dataclass(frozen=True)
class Version:
    """A released version.

    Attributes:
        name: The tag.
        commit: The tagged commit.
        date: When it was released (ISO 8601).
        message: The release message.
        stage: The stage whose output is the dataset (``publish``).
        digest: The dataset's content digest.
        counts: Its counts (samples, annotations, splits, removed...).
        runs: The MLflow run id of each stage, where tracking was on.
    """

    name: str
    commit: str
    date: str
    message: str
    stage: str
    digest: str
    counts: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        """The MLflow run of the dataset's stage."""
        return self.runs.get(self.stage)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``pixelpipe versions --json``)."""
        return {**asdict(self), "mlflow_run_id": self.run_id}


def _parse_tag(name: str, commit: str, date: str, contents: str) -> Version | None:
    values: dict[str, str] = {}
    message: list[str] = []
    for line in contents.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith(TRAILER) and " " not in key:
            values[key.removeprefix(TRAILER)] = value.strip()
        elif not values:
            message.append(line)
    if "stage" not in values or "digest" not in values:
        return None
    try:
        counts = json.loads(values.get("counts", "{}"))
        runs = json.loads(values.get("mlflow-runs", "{}"))
    except ValueError:
        counts, runs = {}, {}
    return Version(
        name=name,
        commit=commit,
        date=date,
        message="\n".join(message).strip(),
        stage=values["stage"],
        digest=values["digest"],
        counts=counts if isinstance(counts, dict) else {},
        runs={str(k): str(v) for k, v in runs.items()} if isinstance(runs, dict) else {},
    )


def list_versions(root: Path) -> list[Version]:
    """The released versions, oldest first."""
    root = project_root(root)
    fields = ("refname:strip=2", "objecttype", "*objectname", "creatordate:iso-strict", "contents")
    fmt = "%1f".join(f"%({f})" for f in fields) + "%1e"
    text = git(root, "for-each-ref", "--sort=creatordate", f"--format={fmt}", "refs/tags")
    found = []
    for record in text.split("\x1e"):
        parts = record.lstrip("\n").split("\x1f")
        if len(parts) != 5 or parts[1] != "tag":
            continue
        version = _parse_tag(parts[0], parts[2], parts[3], parts[4])
        if version is not None:
            found.append(version)
    return found


def unknown(name: str, names: Sequence[str]) -> PixelpipeError:
    """The error for an unknown version, with a did-you-mean or the versions released."""
    hint = did_you_mean(name, names)
    if not hint:
        hint = (
            f"; released: {', '.join(names[-8:])}"
            if names
            else "; no version is released yet (`pixelpipe release VERSION`)"
        )
    return PixelpipeError(f"unknown version '{name}'{hint}")


def find_version(root: Path, name: str) -> Version:
    """The released version ``name``.

    Raises:
        PixelpipeError: With a did-you-mean when there is none.
    """
    found = list_versions(root)
    for version in found:
        if version.name == name:
            return version
    raise unknown(name, [v.name for v in found])


def find_version_by_digest(root: Path, digest: str) -> Version | None:
    """The latest released version whose dataset has ``digest``, if any."""
    try:
        found = list_versions(root)
    except PixelpipeError:
        return None
    matches = [v for v in found if v.digest == digest]
    return matches[-1] if matches else None


def check_name(root: Path, name: str) -> None:
    """Check that ``name`` can name a new version.

    Raises:
        PixelpipeError: When it is reserved, not a valid tag name, or already a version.
    """
    if name in _RESERVED or name.startswith("-") or not name.strip():
        raise PixelpipeError(f"'{name}' cannot name a version (reserved)")
    if run(["git", "check-ref-format", f"refs/tags/{name}"], root).returncode != 0:
        raise PixelpipeError(f"'{name}' is not a valid git tag name")
    existing = git_ok(root, "rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}")
    if existing:
        raise PixelpipeError(
            f"version '{name}' already exists (commit {existing[:12]}); a version never moves: "
            "release a new one"
        )
