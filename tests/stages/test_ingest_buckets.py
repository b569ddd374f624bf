"""Ingest from buckets: S3 through a moto server and a DVC remote, and a bucket that dies."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from s3 import moto_server, upload
from steps import ingest, removed_reasons

from pixelpipe.dataset import Dataset

SECRET = "s3cr3t-never-shown"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server) on 127.0.0.1."""
    with moto_server() as endpoint:
        yield endpoint


def _upload(endpoint: str, folder: Path, bucket: str, prefix: str) -> Any:
    return upload(endpoint, folder, bucket, prefix, SECRET)


def test_s3_and_disk_ingests_have_the_same_digest(
    s3_endpoint: str, demo_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload(s3_endpoint, demo_raw, "sets", "demo")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    from_s3, _ = ingest(tmp_path / "s3", source="s3://sets/demo")
    from_disk, _ = ingest(tmp_path / "disk", source=str(demo_raw))
    assert from_s3.digest == from_disk.digest
    assert len(from_s3) == 38 and removed_reasons(from_s3) == {"notes.jpg": "unreadable"}
    sources = from_s3.table.column("source").to_pylist()
    assert all(s.startswith("s3://sets/demo/images/") for s in sources)
    for path in (tmp_path / "s3").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def _git_dvc(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIXELPIPE_TRACKING": "off", "PIXELPIPE_WORKERS": "1", **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.mark.e2e
def test_a_bucket_behind_a_dvc_remote_is_a_dependency(
    s3_endpoint: str, demo_raw: Path, tmp_path: Path
) -> None:
    """remote://NAME/path: DVC tracks the bucket, reruns on change, and the digest is the disk's."""
    fs = _upload(s3_endpoint, demo_raw, "remote-sets", "demo")
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_ENDPOINT_URL": "",
    }
    projects = {}
    for name, source in (("s3", "remote://sets/demo"), ("disk", str(demo_raw))):
        project = tmp_path / name
        _git_dvc(tmp_path, "pixelpipe", "init", str(project))
        if name == "s3":
            _git_dvc(project, "dvc", "remote", "add", "sets", "s3://remote-sets")
            _git_dvc(project, "dvc", "remote", "modify", "sets", "endpointurl", s3_endpoint)
            _git_dvc(
                project, "dvc", "remote", "modify", "--local", "sets", "access_key_id", "testing"
            )
            _git_dvc(
                project, "dvc", "remote", "modify", "--local", "sets", "secret_access_key", SECRET
            )
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["ingest"]["source"] = source
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        _git_dvc(project, "pixelpipe", "compile")
        _git_dvc(project, "dvc", "repro", env=env)
        projects[name] = project
    s3_project = projects["s3"]
    dvc_yaml = yaml.safe_load((s3_project / "dvc.yaml").read_text())
    assert "remote://sets/demo" in dvc_yaml["stages"]["ingest"]["deps"]
    digests = {
        name: json.loads((p / "data/publish/dataset.json").read_text())["digest"]
        for name, p in projects.items()
    }
    assert digests["s3"] == digests["disk"]
    assert "up to date" in _git_dvc(s3_project, "dvc", "status", env=env)
    fs.pipe("remote-sets/demo/images/extra.jpg", (demo_raw / "images" / "cat.jpg").read_bytes())
    status = _git_dvc(s3_project, "dvc", "status", env=env)
    assert "modified:" in status and "remote://sets/demo" in status
    output = _git_dvc(s3_project, "dvc", "repro", env=env)
    assert "Running stage 'ingest'" in output
    removed = Dataset(s3_project / "data/ingest").removed().to_pylist()
    assert any(r["id"] == "extra.jpg" and r["reason"] == "unlisted" for r in removed)
    for folder in ("data", "reports", "pipelines"):
        for path in (s3_project / folder).rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
    for name in ("dvc.yaml", "dvc.lock", "params.yaml", ".dvc/config"):
        assert SECRET not in (s3_project / name).read_text(), name


def test_a_bucket_that_dies_mid_ingest_is_one_line_and_writes_nothing(
    s3_endpoint: str, corpora: Path, project: Path, run: Any, tmp_path: Path
) -> None:
    from urllib.parse import urlsplit

    from flaky import Proxy

    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in sorted((corpora / "corrupt/pillow").glob("hopper*.jpg")):
        shutil.copy(photo, photos)
    fs = _upload(s3_endpoint, photos, "dying", "set")
    assert len(fs.ls("dying/set")) > 8
    parts = urlsplit(s3_endpoint)
    proxy = Proxy((str(parts.hostname), int(parts.port or 80)), die_after=4)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"].update(source="s3://dying/set", format="images")
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = run(
        ["pixelpipe", "run", "ingest"],
        project,
        check=False,
        PIXELPIPE_WORKERS="2",
        AWS_ENDPOINT_URL=proxy.url,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY=SECRET,
    )
    proxy.cut()
    assert proxy.dead and result.returncode == 1
    assert "Traceback" not in result.stderr and SECRET not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert re.fullmatch(
        r"error: ingest: reading s3://dying/set/\S+\.jpg failed after 4 tries "
        r"\(Connection refused\); nothing was written",
        errors[0],
    ), errors[0]
    assert not (project / "data" / "ingest").exists()
    assert not list((project / "data").glob(".ingest*"))


def test_a_rerun_from_s3_reads_only_new_objects(
    s3_endpoint: str, demo_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing's ETags key the per-item cache: unchanged objects are not downloaded."""
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("cat.jpg", "clock.jpg", "coffee.jpg", "notes.jpg"):
        shutil.copy(demo_raw / "images" / name, photos)
    fs = _upload(s3_endpoint, photos, "rerun", "set")
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PIXELPIPE_CACHE", raising=False)
    opens: list[object] = []
    real = Image.open

    def recording(fp: Any, *args: Any, **kwargs: Any) -> Image.Image:
        opens.append(fp)
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", recording)
    project = tmp_path / "project"
    first, _ = ingest(project, source="s3://rerun/set", format="images")
    assert len(first) == 3 and len(opens) == 4
    opens.clear()
    again, _ = ingest(project, source="s3://rerun/set", format="images")
    assert opens == [] and again.digest == first.digest
    fs.pipe("rerun/set/launchpad.jpg", (demo_raw / "images" / "launchpad.jpg").read_bytes())
    opens.clear()
    third, _ = ingest(project, source="s3://rerun/set", format="images")
    assert len(opens) == 1 and len(third) == 4
    shutil.rmtree(project / ".pixelpipe" / "objects")
    opens.clear()
    fourth, _ = ingest(project, source="s3://rerun/set", format="images")
    assert len(opens) == 4, "images whose objects were collected are downloaded again"
    monkeypatch.setenv("PIXELPIPE_CACHE", "off")
    fresh, _ = ingest(project, source="s3://rerun/set", format="images")
    assert fourth.digest == fresh.digest == third.digest
    for sample in fresh.samples():
        data = (project / sample.image).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sample.sha256
