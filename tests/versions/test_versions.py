"""Release, list, checkout, get and diff of dataset versions: real git, DVC, MLflow and S3.

One small project (9 tiny images, three stages: ingest -> label -> publish) goes through
the whole workflow of docs/versions.md: release v1, change params and raw data, repro,
release v2, checkout v1 and back, diff, get. The S3 test pushes to a moto server on
127.0.0.1 and reads everything back from a fresh clone.
"""

from __future__ import annotations

import filecmp
import io
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from shell import fails, launch, sh

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "bird"}]
# (file, width, height, [(category, box)]); img7 is narrow (label.min_width removes it in v2).
IMAGES: list[tuple[str, int, int, list[tuple[int, list[float]]]]] = [
    ("img0.png", 24, 18, [(1, [1, 1, 10, 8])]),
    ("img1.png", 24, 18, [(2, [2, 2, 8, 8]), (3, [12, 2, 6, 6])]),
    ("img2.png", 30, 20, [(1, [0, 0, 12, 10])]),
    ("img3.png", 30, 20, [(3, [4, 4, 10, 10])]),
    ("img4.png", 28, 16, [(2, [3, 3, 9, 9])]),
    ("img5.png", 28, 16, [(1, [5, 1, 6, 6]), (2, [14, 2, 8, 8])]),
    ("img6.png", 26, 22, [(3, [1, 1, 5, 5])]),
    ("img7.png", 16, 22, [(1, [2, 2, 8, 8])]),
]

LABEL_STAGE = '''"""Test stage: assign splits by sample number, drop a class, drop narrow images."""

import re

from pixelpipe import DatasetBuilder, StageParams, StageResult, stage


class Params(StageParams):
    """Params of the test ``label`` stage."""

    val_every: int = 3
    """Samples whose number is a multiple of this go to ``val``, the others to ``train``."""
    drop_class: int | None = None
    """Annotations of this category id are dropped."""
    min_width: int = 0
    """Images narrower than this are removed as ``too_narrow``."""


@stage("label", params=Params)
def label(inputs, params, ctx):
    """Split, filter labels, remove narrow images."""
    (dataset,) = inputs
    out = DatasetBuilder(dataset.categories)
    for sample in dataset.samples():
        if sample.width < params.min_width:
            out.remove(sample, "too_narrow", f"{sample.width} px < {params.min_width} px")
            continue
        number = int(re.search(r"\\d+", sample.id).group())
        sample.split = "val" if number % params.val_every == 0 else "train"
        if params.drop_class is not None:
            sample.annotations = [
                a for a in sample.annotations if a.category_id != params.drop_class
            ]
        out.add(sample)
    return StageResult(output=out, metrics={"kept": len(out.samples_table())})
'''

# The publish stage plus the dataset card: the exact call docs/versions.md gives publish.
CARD_PUBLISH = '''"""Test stage: the built-in publish, plus the dataset card."""

from pixelpipe import stage, write_card
from stages.publish import Params
from stages.publish import publish as builtin


@stage("publish", params=Params, plots=builtin.plots)
def publish(inputs, params, ctx):
    """Publish as COCO and write the card."""
    result = builtin.step(inputs, params, ctx)
    write_card(ctx, inputs, result.output, params)
    return result
'''

TWO_STAGES = (
    "stages:\n  ingest:\n    kind: ingest\n  publish:\n    kind: publish\n    inputs: ingest\n"
)
PIPELINE = """stages:
  ingest:
    kind: ingest
  label:
    kind: label_stage:label
    inputs: ingest
  publish:
    kind: card_publish:publish
    inputs: label
"""


@pytest.fixture(autouse=True)
def _tracking_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about MLflow tracking, which the suite turns off by default."""
    monkeypatch.setenv("PIXELPIPE_TRACKING", "on")


def png(width: int, height: int, seed: int) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            ((x * 7 + seed * 31) % 256, (y * 11 + seed * 17) % 256, (x * y + seed) % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_raw(
    root: Path, images: list[tuple[str, int, int, list[tuple[int, list[float]]]]]
) -> None:
    """The raw COCO dataset at data/raw/demo (where init's params read)."""
    raw = root / "data" / "raw" / "demo"
    (raw / "images").mkdir(parents=True, exist_ok=True)
    coco: dict[str, Any] = {"images": [], "annotations": [], "categories": CATEGORIES}
    for number, (name, width, height, boxes) in enumerate(images, start=1):
        path = raw / "images" / name
        if not path.exists():
            path.write_bytes(png(width, height, number))
        coco["images"].append({"id": number, "file_name": name, "width": width, "height": height})
        for category, box in boxes:
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": number,
                    "category_id": category,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    (raw / "annotations.json").write_text(json.dumps(coco, indent=1) + "\n", encoding="utf-8")


def set_params(root: Path, stage: str, **values: Any) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params.setdefault(stage, {}).update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def make_project(base: Path, three_stages: bool = True, **extra: str) -> Path:
    """``pixelpipe init`` + tiny raw data (+ the label stage and the card), committed."""
    root = base / "project"
    sh(["pixelpipe", "init", str(root)], base)
    write_raw(root, IMAGES)
    (root / "pipelines" / "default.yaml").write_text(TWO_STAGES, encoding="utf-8")
    (root / "params.yaml").write_text("ingest: {}\npublish: {}\n", encoding="utf-8")
    if three_stages:
        (root / "label_stage.py").write_text(LABEL_STAGE, encoding="utf-8")
        (root / "card_publish.py").write_text(CARD_PUBLISH, encoding="utf-8")
        (root / "pipelines" / "default.yaml").write_text(PIPELINE, encoding="utf-8")
        set_params(root, "label", val_every=3)
    sh(["pixelpipe", "compile"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "project"], root)
    return root


def repro_and_commit(root: Path, message: str, **extra: str) -> None:
    sh(["dvc", "repro", "-q"], root, **extra)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", message], root)


def snapshot(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def same_tree(a: Path, b: Path) -> bool:
    """Same file names and bytes under both folders."""
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, files_a, shallow=False)
    return not mismatch and not errors


def lock_hash(root: Path, out: str) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    for entry in lock["stages"].values():
        for item in entry.get("outs", []):
            if item["path"] == out:
                return str(item["md5"])
    raise AssertionError(f"{out} not in dvc.lock")


def test_release_checkout_diff_get(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    root = make_project(tmp_path)
    repro_and_commit(root, "data v1")
    v1_publish = snapshot(root / "data" / "publish", tmp_path / "v1-publish")
    v1_ingest = snapshot(root / "data" / "ingest", tmp_path / "v1-ingest")
    assert (v1_publish / "README.md").is_file()  # the card, written by the publish step

    assert "no version released yet" in sh(["pixelpipe", "versions"], root).stdout
    out = sh(["pixelpipe", "release", "v1", "-m", "first cut"], root).stdout
    assert "released v1" in out
    assert "tagged 3 MLflow run(s)" in out
    line = fails(["pixelpipe", "release", "v1"], root)
    assert "version 'v1' already exists" in line

    # The card is deterministic: a forced rerun of publish gives the same DVC hash.
    before = lock_hash(root, "data/publish")
    sh(["dvc", "repro", "-q", "-f", "-s", "publish"], root, PIXELPIPE_TRACKING="off")
    assert lock_hash(root, "data/publish") == before
    sh(["git", "reset", "-q", "--hard"], root)  # the report (no run id now) back

    # A param change: refused while uncommitted, then while not reproduced.
    set_params(root, "label", val_every=2, drop_class=3, min_width=20)
    line = fails(["pixelpipe", "release", "v2"], root)
    assert "uncommitted changes (params.yaml)" in line
    sh(["git", "commit", "-qam", "label params"], root)
    line = fails(["pixelpipe", "release", "v2"], root)
    assert "not up to date: stage 'label' (params label: modified)" in line
    # dvc.yaml no longer matching the pipeline is refused too.
    pipeline = root / "pipelines" / "default.yaml"
    pipeline.write_text(PIPELINE.replace("inputs: label", "inputs: label\n    description: x"))
    sh(["git", "commit", "-qam", "edit pipeline"], root)
    line = fails(["pixelpipe", "release", "v2"], root)
    assert "dvc.yaml is stale: stage 'publish' differs in desc" in line
    sh(["git", "reset", "-q", "--hard", "HEAD~1"], root)

    # Raw data changes too: img1 gets new pixels, img8 is added.
    (root / "data" / "raw" / "demo" / "images" / "img1.png").write_bytes(png(24, 18, 99))
    write_raw(root, [*IMAGES, ("img8.png", 25, 19, [(2, [1, 1, 9, 9])])])
    repro_and_commit(root, "data v2", PIXELPIPE_TRACKING="off")  # v1's runs are enough
    v2_publish = snapshot(root / "data" / "publish", tmp_path / "v2-publish")
    sh(["pixelpipe", "release", "v2"], root)

    listed = json.loads(sh(["pixelpipe", "versions", "--json"], root).stdout)
    assert [v["name"] for v in listed] == ["v1", "v2"]
    assert listed[0]["message"] == "first cut"
    v1_info = json.loads((v1_publish / "dataset.json").read_text())
    v2_info = json.loads((v2_publish / "dataset.json").read_text())
    assert listed[0]["digest"] == v1_info["digest"]
    assert listed[1]["digest"] == v2_info["digest"]
    assert listed[1]["counts"]["samples"] == 8
    assert listed[1]["counts"]["splits"] == {"train": 3, "val": 5}
    table = sh(["pixelpipe", "versions"], root).stdout
    assert "v1" in table and "v2" in table and v2_info["digest"][:19] in table

    # MLflow on the project's SQLite store: v1's runs carry the digests and the version
    # (v2 was made with tracking off: no runs, nothing to tag).
    assert listed[1]["runs"] == {}
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = listed[0]["runs"]
    assert set(runs) == {"ingest", "label", "publish"}
    assert listed[0]["mlflow_run_id"] == runs["publish"]
    publish_run = client.get_run(runs["publish"])
    assert publish_run.data.tags["pixelpipe.digest"] == v1_info["digest"]
    assert publish_run.data.tags["pixelpipe.input.label.digest"] == v1_info["inputs"]["label"]
    assert publish_run.data.tags["pixelpipe.version"] == "v1"
    assert publish_run.data.tags["pixelpipe.version.v1"] == "true"
    # The stages ran on the code of the commit before the one recording their output.
    code = sh(["git", "rev-parse", "v1^"], root).stdout.strip()
    assert publish_run.data.tags["mlflow.source.git.commit"] == code
    contexts = {
        next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
        for d in (publish_run.inputs.dataset_inputs if publish_run.inputs else [])
    }
    assert contexts["output"].digest == v1_info["digest"][:36]
    assert contexts["input"].digest == v1_info["inputs"]["label"][:36]
    label_run = client.get_run(runs["label"])
    assert label_run.data.params["val_every"] == "3"
    assert label_run.data.tags["pixelpipe.versions"] == "v1"

    # Diff: every kind of change is named.
    result = json.loads(sh(["pixelpipe", "diff", "v1", "v2", "--json"], root).stdout)
    assert not result["identical"]
    assert result["images"] == {
        "added": ["img8.png"],
        "removed": ["img7.png"],
        "changed": ["img1.png"],
    }
    assert result["annotations"]["images_changed"] == ["img1.png", "img3.png", "img6.png"]
    assert result["annotations"]["instances_removed"] == 4  # 3 birds and img7's cat
    assert result["annotations"]["instances_added"] == 1  # img8's dog
    assert result["splits"]["moved"] == [
        {"id": "img2.png", "from": "train", "to": "val"},
        {"id": "img3.png", "from": "val", "to": "train"},
        {"id": "img4.png", "from": "train", "to": "val"},
    ]
    bird = next(c for c in result["classes"] if c["name"] == "bird")
    assert (bird["a"], bird["b"], bird["delta"]) == (3, 0, -3)
    assert {"stage": "label", "reason": "too_narrow", "a": 0, "b": 1} in result["removed_by_reason"]
    text = sh(["pixelpipe", "diff", "v1", "v2"], root).stdout
    for expected in ("img8.png", "img7.png", "img1.png", "img2.png (train->val)", "bird"):
        assert expected in text
    same = json.loads(sh(["pixelpipe", "diff", "v2", "HEAD", "--json"], root).stdout)
    assert same["identical"]

    # Checkout v1: every data output is v1's, byte for byte; the code does not move.
    head = sh(["git", "rev-parse", "HEAD"], root).stdout
    sh(["pixelpipe", "checkout", "v1"], root)
    assert same_tree(root / "data" / "publish", v1_publish)
    assert same_tree(root / "data" / "ingest", v1_ingest)
    assert sh(["git", "rev-parse", "HEAD"], root).stdout == head
    assert sh(["git", "status", "--porcelain"], root).stdout == ""
    assert "v1 (checked out)" in sh(["pixelpipe", "versions"], root).stdout
    line = fails(["pixelpipe", "release", "v3"], root)
    assert "holds the data of v1" in line

    # Unsaved changes are never overwritten silently.
    (root / "data" / "publish" / "notes.txt").write_text("mine\n")
    line = fails(["pixelpipe", "checkout", "HEAD"], root)
    assert "unsaved changes: data/publish/notes.txt is not in the DVC cache" in line
    (root / "data" / "publish" / "notes.txt").unlink()

    sh(["pixelpipe", "checkout", "HEAD"], root)
    assert same_tree(root / "data" / "publish", v2_publish)
    assert launch(["dvc", "status", "-q"], root).returncode == 0
    assert "(checked out)" not in sh(["pixelpipe", "versions"], root).stdout

    # At HEAD too: a modified output is refused, --force discards it. Outputs are read-only
    # hard links into DVC's cache (`cache.type` hardlink), so an edit saves a new file.
    edited = root / "data" / "publish" / "categories.json"
    text = edited.read_text()
    edited.unlink()
    edited.write_text(text + " ")
    line = fails(["pixelpipe", "checkout", "v1"], root)
    assert "data/publish/categories.json is not in the DVC cache" in line
    sh(["pixelpipe", "checkout", "v1", "--force"], root)
    assert same_tree(root / "data" / "publish", v1_publish)
    sh(["pixelpipe", "checkout", "HEAD"], root)
    assert same_tree(root / "data" / "publish", v2_publish)

    # Get: a version's published dataset elsewhere, the workspace untouched.
    sh(["pixelpipe", "get", "v1", "--out", str(tmp_path / "exported")], root)
    assert same_tree(tmp_path / "exported", v1_publish)
    assert same_tree(root / "data" / "publish", v2_publish)
    line = fails(["pixelpipe", "get", "v1", "--out", str(tmp_path / "exported")], root)
    assert "exists and is not an empty folder" in line

    # Unknown versions get a did-you-mean.
    line = fails(["pixelpipe", "checkout", "v1.0"], root)
    assert line == "error: unknown version 'v1.0' (did you mean 'v1'?)"
    line = fails(["pixelpipe", "diff", "v1", "v7"], root)
    assert line == "error: unknown version 'v7'; released: v1, v2"
    assert "cannot name a version" in fails(["pixelpipe", "release", "workspace"], root)


def test_s3_remote_release_get_checkout_from_a_fresh_clone(tmp_path: Path) -> None:
    import boto3  # type: ignore[import-untyped]
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        aws = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PIXELPIPE_TRACKING": "off",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="datasets")

        root = make_project(tmp_path, three_stages=False)
        sh(["dvc", "remote", "add", "-d", "store", "s3://datasets/cv"], root)
        sh(["dvc", "remote", "modify", "store", "endpointurl", endpoint], root)
        sh(["git", "commit", "-qam", "DVC remote on S3"], root)
        repro_and_commit(root, "data", **aws)
        published = snapshot(root / "data" / "publish", tmp_path / "published")

        out = sh(["pixelpipe", "release", "v1"], root, **aws).stdout
        assert "pushed the data to DVC remote 'store'" in out
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="datasets")["Contents"]]
        assert keys and all(k.startswith("cv/files/md5/") for k in keys)

        # A fresh clone has the tags but no data: everything comes from S3.
        clone = tmp_path / "clone"
        sh(["git", "clone", "-q", str(root), str(clone)], tmp_path)
        assert not (clone / "data" / "publish").exists()
        listed = json.loads(sh(["pixelpipe", "versions", "--json"], clone).stdout)
        assert [v["name"] for v in listed] == ["v1"]

        sh(["pixelpipe", "get", "v1", "--out", str(tmp_path / "got")], clone, **aws)
        assert same_tree(tmp_path / "got", published)
        assert not (clone / "data" / "publish").exists()

        sh(["pixelpipe", "checkout", "v1"], clone, **aws)
        assert same_tree(clone / "data" / "publish", published)
        sh(["pixelpipe", "checkout", "HEAD"], clone, **aws)
        assert same_tree(clone / "data" / "publish", published)
        # The outputs are in the clone's cache now (only the raw data, never in DVC, is not).
        status = json.loads(sh(["dvc", "status", "--json"], clone).stdout)
        assert status == {"ingest": [{"changed deps": {"data/raw/demo": "deleted"}}]}
        result = json.loads(sh(["pixelpipe", "diff", "v1", "HEAD", "--json"], clone).stdout)
        assert result["identical"]
    finally:
        server.stop()

    # With the remote gone, a clone without the data gets a clear error.
    other = tmp_path / "other"
    sh(["git", "clone", "-q", str(root), str(other)], tmp_path)
    line = fails(["pixelpipe", "get", "v1", "--out", str(tmp_path / "nothing")], other, **aws)
    assert "cannot read data/publish of v1" in line
    assert not (tmp_path / "nothing").exists()
    # The clone that checked v1 out has it in its cache: it works offline.
    sh(["pixelpipe", "checkout", "v1"], clone, **aws)
    assert same_tree(clone / "data" / "publish", published)
