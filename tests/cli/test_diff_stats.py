"""``pixelpipe diff A B --stats [--json FILE]``: dataset folders, versions, the shared cache.

The folders are the demo's readable images (as ingest stores them, by sha256) and the same
images darkened (pixels x 0.6, saved with ``quality="keep"``) with every second cat label
dropped: 37 images a side, enough for the brightness tests (every image darker), too few
for the class mix (4 cats of 39 labels become 2 of 37). The command runs the ``drift``
stage's step, so its verdicts are the stage's, and an image measured by either is read from
the item cache by the other. The versions test releases v1 and a darkened v2 of the demo
through real git and DVC, then compares them, once with the object store emptied so that
v1's images come out of DVC's cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from shell import fails, launch, sh

from pixelpipe import Annotation, Category, DatasetBuilder, Sample
from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.context import StageContext
from pixelpipe.engine.executor import SerialExecutor
from pixelpipe.engine.itemcache import ItemCache, code_version
from pixelpipe.engine.registry import resolve
from pixelpipe.imaging.properties import PROPERTIES

CAT = 17
BRIGHTNESS = ["brightness", "rms_contrast", "mean_r", "mean_g", "mean_b"]
VERDICT_KEYS = {"test", "statistic", "p_value", "effect", "drift", "reference", "current"}
LINE = re.compile(
    r"^(?P<name>[a-z_.]+): (?P<rule>KS|chi-squared|Wasserstein|Jensen-Shannon) "
    r"p=(?P<p>\S+), effect (?P<effect>\S+) -> (?P<verdict>drift|no drift)$"
)


def darken(data: bytes) -> bytes:
    """Every pixel x 0.6, saved with the file's own JPEG tables (``quality="keep"``)."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        pixels = np.asarray(opened, dtype=np.float64) * 0.6
        opened.paste(Image.fromarray(pixels.round().astype(np.uint8)))
        buffer = io.BytesIO()
        opened.save(
            buffer, opened.format, **({"quality": "keep"} if opened.format == "JPEG" else {})
        )
    return buffer.getvalue()


def _store(root: Path, data: bytes, ext: str) -> tuple[str, str]:
    sha = hashlib.sha256(data).hexdigest()
    rel = f"data/pool/images/{sha[:2]}/{sha}{ext}"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)
    return rel, sha


def _write(root: Path, stage: str, samples: list[Sample], categories: list[Category]) -> None:
    builder = DatasetBuilder(categories)
    for sample in samples:
        builder.add(sample)
    write_dataset(root / "data" / stage, builder, stage=stage, kind="test", params={}, inputs={})


def two_folders(raw: Path, root: Path) -> Path:
    """``data/reference`` (the demo) and ``data/current`` (darker, half the cats) in ``root``."""
    coco = json.loads((raw / "annotations.json").read_text())
    categories = [Category(c["id"], c["name"]) for c in coco["categories"]]
    reference, current, cats = [], [], 0
    for image in coco["images"]:
        path = raw / "images" / image["file_name"]
        try:
            with Image.open(path) as opened:
                opened.load()
        except OSError:  # the truncated file and the text named .jpg
            continue
        anns = [
            Annotation(a["category_id"], (a["bbox"][0], a["bbox"][1], a["bbox"][2], a["bbox"][3]))
            for a in coco["annotations"]
            if a["image_id"] == image["id"]
        ]
        rel, sha = _store(root, path.read_bytes(), path.suffix)
        size = (image["width"], image["height"])
        reference.append(Sample(image["file_name"], rel, sha, *size, str(path), annotations=anns))
        kept = []
        for ann in anns:
            cats += ann.category_id == CAT
            if ann.category_id != CAT or cats % 2:
                kept.append(ann)
        dark, dark_sha = _store(root, darken(path.read_bytes()), path.suffix)
        current.append(Sample(image["file_name"], dark, dark_sha, *size, "", annotations=kept))
    _write(root, "reference", reference, categories)
    _write(root, "current", current, categories)
    return root


@pytest.fixture
def folders(demo_raw: Path, tmp_path: Path) -> Path:
    return two_folders(demo_raw, tmp_path / "work")


def stage_step(root: Path, output: Path) -> tuple[dict[str, Any], tuple[int, int]]:
    """The drift stage on the two folders in-process, as the runner runs it: its verdicts
    and ``(reused, computed)`` image properties."""
    kind = resolve("drift")
    output.mkdir(parents=True)
    cache = ItemCache(root, code_version(kind.step.__module__))
    ctx = StageContext(
        "drift", "drift", root, output, "data/drift", {}, 0, SerialExecutor(), cache=cache
    )
    datasets = [Dataset(root / "data" / "current"), Dataset(root / "data" / "reference")]
    try:
        kind.step(datasets, kind.params(), ctx)
    finally:
        cache.close()
    stats = cache.stats["image_properties"]
    return json.loads((output / "drift.json").read_text()), (stats.hits, stats.computed)


def measured(stdout: str) -> tuple[int, int]:
    """``(measured, reused)`` from the command's line about image properties."""
    found = re.search(r"image properties: (\d+) measured, (\d+) reused from the item cache", stdout)
    assert found, stdout
    return int(found[1]), int(found[2])


def test_one_line_per_verdict_and_the_json_file_holds_them_all(folders: Path) -> None:
    args = ["pixelpipe", "diff", "data/reference", "data/current", "--stats", "--json", "out.json"]
    stdout = sh(args, folders).stdout
    lines = stdout.splitlines()
    assert (
        lines[0]
        == "reference data/reference (reference, 37 images) -> current data/current (current, 37 images)"
    )
    verdicts = [LINE.match(line) for line in lines[1:15]]
    assert all(verdicts), lines[1:15]
    names = [m["name"] for m in verdicts if m]
    assert names == ["classes", "boxes.per_image", "boxes.size", "boxes.aspect", *PROPERTIES]
    drifted = {m["name"] for m in verdicts if m and m["verdict"] == "drift"}
    assert drifted == set(BRIGHTNESS)
    assert lines[-2] == "drift in: " + ", ".join(f"properties.{p}" for p in BRIGHTNESS)
    assert lines[-1] == "wrote out.json"
    written = json.loads((folders / "out.json").read_text())
    assert list(written) == ["classes", "boxes", "properties", "drift"]
    assert set(written["classes"]) == VERDICT_KEYS | {"shares"}
    assert list(written["boxes"]) == ["per_image", "size", "aspect"]
    assert list(written["properties"]) == list(PROPERTIES)
    assert all(
        set(v) == VERDICT_KEYS
        for v in [*written["boxes"].values(), *written["properties"].values()]
    )
    assert written["properties"]["brightness"]["drift"] is True
    assert [p.name for p in folders.iterdir() if p.name.startswith(".out.json")] == []
    # `--json` alone prints the same JSON, and nothing else
    printed = json.loads(
        sh(
            ["pixelpipe", "diff", "data/reference", "data/current", "--stats", "--json"], folders
        ).stdout
    )
    assert printed == written


def test_the_command_and_the_stage_share_their_verdicts_and_the_cache(folders: Path) -> None:
    args = ["pixelpipe", "diff", "data/reference", "data/current", "--stats", "--json", "cmd.json"]
    assert measured(sh(args, folders).stdout) == (
        72,
        0,
    )  # 36 distinct files a side (cat_copy is cat)
    verdicts, (reused, computed) = stage_step(folders, folders / "out" / "first")
    assert (reused, computed) == (72, 0)  # the command's measurements
    assert verdicts == json.loads((folders / "cmd.json").read_text())
    assert measured(sh(args, folders).stdout) == (0, 72)


def test_the_command_reuses_what_the_stage_measured(folders: Path) -> None:
    _, (reused, computed) = stage_step(folders, folders / "out" / "stage")
    assert (reused, computed) == (0, 72)
    args = ["pixelpipe", "diff", "data/reference", "data/current", "--stats"]
    assert measured(sh(args, folders).stdout) == (0, 72)


def test_fail_on_drift_exits_1_after_printing_and_the_report_is_written(folders: Path) -> None:
    args = ["pixelpipe", "diff", "data/reference", "data/current", "--stats", "--fail-on-drift"]
    result = launch([*args, "--report", "drift.html"], folders)
    assert result.returncode == 1, result.stderr
    assert "drift in: properties.brightness" in result.stdout
    assert "<svg" in (folders / "drift.html").read_text()
    same = launch(
        ["pixelpipe", "diff", "data/reference", "data/reference", "--stats", "--fail-on-drift"],
        folders,
    )
    assert same.returncode == 0 and same.stdout.splitlines()[-1] == "no drift"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # a folder that holds no dataset
        (["data", "data/current", "--stats"], "data: a folder, but not a pixelpipe dataset"),
        # neither a folder nor a version, outside any project
        (["data/current", "v9", "--stats"], "not in a pixelpipe project"),
        # a report asked of the plain diff
        (["data/reference", "data/current", "--report", "x.html"], "go with --stats"),
        # a file without --json
        (["data/reference", "data/current", "out.json", "--stats"], "add --json"),
    ],
)
def test_mistakes_are_one_line(folders: Path, args: list[str], message: str) -> None:
    assert message in fails(["pixelpipe", "diff", *args], folders)


def _darken_raw(raw: Path) -> None:
    """Darken every readable demo image in place and drop every second cat label."""
    for path in sorted(p for p in (raw / "images").rglob("*") if p.is_file()):
        try:
            path.write_bytes(darken(path.read_bytes()))
        except OSError:
            continue
    coco = json.loads((raw / "annotations.json").read_text())
    cats = [a["id"] for a in coco["annotations"] if a["category_id"] == CAT]
    coco["annotations"] = [a for a in coco["annotations"] if a["id"] not in cats[1::2]]
    (raw / "annotations.json").write_text(json.dumps(coco))


@pytest.mark.e2e
def test_two_released_versions_even_when_the_images_are_only_in_dvc(project: Path) -> None:
    (project / "pipelines" / "default.yaml").write_text(
        "stages:\n  ingest:\n    kind: ingest\n  publish:\n    kind: publish\n    inputs: ingest\n"
    )
    (project / "params.yaml").write_text("ingest: {}\npublish: {}\n")
    sh(["pixelpipe", "compile"], project)
    sh(["pixelpipe", "demo"], project)
    for version in ("v1", "v2"):
        if version == "v2":
            _darken_raw(project / "data" / "raw" / "demo")
        sh(["dvc", "repro", "-q"], project)
        sh(["git", "add", "-A"], project)
        sh(["git", "commit", "-qm", f"data {version}"], project)
        sh(["pixelpipe", "release", version], project)

    stdout = sh(["pixelpipe", "diff", "v1", "v2", "--stats", "--json", "v.json"], project).stdout
    assert stdout.splitlines()[0].startswith("reference v1 (publish, ")
    expected = [f"properties.{p}" for p in BRIGHTNESS]
    assert json.loads((project / "v.json").read_text())["drift"] == expected
    assert "fetched" not in stdout  # v1's images are in the object store
    empty = project.parent / "no-objects"
    empty.mkdir()
    again = sh(
        ["pixelpipe", "diff", "v1", "v2", "--stats", "--json", "w.json"],
        project,
        PIXELPIPE_OBJECTS_DIR=str(empty),
        PIXELPIPE_CACHE="off",
    ).stdout
    fetched = re.search(r"(\d+) images fetched from DVC", again)
    assert fetched and int(fetched[1]) > 0, again
    assert (project / "w.json").read_bytes() == (project / "v.json").read_bytes()
    # the plain diff keeps its `--json` (printed) and takes a file too
    plain = json.loads(sh(["pixelpipe", "diff", "v1", "v2", "--json"], project).stdout)
    assert plain["a"]["name"] == "v1" and plain["images"]["changed"]
    sh(["pixelpipe", "diff", "v1", "v2", "--json", "plain.json"], project)
    assert json.loads((project / "plain.json").read_text()) == plain
    shutil.rmtree(empty)
