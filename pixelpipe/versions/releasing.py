"""Release a version (:func:`release`): check the state, push the data, tag, tag the runs.

Only a committed, up-to-date state is released; the tag's trailers record the dataset
(stage, digest, counts) and the MLflow run that made each stage's output (found by
:func:`~pixelpipe.versions.runs.find_stage_runs`: the run link, else MLflow by digest).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelpipe.dataset import Dataset
from pixelpipe.engine.compile import DATA_DIR, compile_pipeline
from pixelpipe.engine.loader import DEFAULT_PIPELINE, Pipeline, load_pipeline
from pixelpipe.errors import PixelpipeError
from pixelpipe.versions.restore import changed_outputs, some
from pixelpipe.versions.runs import find_stage_runs, tag_runs
from pixelpipe.versions.tags import TRAILER, Version, check_name, find_version
from pixelpipe.versions.vcs import (
    default_remote,
    dvc,
    git,
    head,
    marker_path,
    project_root,
    read_marker,
)


def dataset_stage(pipeline: Pipeline) -> str:
    """The stage whose output a version names.

    That is the one no other stage reads; of several, the last of kind ``publish``, else
    the last.
    """
    read = {source for planned in pipeline.stages for source in planned.spec.inputs}
    sinks = [p for p in pipeline.stages if p.name not in read]
    publishing = [p for p in sinks if p.spec.kind == "publish"]
    return (publishing or sinks)[-1].name


def _check_clean(root: Path) -> None:
    status = git(root, "status", "--porcelain", "--untracked-files=normal", ".")
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    if changed:
        raise PixelpipeError(
            f"the git tree has uncommitted changes ({some(changed)}); commit them first so "
            "the version names one exact state"
        )


def _status_reason(entry: Any) -> Iterator[str]:
    if isinstance(entry, str):
        yield entry
        return
    if not isinstance(entry, dict):
        return
    for what, changes in entry.items():
        noun = what.removeprefix("changed ")
        if not isinstance(changes, dict):
            yield f"{noun}: {changes}"
            continue
        for path, state in changes.items():
            if isinstance(state, dict):  # params: {"params.yaml": {"ingest": "modified"}}
                for key, sub in state.items():
                    yield f"params {key}: {sub}"
            else:
                yield f"{noun} {path}: {state}"


def stale_stages(root: Path) -> dict[str, list[str]]:
    """The stages ``dvc status`` reports as not up to date, with why."""
    result = dvc(root, "status", "--json")
    try:
        status = json.loads(result.stdout.strip() or "{}")
    except ValueError:
        raise PixelpipeError(f"`dvc status` printed no JSON: {result.stdout[:200]}") from None
    stale: dict[str, list[str]] = {}
    for stage, entries in status.items():
        reasons = [r for e in entries or [] for r in _status_reason(e)]
        stale[stage.rsplit(":", 1)[-1]] = reasons or ["changed"]
    return stale


def _check_up_to_date(root: Path, pipeline: Pipeline) -> None:
    stale = stale_stages(root)
    if not stale:
        return
    order = [p.name for p in pipeline.stages]
    names = sorted(stale, key=lambda s: order.index(s) if s in order else len(order))
    said = "; ".join(f"stage '{s}' ({', '.join(stale[s])})" for s in names)
    raise PixelpipeError(
        f"the pipeline is not up to date: {said}; run `dvc repro`, commit, then release"
    )


@dataclass(frozen=True)
class Release:
    """What :func:`release` did.

    Attributes:
        version: The new version.
        remote: The DVC remote the data was pushed to, if any.
        tagged_runs: How many MLflow runs got the version tag.
    """

    version: Version
    remote: str | None
    tagged_runs: int


def release(
    root: Path, name: str, message: str | None = None, pipeline_file: str = DEFAULT_PIPELINE
) -> Release:
    """Tag the committed, up-to-date state as version ``name``.

    Refuses a dirty git tree, a stale ``dvc.yaml``, a pipeline ``dvc status`` says is not
    up to date (naming the stage), and a workspace holding another version's data. Pushes
    the data to the DVC remote when one is configured (before tagging: a version never names
    data that is only local), makes the annotated tag, then tags the MLflow runs that made
    the state with the version (a warning if that fails: the version is released). The runs
    are found first: with tracking on, a tracking store that cannot be searched refuses the
    release before anything is pushed or tagged.

    Args:
        root: The project (or a folder in it).
        name: The version: a git tag name such as ``v1.2``.
        message: The release message (the tag's first lines).
        pipeline_file: The pipeline file, relative to the project.

    Raises:
        PixelpipeError: For each refusal above, when pushing fails, and when tracking is on
            and its store cannot be searched for the runs.
    """
    root = project_root(root)
    check_name(root, name)
    marker = read_marker(root)
    if marker:
        if changed_outputs(root):
            raise PixelpipeError(
                f"the workspace holds the data of {marker['version']} (`pixelpipe checkout`);"
                " run `pixelpipe checkout HEAD` before releasing"
            )
        marker_path(root).unlink(missing_ok=True)  # rebuilt since (`dvc repro`): stale
    commit = head(root)
    _check_clean(root)
    pipeline = load_pipeline(root, pipeline_file)
    compile_pipeline(pipeline, check=True)
    _check_up_to_date(root, pipeline)
    stage = dataset_stage(pipeline)
    info = Dataset(root / DATA_DIR / stage).info
    outputs = {
        p.name: str(Dataset(root / DATA_DIR / p.name).info["digest"]) for p in pipeline.stages
    }
    runs = find_stage_runs(root, outputs, f"release {name}")
    remote = default_remote(root)
    if remote:
        dvc(root, "push", "-r", remote)
    trailers = {
        "stage": stage,
        "digest": str(info["digest"]),
        "counts": json.dumps(info.get("counts", {}), sort_keys=True),
        "mlflow-runs": json.dumps(runs, sort_keys=True),
    }
    text = (message or f"dataset version {name}").strip() + "\n\n"
    text += "".join(f"{TRAILER}{k}: {v}\n" for k, v in trailers.items())
    git(root, "tag", "-a", name, commit, "-F", "-", stdin=text)
    tagged = tag_runs(root, list(runs.values()), name)
    return Release(version=find_version(root, name), remote=remote, tagged_runs=tagged)
