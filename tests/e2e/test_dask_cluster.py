"""A real Dask cluster: a scheduler and two workers in their own processes, without the disk.

The workers refuse any access to the project's folder (an audit hook, see
``tests/support/no_project_disk.py``): they read the source bucket through fsspec and get
the bytes of images stored in the project from the runner. The outputs are byte-identical
to a run on the local process pool.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from dask_cluster import dask_cluster
from s3 import moto_server, upload
from shell import env

pytestmark = pytest.mark.e2e
SECRET = "cluster-s3cr3t"
STAGES = ("ingest", "dedupe", "validate", "augment", "split", "publish")


def _sh(cwd: Path, *args: str, **extra: str) -> str:
    result = subprocess.run(
        list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env(PIXELPIPE_TRACKING="off", **extra),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _project(root: Path, endpoint: str) -> Path:
    _sh(root.parent, "pixelpipe", "init", str(root))
    _sh(root, "dvc", "remote", "add", "sets", "s3://remote-sets")
    _sh(root, "dvc", "remote", "modify", "sets", "endpointurl", endpoint)
    _sh(root, "dvc", "remote", "modify", "--local", "sets", "access_key_id", "testing")
    _sh(root, "dvc", "remote", "modify", "--local", "sets", "secret_access_key", SECRET)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["source"] = "remote://sets/demo"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    _sh(root, "pixelpipe", "compile")
    return root


def test_a_cluster_without_the_project_disk_gives_the_local_bytes(
    demo_raw: Path, tmp_path: Path
) -> None:
    with moto_server() as endpoint:
        upload(endpoint, demo_raw, "remote-sets", "demo", SECRET)
        local = _project(tmp_path / "local", endpoint)
        _sh(local, "dvc", "repro", PIXELPIPE_WORKERS="2")
        remote = _project(tmp_path / "remote", endpoint)
        worker_env = {k: v for k, v in env().items() if not k.startswith("AWS_")}
        with dask_cluster(tmp_path / "cluster", worker_env, forbidden=remote) as (address, logs):
            output = _sh(
                remote, "dvc", "repro", PIXELPIPE_EXECUTOR=f"dask://{address.split('://')[1]}"
            )
            worker_logs = {p.name: p.read_text() for p in sorted(logs.glob("worker-*.log"))}
    assert "with 2 worker(s)" in output
    for name, text in worker_logs.items():
        assert "FORBIDDEN ACCESS" not in text, f"{name}:\n{text}"
        assert text.count("TASK DONE") >= 3, f"{name} did no work:\n{text}"
    for stage in STAGES:
        for name in ("samples.parquet", "removed.parquet", "dataset.json", "categories.json"):
            mine = (remote / "data" / stage / name).read_bytes()
            assert mine == (local / "data" / stage / name).read_bytes(), f"{stage}/{name}"
    published = sorted(
        p.relative_to(remote).as_posix()
        for p in (remote / "data/publish").rglob("*")
        if p.is_file()
    )
    for rel in published:
        assert (remote / rel).read_bytes() == (local / rel).read_bytes(), rel
