"""The runner: atomic outputs, the nothing-lost check, custom kinds, worker independence."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pixelpipe.dataset import Dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.errors import PixelpipeError

HERE = Path(__file__).parent
PIPELINE = """\
stages:
  ingest:
    kind: ingest
  tag:
    kind: custom_stages:tag_small
    inputs: ingest
    configs:
      labels: configs/labels.txt
  slow:
    kind: custom_stages:slow_copy
    inputs: ingest
  lossy:
    kind: custom_stages:lose_one
    inputs: ingest
"""
PARAMS = "ingest: {}\ntag:\n  min_width: 400\nslow: {}\nlossy: {}\n"


@pytest.fixture
def root(tmp_path: Path, demo_raw: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "pipelines" / "main.yaml").write_text(PIPELINE)
    (tmp_path / "params.yaml").write_text(PARAMS)
    (tmp_path / "configs" / "labels.txt").write_text("small\n")
    shutil.copy(HERE.parent / "fixtures" / "custom_stages.py", tmp_path / "custom_stages.py")
    shutil.copytree(demo_raw, tmp_path / "data" / "raw" / "demo")
    return tmp_path


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_ingest_then_custom_kind_with_config(root: Path) -> None:
    metrics = run_stage(root, "ingest", "pipelines/main.yaml", workers=1)
    assert metrics["samples"] == 38 and metrics["removed_by_reason"] == {"unreadable": 1}
    assert metrics["found"] == 39
    assert metrics["digest"] == Dataset(root / "data" / "ingest").digest
    report = json.loads((root / "reports" / "ingest.json").read_text())
    assert report["samples"] == 38 and "digest" not in report  # numbers only
    run_stage(root, "tag", "pipelines/main.yaml", workers=1)
    tagged = [s for s in Dataset(root / "data" / "tag").samples() if "small" in s.tags]
    assert tagged and all(s.width < 400 for s in tagged)
    assert json.loads((root / "reports" / "tag.json").read_text())["tagged"] == len(tagged)


def test_outputs_do_not_depend_on_worker_count(root: Path) -> None:
    run_stage(root, "ingest", "pipelines/main.yaml", workers=1)
    one = _files(root / "data" / "ingest")
    run_stage(root, "ingest", "pipelines/main.yaml", workers=2)
    assert _files(root / "data" / "ingest") == one


def test_a_stage_that_loses_samples_fails(root: Path) -> None:
    run_stage(root, "ingest", "pipelines/main.yaml", workers=1)
    with pytest.raises(
        PixelpipeError, match=r"stage 'lossy': 1 input samples neither kept nor removed"
    ):
        run_stage(root, "lossy", "pipelines/main.yaml", workers=1)
    assert not (root / "data" / "lossy").exists()
    assert not list((root / "data").glob(".lossy.*"))


def test_missing_input_is_a_clear_error(root: Path) -> None:
    with pytest.raises(
        PixelpipeError, match=r"data/ingest: not a pixelpipe dataset .* has its stage run\?"
    ):
        run_stage(root, "tag", "pipelines/main.yaml", workers=1)


def _kill_midway(root: Path) -> None:
    marker = root / "slow.marker"
    marker.unlink(missing_ok=True)
    (root / "params.yaml").write_text(PARAMS.replace("slow: {}", "slow:\n  pause_after: 5"))
    proc = subprocess.Popen(
        ["pixelpipe", "run", "slow", "--pipeline", "pipelines/main.yaml", "--workers", "1"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):  # wait for the stage to be half-way through its output
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), proc.stderr.read().decode() if proc.stderr else ""
        partial = list((root / "data").glob(".slow.tmp-*"))
        assert partial and list(partial[0].rglob("*.jpg")), "the stage should be mid-write"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_killed_stage_leaves_no_output_then_previous_output(root: Path) -> None:
    run_stage(root, "ingest", "pipelines/main.yaml", workers=1)
    _kill_midway(root)
    assert not (root / "data" / "slow").exists()  # none, never half

    (root / "params.yaml").write_text(PARAMS)
    run_stage(root, "slow", "pipelines/main.yaml", workers=1)
    assert not list((root / "data").glob(".slow.*")), "stale temporary output is cleaned up"
    before = _files(root / "data" / "slow")
    _kill_midway(root)
    assert _files(root / "data" / "slow") == before  # the previous output, intact
