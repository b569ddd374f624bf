"""The MLflow run of a stage: deterministic DVC state, one store made once, loud failures, no
credentials recorded. Real DVC, real MLflow on the project's SQLite store, no mocks."""

from __future__ import annotations

import difflib
import json
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from shell import env, fails, launch, sh
from tiny import write_tiny_coco

pytestmark = pytest.mark.e2e

TOKEN = "ghp_pixelpipeTestToken0123456789"
PASSWORD = "hunter2pixelpipe"
QUERY_TOKEN = "qt0kenPixelpipe"
ORIGIN = f"https://x-access-token:{TOKEN}@git.example.invalid/team/vision.git"
HOMEPAGE = f"https://bob:{PASSWORD}@docs.example.invalid/set?page=2&token={QUERY_TOKEN}"

NOTE_STAGE = '''"""Test stage: copies its input; its param is a URL, as a custom stage's may be."""

from pixelpipe import DatasetBuilder, StageParams, StageResult, stage


class Params(StageParams):
    """Params of the test ``note`` stage."""

    homepage: str = ""
    """Where the dataset is described."""


@stage("note", params=Params)
def note(inputs, params, ctx):
    """Keep every sample."""
    (dataset,) = inputs
    out = DatasetBuilder(dataset.categories)
    for sample in dataset.samples():
        out.add(sample)
    return StageResult(output=out, metrics={"kept": len(out.samples_table())})
'''


def tiny_project(
    base: Path,
    sources: tuple[str, ...],
    extra: str = "",
    params: str = "",
    files: dict[str, str] | None = None,
) -> Path:
    """A committed project whose stages ``sources`` each ingest three tiny labelled images.

    ``extra`` and ``params`` are appended to the pipeline and ``params.yaml``; ``files``
    (name: text) are written into the project.
    """
    root = base / "project"
    sh(["pixelpipe", "init", str(root)], base)
    for name, text in (files or {}).items():
        (root / name).write_text(text)
    stages = "".join(f"  {name}:\n    kind: ingest\n" for name in sources)
    (root / "pipelines" / "default.yaml").write_text(f"stages:\n{stages}{extra}")
    (root / "params.yaml").write_text("".join(f"{name}: {{}}\n" for name in sources) + params)
    write_tiny_coco(root / "data" / "raw" / "demo")
    sh(["pixelpipe", "compile"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "project"], root)
    return root


def finished_runs(root: Path) -> Counter[str]:
    """How many FINISHED runs each stage has in the project's ``mlflow.db``."""
    with sqlite3.connect(root / "mlflow.db") as db:
        rows = db.execute(
            "SELECT t.value FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'pixelpipe.stage' AND r.status = 'FINISHED'"
        ).fetchall()
    return Counter(value for (value,) in rows)


def run_link(root: Path, stage: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((root / "reports" / "runs" / f"{stage}.json").read_text())
    return value


def test_stage_runs_started_together_on_a_new_project_are_all_recorded(tmp_path: Path) -> None:
    # Three processes open the new SQLite store at once: MLflow creates its schema on first
    # use, and racing creations left the store broken for good (issue 11, item 5).
    stages = ("one", "two", "three")
    root = tiny_project(tmp_path, stages)
    assert not (root / "mlflow.db").exists()
    processes = [
        subprocess.Popen(
            ["pixelpipe", "run", stage],
            cwd=root,
            env=env(PIXELPIPE_TRACKING="on"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stage in stages
    ]
    for stage, process in zip(stages, processes, strict=True):
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{stage}:\n{stderr}"
        assert "tracking failed" not in stderr and "Traceback" not in stderr, stderr
    assert finished_runs(root) == dict.fromkeys(stages, 1)
    # The store works for every later run.
    sh(["pixelpipe", "run", "one"], root, PIXELPIPE_TRACKING="on")
    assert finished_runs(root) == {"one": 2, "two": 1, "three": 1}
    for stage in stages:
        digest = json.loads((root / "data" / stage / "dataset.json").read_text())["digest"]
        assert run_link(root, stage)["digest"] == digest


def test_a_broken_store_fails_the_stage_in_one_line(tmp_path: Path) -> None:
    root = tiny_project(tmp_path, ("one",))
    (root / "mlflow.db").write_bytes(b"this is not an SQLite database\n" * 64)
    line = fails(["pixelpipe", "run", "one"], root, PIXELPIPE_TRACKING="on")
    assert "stage 'one': MLflow tracking failed at sqlite:///" in line
    assert "mlflow.db" in line and "PIXELPIPE_TRACKING=off" in line
    assert not (root / "reports" / "one.json").exists()
    assert not (root / "reports" / "runs" / "one.json").exists()
    # Under DVC the stage fails, so DVC records nothing and reruns it next time.
    result = launch(["dvc", "repro"], root, PIXELPIPE_TRACKING="on")
    assert result.returncode != 0
    assert "MLflow tracking failed" in result.stderr + result.stdout
    assert not (root / "dvc.lock").exists()
    # Tracking off is the way to run without a store.
    sh(["dvc", "repro"], root, PIXELPIPE_TRACKING="off")
    assert "one" in (root / "dvc.lock").read_text()


def all_text(db_file: Path) -> str:
    """Every value of every table of an SQLite database, as one string."""
    parts = []
    with sqlite3.connect(db_file) as db:
        tables = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_no_credential_of_a_url_is_recorded(tmp_path: Path) -> None:
    extra = "  note:\n    kind: note_stage:note\n    inputs: one\n"
    params = f"note:\n  homepage: '{HOMEPAGE}'\n"
    root = tiny_project(
        tmp_path, ("one",), extra=extra, params=params, files={"note_stage.py": NOTE_STAGE}
    )
    sh(["git", "remote", "add", "origin", ORIGIN], root)
    sh(["dvc", "repro", "-q"], root, PIXELPIPE_TRACKING="on")
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "data"], root)
    sh(["pixelpipe", "release", "v1"], root, PIXELPIPE_TRACKING="on")

    recorded = all_text(root / "mlflow.db")
    assert finished_runs(root) == {"one": 1, "note": 1}
    for secret in (TOKEN, "x-access-token", PASSWORD, QUERY_TOKEN):
        assert secret not in recorded
    # What is left is the place, not the key: repo, experiment and the param's URL.
    assert '"repo": "https://git.example.invalid/team/vision.git"' in recorded
    with sqlite3.connect(root / "mlflow.db") as db:
        names = {name for (name,) in db.execute("SELECT name FROM experiments")}
        (homepage,) = db.execute("SELECT value FROM params WHERE key = 'homepage'").fetchone()
    assert "vision" in names
    assert homepage == "https://docs.example.invalid/set?page=2"
    tags = sh(["git", "for-each-ref", "--format=%(contents)", "refs/tags"], root).stdout
    assert TOKEN not in tags and PASSWORD not in tags


def test_dvc_lock_is_the_same_whatever_the_workers_and_the_executor(tmp_path: Path) -> None:
    # Tracking on: the MLflow run ids differ between the runs, dvc.lock must not.
    settings = {
        "1-worker": {"PIXELPIPE_WORKERS": "1"},
        "2-workers": {"PIXELPIPE_WORKERS": "2"},
        "dask": {"PIXELPIPE_WORKERS": "2", "PIXELPIPE_EXECUTOR": "dask"},
    }
    locks: dict[str, str] = {}
    run_ids: set[str] = set()
    for label, extra in settings.items():
        base = tmp_path / label
        base.mkdir()
        root = base / "demo"
        sh(["pixelpipe", "init", str(root)], base)
        sh(["git", "add", "-A"], root)
        sh(["git", "commit", "-qm", "init"], root)
        sh(["pixelpipe", "demo"], root)
        sh(["dvc", "repro", "-q"], root, PIXELPIPE_TRACKING="on", **extra)
        locks[label] = (root / "dvc.lock").read_text()
        report = json.loads((root / "reports" / "publish.json").read_text())
        assert "mlflow_run_id" not in json.dumps(report)
        link = run_link(root, "publish")
        info = json.loads((root / "data" / "publish" / "dataset.json").read_text())
        assert link["digest"] == info["digest"]
        run_ids.add(link["run_id"])
        # The run links are never part of what git or DVC track.
        status = sh(["git", "status", "--porcelain", "--untracked-files=all"], root).stdout
        assert "reports/runs" not in status
        assert finished_runs(root)["publish"] == 1
    assert len(run_ids) == 3
    first = locks["1-worker"]
    for label, text in locks.items():
        diff = "".join(
            difflib.unified_diff(first.splitlines(True), text.splitlines(True), "1-worker", label)
        )
        assert text == first, diff
