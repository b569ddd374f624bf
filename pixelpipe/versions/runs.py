"""The MLflow runs that made a state, and released versions on them.

Finding the run of a stage (:func:`find_stage_runs`): the run link ``reports/runs/<stage>.json``
written by the stage run names it, when its digest is that of the output and its store the
one in use; otherwise (a fresh clone, a link from another state or store) the run is looked
up in MLflow by its tags ``pixelpipe.stage`` and ``pixelpipe.digest``: the latest finished
run that made that output.

Tagging (:func:`tag_runs`): a run that belongs to several versions (a stage that did not
rerun between two releases) is found by each. Every version a run made gets its own tag,
``pixelpipe.version.<version> = true`` (:func:`version_tag`), so the filter
``tags."pixelpipe.version.v1" = 'true'`` finds every run of v1 whatever was released after;
``pixelpipe.versions`` lists them all (comma-separated) and ``pixelpipe.version`` is the
latest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pixelpipe.engine.tracking import (
    TAG_DIGEST,
    TAG_STAGE,
    TAG_VERSION,
    TAG_VERSIONS,
    mlflow_key,
    read_run_link,
)
from pixelpipe.engine.tracking_store import (
    DB_FILE,
    public_url,
    store_exists,
    tracking_enabled,
    tracking_session,
    tracking_uri,
)
from pixelpipe.errors import PixelpipeError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger("pixelpipe.versions")


def version_tag(version: str) -> str:
    """The run tag marking a run as one that made ``version``: ``pixelpipe.version.<version>``.

    Characters MLflow refuses in a tag name become ``_``.
    """
    return mlflow_key(f"{TAG_VERSION}.{version}")


def version_filter(version: str) -> str:
    """The MLflow search filter of the runs that made ``version``."""
    return f"tags.\"{version_tag(version)}\" = 'true'"


def _experiment_ids(client: MlflowClient) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids += [str(e.experiment_id) for e in page]
        token = page.token
        if not token:
            return ids


def _search_run(
    client: MlflowClient, experiments: list[str], stage: str, digest: str
) -> str | None:
    found = client.search_runs(
        experiments,
        filter_string=(
            f"tags.\"{TAG_STAGE}\" = '{stage}' AND tags.\"{TAG_DIGEST}\" = '{digest}' "
            "AND attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return str(found[0].info.run_id) if found else None


def find_stage_runs(root: Path, outputs: Mapping[str, str], what: str) -> dict[str, str]:
    """The MLflow run that made each stage's output, for the stages a run made.

    Args:
        root: The project root.
        outputs: The digest of each stage's output (``dataset.json``), by stage.
        what: Who asks, for the error (``release v2``).

    Returns:
        The run id by stage; a stage no run made (tracking was off) is left out.

    Raises:
        PixelpipeError: When tracking is on and the store cannot be searched (one line naming
            the store and the opt-out ``PIXELPIPE_TRACKING=off``).
    """
    if not tracking_enabled() or not outputs:
        return {}
    store = public_url(tracking_uri(root))
    runs: dict[str, str] = {}
    missing: list[str] = []
    for stage, digest in outputs.items():
        link = read_run_link(root, stage)
        if link is not None and (link.digest, link.store) == (digest, store):
            runs[stage] = link.run_id
        else:
            missing.append(stage)
    if not missing:
        return runs
    if not store_exists(root):
        if runs:
            log.warning(
                "no MLflow store in the project (%s): the runs of %s are gone; set "
                "MLFLOW_TRACKING_URI as it was for `dvc repro`",
                DB_FILE,
                ", ".join(sorted(runs)),
            )
        return {}
    with tracking_session(root, what) as client:
        experiments = _experiment_ids(client)
        for stage in missing:
            found = _search_run(client, experiments, stage, outputs[stage]) if experiments else None
            if found:
                runs[stage] = found
    return {stage: runs[stage] for stage in outputs if stage in runs}


def tag_runs(root: Path, run_ids: Sequence[str], version: str) -> int:
    """Tag the runs that made a released version.

    Each run gets ``pixelpipe.version.<version> = true`` (:func:`version_tag`), the version
    added to ``pixelpipe.versions`` (comma-separated) and ``pixelpipe.version = <version>``
    (the latest). Failures are warnings: the version is released (its git tag names the runs).

    Args:
        root: The project root.
        run_ids: The runs that made the released state.
        version: The version.

    Returns:
        How many runs carry the version now: the runs a search with :func:`version_filter`
        finds.
    """
    unique = list(dict.fromkeys(run_ids))
    if not unique or not tracking_enabled():
        return 0
    if not store_exists(root):
        log.warning(
            "no MLflow store in the project (%s): the runs were not tagged with %s; "
            "set MLFLOW_TRACKING_URI as it was for `dvc repro`",
            DB_FILE,
            version,
        )
        return 0
    tagged = 0
    try:
        with tracking_session(root, f"tagging the runs of {version}") as client:
            from mlflow.entities import RunTag

            for run_id in unique:
                run = client.get_run(run_id)
                versions = [v for v in run.data.tags.get(TAG_VERSIONS, "").split(",") if v]
                if version not in versions:
                    versions.append(version)
                tags = {version_tag(version): "true", TAG_VERSIONS: ",".join(versions)}
                tags[TAG_VERSION] = version
                client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
                tagged += 1
    except PixelpipeError as exc:
        log.warning(
            "%s (%s is released; %d of its %d runs tagged)", exc, version, tagged, len(unique)
        )
    return tagged
