"""The training side of lineage: link an MLflow training run to a dataset version.

A training script calls :func:`log_dataset` with a released version or a dataset folder; the
dataset is logged to the active MLflow run with the digest the stage runs logged, so the run
links to the exact data. This module is public API for training scripts (it is named in the
README and in every published dataset card); the stage runs themselves are logged by the
engine (:mod:`pixelpipe.engine.tracking`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pixelpipe.dataset import Dataset
from pixelpipe.engine.compile import DATA_DIR
from pixelpipe.engine.tracking import (
    TAG_DIGEST,
    TAG_VERSION,
    meta_dataset,
    mlflow_key,
    repo_label,
)
from pixelpipe.versions import find_version, find_version_by_digest


@dataclass(frozen=True)
class LoggedDataset:
    """What :func:`log_dataset` logged.

    Attributes:
        name: The dataset's name in MLflow.
        digest: The full content digest (``sha256:<hex>``).
        mlflow_digest: The digest as MLflow holds it (:func:`short_digest`).
        version: The released version, when known.
        run_id: The MLflow run it was logged to.
    """

    name: str
    digest: str
    mlflow_digest: str
    version: str | None
    run_id: str


def log_dataset(
    dataset: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] = ".",
    context: str = "training",
    name: str | None = None,
) -> LoggedDataset:
    """Log a pixelpipe dataset to the active MLflow run (started if there is none).

    Call it from a training script with a released version or a dataset folder; the run
    gets the dataset as an input with the same digest the stage runs logged, input tags
    with the full digest and version, and run tags ``pixelpipe.dataset.<context>.digest``
    and ``pixelpipe.dataset.<context>.version``, so the MLflow UI links the training run
    to the dataset version and ``dataset.digest`` searches find both::

        import mlflow
        from pixelpipe.engine.tracking import log_dataset

        with mlflow.start_run():
            log_dataset("v1.2", root="path/to/project")   # or log_dataset("data/publish")
            ...

    A folder's digest is checked against its contents, so a modified copy is refused.
    Uses MLflow's own configuration (``MLFLOW_TRACKING_URI``, the active run); errors
    talking to MLflow are raised, as for any other MLflow call in the script.

    Args:
        dataset: A version (a ``pixelpipe release`` tag) of the project at ``root``, or a
            dataset folder (``data/publish``, or the output of ``pixelpipe get``).
        root: The project, for versions and for relative folders.
        context: MLflow's dataset context (``training``, ``validation``, ``testing``...).
        name: The dataset's name in MLflow; defaults to the stage that wrote it.

    Returns:
        What was logged.

    Raises:
        PixelpipeError: When the version is unknown or the folder is not a dataset or was
            modified.
    """
    import mlflow

    project = Path(root)
    text = os.fspath(dataset)
    folder = Path(text) if Path(text).is_absolute() else project / text
    version: str | None = None
    commit = ""
    if folder.is_dir():
        data = Dataset(folder)
        data.verify(text)
        digest = data.digest
        stage = str(data.info.get("stage", "dataset"))
        try:
            path = folder.resolve().relative_to(project.resolve()).as_posix()
            repo = repo_label(project)
        except ValueError:  # a copy elsewhere (`pixelpipe get`)
            path, repo = folder.resolve().as_posix(), ""
        match = find_version_by_digest(project, digest)
        if match is not None:  # the same content as a release of the project at root
            version, commit, repo = match.name, match.commit, repo_label(project)
    else:
        found = find_version(project, text)
        digest, stage, version, commit = found.digest, found.stage, found.name, found.commit
        path, repo = f"{DATA_DIR}/{stage}", repo_label(project)
    meta = meta_dataset(
        digest, name=name or stage, path=path, repo=repo, commit=commit, version=version or ""
    )
    tags = {TAG_DIGEST: digest}
    if version:
        tags[TAG_VERSION] = version
    mlflow.log_input(meta, context=context, tags=tags)
    run = mlflow.active_run()
    assert run is not None  # log_input starts one when there is none
    run_tags = {f"pixelpipe.dataset.{mlflow_key(context)}.digest": digest}
    if version:
        run_tags[f"pixelpipe.dataset.{mlflow_key(context)}.version"] = version
    mlflow.set_tags(run_tags)
    return LoggedDataset(
        name=meta.name,
        digest=digest,
        mlflow_digest=meta.digest,
        version=version,
        run_id=str(run.info.run_id),
    )
