"""Released dataset versions: release, list, checkout, get and diff (git tags + DVC).

This package owns git tags as dataset versions (:func:`release`, :func:`list_versions`,
:func:`checkout`, :func:`get`, :func:`diff`), the release tags on the MLflow runs that made
a version (:mod:`pixelpipe.versions.runs`) and the dataset card
(:mod:`pixelpipe.versions.card`). It may import the engine (:mod:`pixelpipe.engine.compile`,
:mod:`pixelpipe.engine.loader`, :mod:`pixelpipe.engine.tracking`, ...),
:mod:`pixelpipe.dataset` and :mod:`pixelpipe.errors`; never ``stages``,
:mod:`pixelpipe.formats`, :mod:`pixelpipe.cli` or :mod:`pixelpipe.project`. Its modules,
each importing only those before it (and none the package itself):
:mod:`~pixelpipe.versions.runs` and :mod:`~pixelpipe.versions.card` (which import no
sibling), :mod:`~pixelpipe.versions.vcs` (git and DVC subprocesses),
:mod:`~pixelpipe.versions.tags` (versions as tags), :mod:`~pixelpipe.versions.target` (a
state to read data from), :mod:`~pixelpipe.versions.restore`,
:mod:`~pixelpipe.versions.releasing`, :mod:`~pixelpipe.versions.export`,
:mod:`~pixelpipe.versions.compare` and :mod:`~pixelpipe.versions.drift` (``pixelpipe diff
--stats``: it runs the ``drift`` kind's step, resolved by name through the registry).

A *version* is an annotated git tag made by :func:`release`. Its message carries, after the
user's message, trailer lines that describe the dataset it names::

    pixelpipe-stage: publish
    pixelpipe-digest: sha256:3f5a...
    pixelpipe-counts: {"annotations": 39, "removed": 0, "samples": 38, ...}
    pixelpipe-mlflow-runs: {"ingest": "9c1e...", "publish": "4d7b..."}

so listing versions needs git only. The bytes are DVC's: the tagged commit's ``dvc.lock``
names every output, and the DVC cache (or the DVC remote, which :func:`release` pushes to)
holds them.

:func:`checkout` restores the data outputs of a version into the workspace without moving
the code (git ``HEAD`` and the working tree stay as they are); a note in the git folder
(``.git/pixelpipe-checkout.json``) remembers which version is out and the files it wrote,
and :func:`checkout_head` returns to the data ``dvc.lock`` names. Neither overwrites a file
whose content is not in the DVC cache unless forced.
"""

from pixelpipe.versions.compare import Snapshot, compare, diff, snapshot
from pixelpipe.versions.export import Export, get
from pixelpipe.versions.releasing import Release, dataset_stage, release, stale_stages
from pixelpipe.versions.restore import (
    LOCK_FILE,
    Checkout,
    cached_outputs,
    checked_out,
    checkout,
    checkout_head,
    unsaved_files,
)
from pixelpipe.versions.tags import (
    TRAILER,
    WORKSPACE,
    Version,
    find_version,
    find_version_by_digest,
    list_versions,
)
from pixelpipe.versions.target import Target, resolve
from pixelpipe.versions.vcs import HEAD, MARKER_FILE, dvc, git, project_root

__all__ = [
    "HEAD",
    "LOCK_FILE",
    "MARKER_FILE",
    "TRAILER",
    "WORKSPACE",
    "Checkout",
    "Export",
    "Release",
    "Snapshot",
    "Target",
    "Version",
    "cached_outputs",
    "checked_out",
    "checkout",
    "checkout_head",
    "compare",
    "dataset_stage",
    "diff",
    "dvc",
    "find_version",
    "find_version_by_digest",
    "get",
    "git",
    "list_versions",
    "project_root",
    "release",
    "resolve",
    "snapshot",
    "stale_stages",
    "unsaved_files",
]
