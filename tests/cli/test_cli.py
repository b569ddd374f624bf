"""The command line: one-line errors without tracebacks, listings, summaries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

Run = Callable[..., CompletedProcess[str]]


def test_a_typo_in_a_stage_kind_is_one_line_with_file_line_and_did_you_mean(
    project: Path, run: Run
) -> None:
    pipeline = project / "pipelines" / "default.yaml"
    text = pipeline.read_text()
    line = text[: text.index("kind: publish")].count("\n") + 1
    pipeline.write_text(text.replace("kind: publish", "kind: publsh"))
    result = run(["pixelpipe", "compile"], project, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: pipelines/default.yaml:{line} stages.publish.kind: unknown stage kind 'publsh' "
        "(did you mean 'publish'?)"
    ]


def test_run_of_an_unknown_stage(project: Path, run: Run) -> None:
    result = run(["pixelpipe", "run", "ingets"], project, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: pipelines/default.yaml: no stage named 'ingets' (did you mean 'ingest'?)"
    )


def test_run_before_the_source_exists(project: Path, run: Run) -> None:
    result = run(["pixelpipe", "run", "ingest"], project, check=False)
    assert result.returncode == 1
    assert (
        "error: params.yaml ingest.source: source folder not found: data/raw/demo" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_stages_lists_kinds_with_their_params(project: Path, run: Run) -> None:
    listing = run(["pixelpipe", "stages"], project).stdout
    for text in ("ingest", "publish", "max_pixels", "89478485", "Images with more pixels"):
        assert text in listing
    schema = json.loads(run(["pixelpipe", "stages", "ingest", "--schema"], project).stdout)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["format"]["enum"] == [
        "auto",
        "coco",
        "voc",
        "yolo",
        "labelstudio",
        "cvat",
        "csv",
        "imagefolder",
        "images",
    ]
    result = run(["pixelpipe", "stages", "ingset"], project, check=False)
    assert result.stderr.strip() == "error: unknown stage kind 'ingset' (did you mean 'ingest'?)"


def test_show_summarizes_a_dataset(demo_project: Path, run: Run) -> None:
    run(["pixelpipe", "run", "ingest", "--workers", "1"], demo_project)
    shown = run(["pixelpipe", "show", "data/ingest"], demo_project).stdout
    assert "samples 38" in shown and "removed 1" in shown
    assert "unreadable" in shown and "notes.jpg" in shown
    assert "clock" in shown and "sha256:" in shown


def test_init_keeps_existing_files(project: Path, run: Run) -> None:
    params = project / "params.yaml"
    mine = params.read_text().replace("seed: 0", "seed: 7")
    params.write_text(mine)
    lines = run(["pixelpipe", "init", str(project)], project).stdout
    assert "kept existing params.yaml" in lines
    assert params.read_text() == mine
