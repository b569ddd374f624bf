"""Leftovers of killed runs in data/: cleaned by every command that touches data/ (issue 11, item 16).

The real case: a stage killed with SIGKILL mid-write, then ``dvc repro`` restores the stage
from DVC's run cache, so the stage never runs again to clean up after itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from shell import launch, sh

from pixelpipe.engine.workspace import clean_leftovers

FIXTURES = Path(__file__).parents[1] / "fixtures"
PIPELINE = """\
stages:
  ingest:
    kind: ingest
  slow:
    kind: custom_stages:slow_copy
    inputs: ingest
"""
PARAMS = "ingest: {}\nslow: {}\n"
PAUSED = "ingest: {}\nslow:\n  pause_after: 5\n"


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a process that runs for the whole test."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _folder(path: Path) -> Path:
    (path / "images").mkdir(parents=True)
    (path / "images" / "half.jpg").write_bytes(b"\xff\xd8 half")
    return path


def test_leftovers_of_dead_processes_go_those_of_running_ones_stay(
    tmp_path: Path, dead_pid: int, live_pid: int
) -> None:
    data = tmp_path / "data"
    _folder(data / "dedupe")
    _folder(data / "raw" / "demo")
    gone = [
        _folder(data / f".ingest.tmp-{dead_pid}"),  # a stage killed mid-write
        _folder(data / f".dedupe.old-{dead_pid}"),  # killed after the swap: the output is there
        _folder(data / f".split.checkout-{dead_pid}"),  # a checkout killed mid-copy
    ]
    kept = [
        _folder(data / f".augment.tmp-{live_pid}"),  # a stage running right now
        _folder(data / f".augment.tmp-{os.getpid()}"),  # this very process
        _folder(data / f".tmp-{dead_pid}"),  # names that are not a run's folder
        _folder(data / ".cache"),
        _folder(data / f".ingest.tmp-{dead_pid}x"),
        _folder(data / "raw" / f".demo.tmp-{dead_pid}"),  # not directly in data/
    ]
    (data / f".publish.tmp-{dead_pid}").write_text("a file, not a run's folder")

    found = clean_leftovers(data)

    assert [(f.path, f.action) for f in found] == [
        (data / f".augment.tmp-{live_pid}", "kept"),
        (data / f".dedupe.old-{dead_pid}", "removed"),
        (data / f".ingest.tmp-{dead_pid}", "removed"),
        (data / f".split.checkout-{dead_pid}", "removed"),
    ]
    assert not any(p.exists() for p in gone)
    assert all(p.exists() for p in kept)
    assert (data / "dedupe" / "images" / "half.jpg").exists()
    assert (
        str(found[0]) == f"kept data/.augment.tmp-{live_pid}: in use by running process {live_pid}"
    )
    assert str(found[2]) == (
        f"removed data/.ingest.tmp-{dead_pid}: left by a killed run (process {dead_pid} is gone)"
    )
    assert clean_leftovers(data) == found[:1]  # nothing more to do
    assert clean_leftovers(tmp_path / "none") == []


def test_a_run_killed_between_the_two_renames_of_a_swap_gets_its_previous_output_back(
    tmp_path: Path, dead_pid: int
) -> None:
    data = tmp_path / "data"
    # swap_into_place renamed data/slow to .slow.old-PID, then was killed before the new
    # output (.slow.tmp-PID) took its place: dvc.lock still names the previous output.
    _folder(data / f".slow.old-{dead_pid}")
    _folder(data / f".slow.tmp-{dead_pid}")

    found = clean_leftovers(data)

    assert [f.action for f in found] == ["restored", "removed"]
    assert str(found[0]) == (
        f"restored data/slow from data/.slow.old-{dead_pid}: a killed run (process {dead_pid}) "
        "was replacing it"
    )
    assert (data / "slow" / "images" / "half.jpg").exists()
    assert sorted(p.name for p in data.iterdir()) == ["slow"]


@pytest.fixture
def dvc_project(tmp_path: Path, demo_raw: Path) -> Path:
    """A git + DVC project with ingest and the fixture kind ``slow_copy``, compiled."""
    root = tmp_path / "project"
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "main.yaml").write_text(PIPELINE)
    (root / "params.yaml").write_text(PARAMS)
    shutil.copy(FIXTURES / "custom_stages.py", root / "custom_stages.py")
    shutil.copytree(demo_raw, root / "data" / "raw" / "demo")
    sh(["git", "init", "-q"], root)
    sh(["dvc", "init", "-q"], root)
    sh(["pixelpipe", "compile", "--pipeline", "pipelines/main.yaml"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "project"], root)
    return root


def _kill_stage_mid_write(root: Path) -> Path:
    """``dvc repro`` the paused ``slow`` stage and SIGKILL the stage process mid-write."""
    marker = root / "slow.marker"
    repro = subprocess.Popen(
        ["dvc", "repro"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(600):  # wait for the stage to be half-way through its output
            if marker.exists() or repro.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), "the stage never paused"
        (partial,) = (root / "data").glob(".slow.tmp-*")
        assert list(partial.rglob("*.jpg")), "the stage should be mid-write"
        os.kill(int(partial.name.rsplit("-", 1)[1]), signal.SIGKILL)  # the stage, not DVC
        assert repro.wait(timeout=120) != 0
    finally:
        if repro.poll() is None:
            repro.kill()
            repro.wait()
    marker.unlink()
    return partial


@pytest.mark.parametrize("command", ["show", "run"])
def test_a_leftover_dvc_never_cleans_goes_at_the_next_command(
    dvc_project: Path, command: str
) -> None:
    root = dvc_project
    sh(["dvc", "repro"], root)  # slow with `{}` is now in DVC's run cache
    (root / "params.yaml").write_text(PAUSED)
    partial = _kill_stage_mid_write(root)
    (root / "params.yaml").write_text(PARAMS)  # back to the params DVC has a run of

    repro = sh(["dvc", "repro"], root)
    assert "Stage 'slow' is cached - skipping run, checking out outputs" in repro.stdout
    assert partial.is_dir(), "DVC restored the stage without running it: the leftover stays"

    pid = partial.name.rsplit("-", 1)[1]
    line = f"removed data/{partial.name}: left by a killed run (process {pid} is gone)"
    if command == "show":
        shown = sh(["pixelpipe", "show", "data/slow"], root)
        assert shown.stdout.splitlines()[0] == line
    else:
        ran = sh(["pixelpipe", "run", "ingest", "--pipeline", "pipelines/main.yaml"], root)
        assert f"pixelpipe.ingest: {line}" in ran.stderr.splitlines()
    assert not partial.exists()
    assert sorted(p.name for p in (root / "data").iterdir()) == [
        ".gitignore",
        "ingest",
        "raw",
        "slow",
    ]
    again = sh(["pixelpipe", "show", "data/slow"], root)
    assert again.stdout.startswith("data/slow  stage slow")
    assert "Data and pipelines are up to date." in sh(["dvc", "status"], root).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["versions"],
        ["diff", "v1", "v2"],
        ["get", "v1", "--out", "exported"],
        ["checkout", "v1"],
        ["release", "v1"],
        ["demo", "--out", "data/raw/other"],
    ],
    ids=lambda args: args[0],
)
def test_every_command_that_touches_data_cleans_up_first(
    project: Path, dead_pid: int, args: list[str]
) -> None:
    leftover = _folder(project / "data" / f".ingest.tmp-{dead_pid}")
    result = launch(["pixelpipe", *args], project)
    assert "Traceback" not in result.stderr
    assert not leftover.exists(), result
    line = f"pixelpipe.workspace: removed data/{leftover.name}: left by a killed run"
    assert line in result.stderr
