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

The run id is not in ``reports/<stage>.json``: that file is a DVC metric recorded in
``dvc.lock``, so it holds only numbers that describe the data, and two clean runs give the
same ``dvc.lock``. The run id goes into the *run link* ``reports/runs/<stage>.json``
(git-ignored, never tracked by DVC) with the output digest it logged and the store
(:func:`write_run_link`). A reader trusts a link only when its digest and store are those it
looks at; otherwise it finds the run in MLflow by the tags ``pixelpipe.stage`` and
``pixelpipe.digest`` (:func:`pixelpipe.versions.runs.find_stage_runs`), as in a fresh clone.

Where runs go, the store's lock, failures and credentials are :mod:`.tracking_store`'s:
tracking that is on and fails fails the stage with one line (``PIXELPIPE_TRACKING=off`` is
the opt-out), and no URL is recorded with its credentials.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelpipe.dataset import INFO_FILE, Dataset
from pixelpipe.engine.compile import DATA_DIR, REPORTS_DIR
from pixelpipe.engine.tracking_store import (
    ARTIFACTS_DIR,
    public_text,
    public_url,
    tracking_enabled,
    tracking_session,
    tracking_uri,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from pixelpipe.engine.loader import Pipeline, PlannedStage

log = logging.getLogger("pixelpipe.lineage")

RUNS_DIR = f"{REPORTS_DIR}/runs"
"""The run links: ``reports/runs/<stage>.json``, git-ignored (:func:`write_run_link`)."""
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

_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
_MAX_PARAM_VALUE = 6000


def input_tag(stage: str) -> str:
    """The run tag holding the full digest of the input read from ``stage``."""
    return f"pixelpipe.input.{stage}.digest"


def short_digest(digest: str) -> str:
    """The digest as MLflow stores it: the first 36 characters (a prefix of the full one)."""
    return digest[:MAX_DIGEST]


def project_name(root: Path) -> str:
    """The project's name: its git remote ``origin`` without ``.git``, else its folder name."""
    url = _git(root, "config", "--get", "remote.origin.url")
    if url:
        path = public_url(url).rstrip("/")
        name = path.rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
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
    text = public_text(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
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
    """The project as MLflow names it: its git remote ``origin``, else its folder.

    The remote's URL is recorded without credentials (:func:`~.tracking_store.public_url`).
    """
    url = _git(root, "config", "--get", "remote.origin.url")
    return public_url(url) if url else root.resolve().as_posix()


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

    source = _source_class()(
        path=public_text(path), repo=public_text(repo), commit=commit, version=version
    )
    return MetaDataset(source=source, name=name, digest=short_digest(digest))  # type: ignore[abstract]


def _dataset_input(dataset: Any, context: str, tags: Mapping[str, str]) -> Any:
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    entity = DatasetEntity(**dataset.to_dict())
    input_tags = [InputTag(key=k, value=v) for k, v in tags.items()]
    input_tags.append(InputTag(key=MLFLOW_DATASET_CONTEXT, value=context))
    return DatasetInput(dataset=entity, tags=input_tags)


@dataclass(frozen=True)
class RunLink:
    """The run link of a stage: which MLflow run made its output (``reports/runs/<stage>.json``).

    Attributes:
        run_id: The MLflow run.
        digest: The output digest that run logged.
        store: The tracking store it is in (:func:`~.tracking_store.public_url` of the URI).
    """

    run_id: str
    digest: str
    store: str


def run_link_path(root: Path, stage: str) -> Path:
    """Where the run link of ``stage`` is: ``reports/runs/<stage>.json``."""
    return root / RUNS_DIR / f"{stage}.json"


def write_run_link(root: Path, stage: str, link: RunLink) -> None:
    """Write the run link of ``stage`` (atomically, by rename)."""
    path = run_link_path(root, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps(asdict(link), indent=2, sort_keys=True) + "\n"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_run_link(root: Path, stage: str) -> RunLink | None:
    """The run link of ``stage``, or ``None`` when there is none or it is unreadable."""
    try:
        value = json.loads(run_link_path(root, stage).read_text(encoding="utf-8"))
        return RunLink(str(value["run_id"]), str(value["digest"]), str(value["store"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class StageRun:
    """The MLflow run of one stage run; made by the runner around the stage.

    Create it when the stage starts (it only notes the time), and call :meth:`log` once the
    output is in place.

    Args:
        pipeline: The loaded pipeline.
        planned: The stage being run.
    """

    pipeline: Pipeline
    planned: PlannedStage
    started: float = field(default_factory=time.time)

    def log(
        self, inputs: Sequence[Dataset], info: Mapping[str, Any], metrics: Mapping[str, Any]
    ) -> str | None:
        """Log the run and write its run link; returns the run id (``None`` when off).

        Args:
            inputs: The input datasets, in the order of the stage's ``inputs``.
            info: The output's ``dataset.json`` content.
            metrics: The report the runner is about to write (logged as it is: no run id).

        Raises:
            PixelpipeError: When tracking is on and fails: one line naming the store and the
                opt-out. The runner then writes no report and exits non-zero, so DVC records
                nothing and reruns the stage.
        """
        if not tracking_enabled():
            return None
        root, name = self.pipeline.root, self.planned.name
        run_link_path(root, name).unlink(missing_ok=True)
        began = time.perf_counter()
        with tracking_session(root, f"stage '{name}'") as client:
            run_id = self._log(client, inputs, info, dict(metrics))
        store = public_url(tracking_uri(root))
        write_run_link(root, name, RunLink(run_id, str(info["digest"]), store))
        log.debug("MLflow run %s logged in %.2fs", run_id, time.perf_counter() - began)
        return run_id

    def _log(
        self,
        client: MlflowClient,
        inputs: Sequence[Dataset],
        info: Mapping[str, Any],
        report: dict[str, Any],
    ) -> str:
        from mlflow.entities import Metric, Param

        root = self.pipeline.root
        name = self.planned.name
        sources = self.planned.spec.inputs
        experiment = _experiment_id(client, root)
        commit, dirty = git_state(root)
        digest = str(info["digest"])
        tags = {
            "mlflow.runName": name,
            "mlflow.source.name": f"pixelpipe run {name}",
            "mlflow.source.type": "LOCAL",
            TAG_PIPELINE: public_text(self.pipeline.file),
            TAG_STAGE: name,
            TAG_KIND: public_text(self.planned.spec.kind),
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
            client.log_text(
                run_id,
                json.dumps(report, indent=2, sort_keys=True) + "\n",
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
