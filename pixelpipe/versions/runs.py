"""Released versions on the MLflow runs that made them.

A run that belongs to several versions (a stage that did not rerun between two releases)
is found by each: ``pixelpipe.versions`` lists them all, ``pixelpipe.version`` is the latest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from pixelpipe.engine.tracking import (
    DB_FILE,
    TAG_VERSION,
    TAG_VERSIONS,
    first_line,
    open_client,
    prepare_mlflow,
    tracking_enabled,
)

log = logging.getLogger("pixelpipe.versions")


def tag_runs(root: Path, run_ids: Sequence[str], version: str) -> int:
    """Tag runs with a released version (``pixelpipe.version`` and ``pixelpipe.versions``).

    A run that belongs to several versions (a stage that did not rerun between them) lists
    them all in ``pixelpipe.versions``, comma-separated; ``pixelpipe.version`` is the latest.
    Failures are warnings.

    Args:
        root: The project root.
        run_ids: The runs that made the released state.
        version: The version.

    Returns:
        How many runs were tagged.
    """
    if not run_ids or not tracking_enabled():
        return 0
    if not os.environ.get("MLFLOW_TRACKING_URI") and not (root / DB_FILE).is_file():
        log.warning(
            "no MLflow store in the project (%s): the runs were not tagged with %s; "
            "set MLFLOW_TRACKING_URI as it was for `dvc repro`",
            DB_FILE,
            version,
        )
        return 0
    prepare_mlflow()
    tagged = 0
    try:
        client = open_client(root)
        for run_id in dict.fromkeys(run_ids):
            run = client.get_run(run_id)
            versions = [v for v in run.data.tags.get(TAG_VERSIONS, "").split(",") if v]
            if version not in versions:
                versions.append(version)
            client.set_tag(run_id, TAG_VERSION, version)
            client.set_tag(run_id, TAG_VERSIONS, ",".join(versions))
            tagged += 1
    except Exception as exc:
        log.warning(
            "tagging the MLflow runs with %s failed after %d of %d (%s)",
            version,
            tagged,
            len(set(run_ids)),
            first_line(exc),
        )
    return tagged
