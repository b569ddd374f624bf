"""MLflow runs, dataset digests, and the links between them, both ways.

Every stage run is logged by the runner (never by the stage) as one MLflow run:

- params: the stage's validated params, flattened (``a.b.c``);
- metrics: the numbers of ``reports/<stage>.json``, flattened;
- tags: ``pixelpipe.pipeline``, ``pixelpipe.stage``, ``pixelpipe.kind``, the git commit
  (``mlflow.source.git.commit`` and ``pixelpipe.git.dirty``), the full output digest
  (``pixelpipe.digest``) and each input's (``pixelpipe.input.<stage>.digest``);
- datasets: the inputs (context ``input``) and the output (context ``output``), logged as
  inputs of the run with a :class:`~mlflow.data.meta_dataset.MetaDataset` whose digest is
  :func:`short_digest` (MLflow caps digests at 36 characters) and whose input tags carry
  the full digest;
- artifacts: the stage report (``reports/<stage>.json``, byte for byte as written) and the
  output's ``dataset.json`` (and ``README.md``, the dataset card, when there is one).

Where: ``MLFLOW_TRACKING_URI`` when set, else an SQLite store ``mlflow.db`` in the project
with artifacts under ``mlruns/`` (both git-ignored). The experiment is
``MLFLOW_EXPERIMENT_NAME`` when set, else the project's name. ``PIXELPIPE_TRACKING=off``
turns tracking off. A tracking failure (server down, store locked) is a warning: the stage's
output is written all the same, and its report has no run id. Retries and timeouts of HTTP
calls are bounded (see :data:`ENV_DEFAULTS`) so a dead server costs seconds, not minutes.

Importing MLflow takes seconds, so it is imported only when tracking is on.

The training side calls :func:`log_dataset` with a version or a dataset folder: it logs the
dataset to the active MLflow run with the same digest, so the run links to the version.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelpipe.dataset import INFO_FILE, Dataset
from pixelpipe.engine.compile import DATA_DIR, REPORTS_DIR

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from pixelpipe.engine.loader import Pipeline, PlannedStage

log = logging.getLogger("pixelpipe.lineage")

TRACKING_ENV = "PIXELPIPE_TRACKING"
"""Set to ``off`` (or ``0``, ``false``, ``no``) to log no MLflow runs."""
_OFF = frozenset({"0", "off", "false", "no", "disable", "disabled"})
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
RUN_ID_KEY = "mlflow_run_id"
"""The key of the run id in ``reports/<stage>.json``."""
MAX_DIGEST = 36
"""MLflow's limit on a dataset digest."""
CARD_FILE = "README.md"

TAG_PIPELINE = "pixelpipe.pipeline"
TAG_STAGE = "pixelpipe.stage"
TAG_KIND = "pixelpipe.kind"
TAG_DIGEST = "pixelpipe.digest"
TAG_DIRTY = "pixelpipe.git.dirty"
TAG_VERSION = "pixelpipe.version"
TAG_VERSIONS = "pixelpipe.versions"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
SOURCE_TYPE = "pixelpipe"

ENV_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
"""MLflow settings of pixelpipe's own processes (stage runs, release): no usage telemetry
sent to MLflow's servers from a pipeline run, and bounds on HTTP retries and timeouts
(MLflow's own defaults retry for minutes). A variable already set in the environment wins."""

_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
_MAX_PARAM_VALUE = 6000


def input_tag(stage: str) -> str:
    """The run tag holding the full digest of the input read from ``stage``."""
    return f"pixelpipe.input.{stage}.digest"


def tracking_enabled() -> bool:
    """False when ``PIXELPIPE_TRACKING`` turns tracking off."""
    return os.environ.get(TRACKING_ENV, "on").strip().lower() not in _OFF


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI``, else the project's SQLite store ``mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(root / DB_FILE).resolve().as_posix()}"


def short_digest(digest: str) -> str:
    """The digest as MLflow stores it: the first 36 characters (a prefix of the full one)."""
    return digest[:MAX_DIGEST]


def project_name(root: Path) -> str:
    """The project's name: its git remote ``origin`` without ``.git``, else its folder name."""
    url = _git(root, "config", "--get", "remote.origin.url")
    if url:
        name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
        if name:
            return name
    return root.resolve().name


def experiment_name(root: Path) -> str:
    """``MLFLOW_EXPERIMENT_NAME``, else :func:`project_name`."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or project_name(root)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings to one level with dotted keys; other values are kept as they are."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def mlflow_key(text: str) -> str:
    """A name MLflow accepts for a param, metric or tag."""
    return _KEY_CHARS.sub("_", text)[:250]


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= _MAX_PARAM_VALUE else text[: _MAX_PARAM_VALUE - 3] + "..."


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_state(root: Path) -> tuple[str | None, bool]:
    """The commit checked out and whether tracked files differ from it.

    The commit is ``None`` outside git or before the first commit.
    """
    commit = _git(root, "rev-parse", "--verify", "--quiet", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return commit, bool(status)


def first_line(exc: BaseException) -> str:
    """The first line of an error, for a one-line warning."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    line = line if len(line) <= 300 else line[:297] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def prepare_mlflow() -> None:
    """Apply :data:`ENV_DEFAULTS`; keep MLflow's and Alembic's info chatter off the log."""
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def open_client(root: Path) -> MlflowClient:
    """An MLflow client on the project's tracking store (:func:`tracking_uri`)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(root))


def _experiment_id(client: MlflowClient, root: Path) -> str:
    """The id of the project's experiment, created on first use."""
    from mlflow.exceptions import MlflowException

    name = experiment_name(root)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    location = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        location = (root / ARTIFACTS_DIR).resolve().as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:  # created meanwhile by a concurrent stage
        again = client.get_experiment_by_name(name)
        if again is None:
            raise
        return str(again.experiment_id)


def _source_class() -> type[Any]:
    """The MLflow dataset source of pixelpipe datasets (defined once MLflow is imported)."""
    global _SOURCE_CLASS
    if _SOURCE_CLASS is not None:
        return _SOURCE_CLASS
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.data.dataset_source_registry import register_dataset_source

    class PixelpipeDatasetSource(DatasetSource):
        """Where a pixelpipe dataset lives: a folder of a git + DVC project at a commit.

        Args:
            path: The dataset folder, relative to the project (``data/publish``), or a
                folder outside any project.
            repo: The project: its git remote URL, else its folder.
            commit: The git commit whose ``dvc.lock`` names the data, when known.
            version: The released version, when known.
        """

        def __init__(self, path: str, repo: str = "", commit: str = "", version: str = "") -> None:
            self.path = path
            self.repo = repo
            self.commit = commit
            self.version = version

        @staticmethod
        def _get_source_type() -> str:
            return SOURCE_TYPE

        def load(self) -> str:
            """The dataset folder (pixelpipe data is fetched with ``pixelpipe get``)."""
            return self.path

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> PixelpipeDatasetSource:
            raise NotImplementedError("pixelpipe sources are made by pixelpipe")

        def to_dict(self) -> dict[str, Any]:
            return {
                k: v
                for k, v in {
                    "repo": self.repo,
                    "path": self.path,
                    "commit": self.commit,
                    "version": self.version,
                }.items()
                if v
            }

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> PixelpipeDatasetSource:
            return cls(
                path=str(source_dict.get("path", "")),
                repo=str(source_dict.get("repo", "")),
                commit=str(source_dict.get("commit", "")),
                version=str(source_dict.get("version", "")),
            )

    register_dataset_source(PixelpipeDatasetSource)  # type: ignore[arg-type]
    _SOURCE_CLASS = PixelpipeDatasetSource
    return _SOURCE_CLASS


_SOURCE_CLASS: type[Any] | None = None


def repo_label(root: Path) -> str:
    """The project as MLflow names it: its git remote ``origin``, else its folder."""
    return _git(root, "config", "--get", "remote.origin.url") or root.resolve().as_posix()


def meta_dataset(
    digest: str,
    *,
    name: str,
    path: str,
    repo: str = "",
    commit: str = "",
    version: str = "",
) -> Any:
    """An MLflow ``MetaDataset`` for a pixelpipe dataset, with the short digest.

    Args:
        digest: The full ``sha256:<hex>`` content digest.
        name: The dataset's name in MLflow (the stage that wrote it, by default).
        path: The dataset folder, relative to the project when inside one.
        repo: The project (git remote URL or folder).
        commit: The git commit that names the data.
        version: The released version, if any.

    Returns:
        A ``mlflow.data.meta_dataset.MetaDataset``.
    """
    from mlflow.data.meta_dataset import MetaDataset

    source = _source_class()(path=path, repo=repo, commit=commit, version=version)
    return MetaDataset(source=source, name=name, digest=short_digest(digest))  # type: ignore[abstract]


def _dataset_input(dataset: Any, context: str, tags: Mapping[str, str]) -> Any:
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    entity = DatasetEntity(**dataset.to_dict())
    input_tags = [InputTag(key=k, value=v) for k, v in tags.items()]
    input_tags.append(InputTag(key=MLFLOW_DATASET_CONTEXT, value=context))
    return DatasetInput(dataset=entity, tags=input_tags)


@dataclass
class StageRun:
    """The MLflow run of one stage run; made by the runner around the stage.

    Create it when the stage starts (it only notes the time), and call :meth:`log` once the
    output is in place. Nothing here ever fails the stage.

    Args:
        pipeline: The loaded pipeline.
        planned: The stage being run.
    """

    pipeline: Pipeline
    planned: PlannedStage
    started: float = field(default_factory=time.time)

    def log(
        self, inputs: Sequence[Dataset], info: Mapping[str, Any], metrics: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Log the run; returns ``metrics`` with the run id added.

        When tracking is off or fails, ``metrics`` come back unchanged (a warning tells
        about the failure).

        Args:
            inputs: The input datasets, in the order of the stage's ``inputs``.
            info: The output's ``dataset.json`` content.
            metrics: The report the runner is about to write.
        """
        report = dict(metrics)
        if not tracking_enabled():
            return report
        began = time.perf_counter()
        try:
            run_id = self._log(inputs, info, report)
        except Exception as exc:
            log.warning(
                "MLflow tracking failed, the stage's output is kept without a run "
                "(%s); set %s=off to skip tracking",
                first_line(exc),
                TRACKING_ENV,
            )
            return report
        log.debug("MLflow run %s logged in %.2fs", run_id, time.perf_counter() - began)
        return {**report, RUN_ID_KEY: run_id}

    def _log(
        self, inputs: Sequence[Dataset], info: Mapping[str, Any], report: dict[str, Any]
    ) -> str:
        prepare_mlflow()
        from mlflow.entities import Metric, Param

        root = self.pipeline.root
        name = self.planned.name
        sources = self.planned.spec.inputs
        client = open_client(root)
        experiment = _experiment_id(client, root)
        commit, dirty = git_state(root)
        digest = str(info["digest"])
        tags = {
            "mlflow.runName": name,
            "mlflow.source.name": f"pixelpipe run {name}",
            "mlflow.source.type": "LOCAL",
            TAG_PIPELINE: self.pipeline.file,
            TAG_STAGE: name,
            TAG_KIND: self.planned.spec.kind,
            TAG_DIGEST: digest,
            TAG_DIRTY: str(dirty).lower(),
        }
        if commit:
            tags[TAG_GIT_COMMIT] = commit
        for source, dataset in zip(sources, inputs, strict=True):
            tags[input_tag(source)] = dataset.digest
        run = client.create_run(
            experiment, start_time=int(self.started * 1000), tags=tags, run_name=name
        )
        run_id = str(run.info.run_id)
        try:
            now = int(time.time() * 1000)
            params = flatten(self.planned.params.model_dump(mode="json"))
            numbers = {
                k: float(v)
                for k, v in flatten(report).items()
                if isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v))
            }
            client.log_batch(
                run_id,
                metrics=[Metric(mlflow_key(k), v, now, 0) for k, v in sorted(numbers.items())],
                params=[Param(mlflow_key(k), _param_value(v)) for k, v in sorted(params.items())],
            )
            repo = repo_label(root)
            datasets = [
                _dataset_input(
                    meta_dataset(
                        ds.digest,
                        name=source,
                        path=f"{DATA_DIR}/{source}",
                        repo=repo,
                        commit=commit or "",
                    ),
                    "input",
                    {TAG_DIGEST: ds.digest, TAG_STAGE: source},
                )
                for source, ds in zip(sources, inputs, strict=True)
            ]
            datasets.append(
                _dataset_input(
                    meta_dataset(
                        digest, name=name, path=f"{DATA_DIR}/{name}", repo=repo, commit=commit or ""
                    ),
                    "output",
                    {TAG_DIGEST: digest, TAG_STAGE: name},
                )
            )
            client.log_inputs(run_id, datasets=datasets)
            final = {**report, RUN_ID_KEY: run_id}
            client.log_text(
                run_id,
                json.dumps(final, indent=2, sort_keys=True) + "\n",
                f"{REPORTS_DIR}/{name}.json",
            )
            output = root / DATA_DIR / name
            for file in (INFO_FILE, CARD_FILE):
                if (output / file).is_file():
                    client.log_artifact(run_id, str(output / file), f"{DATA_DIR}/{name}")
            client.set_terminated(run_id, "FINISHED", end_time=int(time.time() * 1000))
        except Exception:
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception as exc:  # the store is gone: the first error is the one to tell
                log.debug("could not mark run %s failed: %s", run_id, exc)
            raise
        return run_id
