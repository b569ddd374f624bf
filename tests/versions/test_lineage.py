"""MLflow for every stage run, and the training-side link: real MLflow, no mocks.

The project's embedded SQLite store, a dead tracking server, tracking turned off, and a real
``mlflow server`` started here on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from shell import env, fails, sh
from tiny import write_tiny_coco

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _tracking_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about MLflow tracking, which the suite turns off by default."""
    monkeypatch.setenv("PIXELPIPE_TRACKING", "on")


def make_project(base: Path) -> Path:
    """``pixelpipe init`` (ingest -> publish) with three tiny labelled images, committed."""
    root = base / "project"
    sh(["pixelpipe", "init", str(root)], base)
    (root / "pipelines" / "default.yaml").write_text(
        "stages:\n  ingest:\n    kind: ingest\n  publish:\n    kind: publish\n    inputs: ingest\n"
    )
    (root / "params.yaml").write_text("ingest: {}\npublish: {}\n")
    sh(["pixelpipe", "compile"], root)
    write_tiny_coco(root / "data" / "raw" / "demo")
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "project"], root)
    return root


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-stage project reproduced with tracking on (SQLite) and released as v1."""
    root = make_project(tmp_path_factory.mktemp("lineage"))
    sh(["dvc", "repro", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "data"], root)
    sh(["pixelpipe", "release", "v1"], root)
    return root


def sqlite_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def report(root: Path, stage: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((root / "reports" / f"{stage}.json").read_text())
    return value


def run_id(root: Path, stage: str) -> str:
    """The run of ``stage``'s output, from its run link (``reports/runs/<stage>.json``)."""
    link = json.loads((root / "reports" / "runs" / f"{stage}.json").read_text())
    assert link["digest"] == info(root, stage)["digest"]
    return str(link["run_id"])


def info(root: Path, stage: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((root / "data" / stage / "dataset.json").read_text())
    return value


@contextmanager
def kept(path: Path) -> Iterator[None]:
    """Put ``path`` back as it was (a test that reruns a stage rewrites its report)."""
    before = path.read_bytes()
    try:
        yield
    finally:
        path.write_bytes(before)


def count_runs(client: Any) -> int:
    return len(client.search_runs([e.experiment_id for e in client.search_experiments()]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_stage_run_is_an_mlflow_run(tracked: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=sqlite_uri(tracked))
    ingest, publish = info(tracked, "ingest"), info(tracked, "publish")
    commit = sh(["git", "rev-parse", "v1^"], tracked).stdout.strip()

    run = client.get_run(run_id(tracked, "ingest"))
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "ingest"
    assert run.data.params["source"] == "data/raw/demo"
    assert json.loads(run.data.params["extensions"])[0] == ".jpg"
    assert run.data.metrics["samples"] == 3
    assert run.data.metrics["removed"] == 0
    tags = run.data.tags
    assert tags["pixelpipe.pipeline"] == "pipelines/default.yaml"
    assert (tags["pixelpipe.stage"], tags["pixelpipe.kind"]) == ("ingest", "ingest")
    assert tags["pixelpipe.digest"] == ingest["digest"]
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["pixelpipe.version"] == "v1"
    assert tags["pixelpipe.version.v1"] == "true"
    # The release tag names the same runs as the run links.
    listed = json.loads(sh(["pixelpipe", "versions", "--json"], tracked).stdout)
    assert listed[0]["runs"] == {"ingest": run.info.run_id, "publish": run_id(tracked, "publish")}

    run = client.get_run(run_id(tracked, "publish"))
    tags = run.data.tags
    assert tags["pixelpipe.digest"] == publish["digest"]
    assert tags["pixelpipe.input.ingest.digest"] == ingest["digest"]
    assert run.data.params["formats"] == '["coco"]'
    assert run.info.start_time <= run.info.end_time
    logged = {}
    for item in run.inputs.dataset_inputs if run.inputs else []:
        input_tags = {t.key: t.value for t in item.tags}
        logged[input_tags["mlflow.data.context"]] = (item.dataset, input_tags)
    dataset, input_tags = logged["input"]
    assert (dataset.name, dataset.digest) == ("ingest", ingest["digest"][:36])
    assert input_tags["pixelpipe.digest"] == ingest["digest"]
    dataset, input_tags = logged["output"]
    assert (dataset.name, dataset.digest) == ("publish", publish["digest"][:36])
    assert len(dataset.digest) == 36 and publish["digest"].startswith(dataset.digest)
    assert input_tags["pixelpipe.digest"] == publish["digest"]
    assert dataset.source_type == "pixelpipe"
    assert json.loads(dataset.source)["path"] == "data/publish"

    # The report is an artifact, byte for byte (numbers only, no run id); so is dataset.json.
    artifact = Path(client.download_artifacts(run.info.run_id, "reports/publish.json"))
    assert artifact.read_bytes() == (tracked / "reports" / "publish.json").read_bytes()
    assert run.info.run_id not in artifact.read_text()
    assert "mlflow_run_id" not in artifact.read_text()
    names = {f.path for f in client.list_artifacts(run.info.run_id, "data/publish")}
    assert "data/publish/dataset.json" in names
    # The store is the project's own, beside it: artifacts in mlruns/, git-ignored like the
    # store, its lock and the run links.
    assert (tracked / "mlruns").is_dir()
    for ignored in ("mlflow.db", "mlflow.db.lock", "mlruns", "reports/runs/publish.json"):
        assert sh(["git", "check-ignore", ignored], tracked).stdout.strip() == ignored


def test_log_dataset_links_a_training_run_to_the_version(
    tracked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from pixelpipe.errors import PixelpipeError
    from pixelpipe.lineage import log_dataset

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tracked))
    mlflow.set_experiment("training")
    digest = info(tracked, "publish")["digest"]
    with mlflow.start_run() as run:
        by_version = log_dataset("v1", root=tracked)
        by_path = log_dataset("data/publish", root=tracked, context="validation")
    assert by_version.version == by_path.version == "v1"
    assert by_version.digest == by_path.digest == digest
    assert by_version.mlflow_digest == digest[:36]
    assert by_version.run_id == run.info.run_id
    found = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"dataset.digest = '{digest[:36]}'",
        output_format="list",
    )
    ids = {r.info.run_id for r in found}
    assert {run.info.run_id, run_id(tracked, "publish")} <= ids
    training = mlflow.get_run(run.info.run_id)
    assert training.data.tags["pixelpipe.dataset.training.version"] == "v1"
    assert training.data.tags["pixelpipe.dataset.validation.digest"] == digest

    # A copy made with `pixelpipe get` is the same dataset; a modified one is refused.
    copy = tmp_path / "copy"
    sh(["pixelpipe", "get", "v1", "--out", str(copy)], tracked, PIXELPIPE_TRACKING="off")
    with mlflow.start_run():
        assert log_dataset(copy, root=tracked).version == "v1"
    (copy / "categories.json").write_text(
        (copy / "categories.json").read_text().replace("cat", "kitten")
    )
    with mlflow.start_run():
        with pytest.raises(PixelpipeError, match="contents do not match the digest"):
            log_dataset(copy)
        with pytest.raises(PixelpipeError, match=r"unknown version 'v2'; released: v1"):
            log_dataset("v2", root=tracked)


def test_tracking_off_logs_nothing_and_never_imports_mlflow(tracked: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=sqlite_uri(tracked))
    before = count_runs(client)
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from pixelpipe.engine.runner import run_stage\n"
        "metrics = run_stage(Path('.'), 'publish')\n"
        "print(json.dumps({'mlflow': 'mlflow' in sys.modules, 'metrics': metrics}))\n"
    )
    link = tracked / "reports" / "runs" / "publish.json"
    linked = link.read_bytes()
    with kept(tracked / "reports" / "publish.json"):
        out = sh([sys.executable, "-c", script], tracked, PIXELPIPE_TRACKING="off").stdout
        written = report(tracked, "publish")
    result = json.loads(out.splitlines()[-1])
    assert result["mlflow"] is False
    assert "mlflow_run_id" not in result["metrics"]
    assert "mlflow_run_id" not in written
    assert linked == link.read_bytes()  # the link of the last tracked run is left alone
    after = count_runs(client)
    assert after == before


def test_a_dead_tracking_server_fails_the_stage_in_one_line(tracked: Path) -> None:
    port = free_port()  # nothing listens there
    uri = f"http://bob:s3cretPassword@127.0.0.1:{port}"
    reports = tracked / "reports"
    with kept(reports / "publish.json"), kept(reports / "runs" / "publish.json"):
        before = (reports / "publish.json").read_bytes()
        began = time.monotonic()
        line = fails(["pixelpipe", "run", "publish"], tracked, MLFLOW_TRACKING_URI=uri)
        took = time.monotonic() - began
        assert (reports / "publish.json").read_bytes() == before  # no report written
    assert line.startswith(
        f"error: stage 'publish': MLflow tracking failed at http://127.0.0.1:{port} ("
    )
    assert "PIXELPIPE_TRACKING=off" in line
    assert "s3cret" not in line and "bob" not in line
    print(f"stage run with the tracking server down: {took:.1f}s")


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 and a free port; stopped on exit."""
    port = free_port()
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env(),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # bounded wait for the server to answer
            if process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("mlflow server did not answer /health")
        if process.poll() is not None:
            raise AssertionError((folder / "server.log").read_text())
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def test_runs_on_a_real_mlflow_server(
    tracked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from pixelpipe.lineage import log_dataset
    from pixelpipe.versions.runs import find_stage_runs, tag_runs

    link = tracked / "reports" / "runs" / "publish.json"
    with mlflow_server(tmp_path) as url, kept(tracked / "reports" / "publish.json"), kept(link):
        sqlite_run = run_id(tracked, "publish")
        sh(["pixelpipe", "run", "publish"], tracked, MLFLOW_TRACKING_URI=url)
        server_run = run_id(tracked, "publish")
        assert json.loads(link.read_text())["store"] == url
        client = MlflowClient(tracking_uri=url)
        run = client.get_run(server_run)
        digest = info(tracked, "publish")["digest"]
        assert run.data.tags["pixelpipe.digest"] == digest
        assert client.get_experiment(run.info.experiment_id).name == "project"
        artifact = Path(
            client.download_artifacts(server_run, "reports/publish.json", str(tmp_path))
        )
        assert artifact.read_bytes() == (tracked / "reports" / "publish.json").read_bytes()

        # A link to another store is not trusted: the run is found in the store in use by its
        # stage and digest, as it is without a link (a fresh clone).
        monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tracked))
        assert find_stage_runs(tracked, {"publish": digest}, "test") == {"publish": sqlite_run}
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        link.unlink()
        assert find_stage_runs(tracked, {"publish": digest}, "test") == {"publish": server_run}
        assert find_stage_runs(tracked, {"publish": "sha256:" + "0" * 64}, "test") == {}

        assert tag_runs(tracked, [server_run], "v1") == 1
        assert client.get_run(server_run).data.tags["pixelpipe.version.v1"] == "true"
        mlflow.set_experiment("training")
        with mlflow.start_run() as training:
            logged = log_dataset("v1", root=tracked)
        assert logged.mlflow_digest == digest[:36]
        run_inputs = client.get_run(training.info.run_id).inputs
        inputs = run_inputs.dataset_inputs if run_inputs else []
        assert [i.dataset.digest for i in inputs] == [digest[:36]]


def test_a_run_shared_by_two_versions_is_found_by_each(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    root = make_project(tmp_path)
    sh(["dvc", "repro", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "data v1"], root)
    assert "tagged 2 MLflow run(s)" in sh(["pixelpipe", "release", "v1"], root).stdout
    v1_runs = {stage: run_id(root, stage) for stage in ("ingest", "publish")}

    # Only publish reruns: the ingest run made v1 and v2.
    (root / "params.yaml").write_text("ingest: {}\npublish:\n  formats: [coco, yolo]\n")
    sh(["dvc", "repro", "-q"], root)
    assert run_id(root, "ingest") == v1_runs["ingest"]
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "data v2"], root)
    # Without run links (a fresh clone) the runs are found in MLflow by stage and digest.
    shutil.rmtree(root / "reports" / "runs")
    assert "tagged 2 MLflow run(s)" in sh(["pixelpipe", "release", "v2"], root).stdout

    listed = {
        v["name"]: v["runs"]
        for v in json.loads(sh(["pixelpipe", "versions", "--json"], root).stdout)
    }
    assert listed["v1"] == v1_runs
    assert listed["v2"]["ingest"] == v1_runs["ingest"]
    assert listed["v2"]["publish"] != v1_runs["publish"]
    client = MlflowClient(tracking_uri=sqlite_uri(root))
    experiments = [e.experiment_id for e in client.search_experiments()]
    for version, runs in listed.items():
        # The filter docs/versions.md gives finds every run the release tagged.
        found = client.search_runs(experiments, f"tags.\"pixelpipe.version.{version}\" = 'true'")
        assert {r.info.run_id for r in found} == set(runs.values()), version
    shared = client.get_run(v1_runs["ingest"]).data.tags
    assert (shared["pixelpipe.versions"], shared["pixelpipe.version"]) == ("v1,v2", "v2")
    assert client.get_run(v1_runs["publish"]).data.tags["pixelpipe.versions"] == "v1"
