"""dvc.yaml generation: golden output, byte stability, deps, --check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pixelpipe.engine.compile import compile_pipeline, render
from pixelpipe.engine.loader import load_pipeline
from pixelpipe.errors import PixelpipeError

HERE = Path(__file__).parent
PIPELINE = """\
stages:
  ingest:
    kind: ingest
    description: Read the photos.
  tag:
    kind: custom_stages:tag_small
    inputs: ingest
    configs:
      labels: configs/labels.txt
  publish:
    kind: publish
    inputs: [tag]
"""
PARAMS = "ingest:\n  source: data/raw/photos\ntag:\n  min_width: 64\npublish: {}\n"


def make_project(root: Path, params: str = PARAMS) -> Path:
    (root / "pipelines").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "pipelines" / "main.yaml").write_text(PIPELINE)
    (root / "params.yaml").write_text(params)
    (root / "configs" / "labels.txt").write_text("small\n")
    shutil.copy(HERE.parent / "fixtures" / "custom_stages.py", root / "custom_stages.py")
    return root


def test_golden_dvc_yaml(tmp_path: Path) -> None:
    pipeline = load_pipeline(make_project(tmp_path), "pipelines/main.yaml")
    assert render(pipeline) == (HERE / "golden" / "main.dvc.yaml.golden").read_text()


def test_compile_is_byte_stable_across_runs_and_folders(tmp_path: Path) -> None:
    first = make_project(tmp_path / "a")
    second = make_project(tmp_path / "elsewhere" / "b")
    compile_pipeline(load_pipeline(first, "pipelines/main.yaml"))
    before = (first / "dvc.yaml").read_bytes()
    assert not compile_pipeline(load_pipeline(first, "pipelines/main.yaml"))  # unchanged
    assert (first / "dvc.yaml").read_bytes() == before
    compile_pipeline(load_pipeline(second, "pipelines/main.yaml"))
    assert (second / "dvc.yaml").read_bytes() == before


def test_sources_outside_the_project_and_urls_are_deps(tmp_path: Path) -> None:
    outside = tmp_path / "shared photos"
    root = make_project(tmp_path / "p", PARAMS.replace("data/raw/photos", str(outside)))
    text = render(load_pipeline(root, "pipelines/main.yaml"))
    assert f"    - {outside.as_posix()}\n" in text
    root = make_project(tmp_path / "q", PARAMS.replace("data/raw/photos", "s3://bucket/photos"))
    assert "    - s3://bucket/photos\n" in render(load_pipeline(root, "pipelines/main.yaml"))


def test_check_names_the_stale_stage(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    compile_pipeline(load_pipeline(root, "pipelines/main.yaml"))
    assert compile_pipeline(load_pipeline(root, "pipelines/main.yaml"), check=True)
    (root / "params.yaml").write_text(PARAMS.replace("data/raw/photos", "data/raw/other"))
    with pytest.raises(PixelpipeError, match=r"^dvc.yaml is stale: stage 'ingest' differs in deps"):
        compile_pipeline(load_pipeline(root, "pipelines/main.yaml"), check=True)
    (root / "dvc.yaml").unlink()
    with pytest.raises(PixelpipeError, match=r"^dvc.yaml is missing"):
        compile_pipeline(load_pipeline(root, "pipelines/main.yaml"), check=True)


def test_check_notices_hand_edits(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    compile_pipeline(load_pipeline(root, "pipelines/main.yaml"))
    path = root / "dvc.yaml"
    path.write_text(path.read_text() + "# my note\n")
    with pytest.raises(PixelpipeError, match="edited by hand"):
        compile_pipeline(load_pipeline(root, "pipelines/main.yaml"), check=True)


@pytest.mark.parametrize(
    "text",
    [
        "- a\n- b\n",  # a list, not a mapping
        "stages: [ingest]\n",  # stages as a list
        "just text\n",  # a scalar
        "stages: {\n",  # not YAML
    ],
)
def test_check_of_a_mangled_dvc_yaml_is_one_line(tmp_path: Path, text: str) -> None:
    root = make_project(tmp_path)
    (root / "dvc.yaml").write_text(text)
    with pytest.raises(PixelpipeError, match=r"^dvc.yaml is stale: dvc.yaml is not"):
        compile_pipeline(load_pipeline(root, "pipelines/main.yaml"), check=True)


def test_the_repository_dvc_yaml_is_current() -> None:
    root = HERE.parents[1]
    assert compile_pipeline(load_pipeline(root), check=True)


@pytest.mark.parametrize("name", ["review", "model-loop"])
def test_golden_dvc_yaml_of_the_other_pipelines(tmp_path: Path, name: str) -> None:
    """The repository's other pipelines, each with its own params file, compile as recorded."""
    repo = HERE.parents[1]
    (tmp_path / "pipelines").mkdir()
    for file in (f"{name}.yaml", f"{name}.params.yaml"):
        shutil.copy(repo / "pipelines" / file, tmp_path / "pipelines" / file)
    pipeline = load_pipeline(tmp_path, f"pipelines/{name}.yaml")
    assert pipeline.params_file == f"pipelines/{name}.params.yaml"
    assert render(pipeline) == (HERE / "golden" / f"{name}.dvc.yaml.golden").read_text()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # outside the project
        ("../params.yaml", "a .yaml file inside the project"),
        # absolute
        ("/etc/params.yaml", "a .yaml file inside the project"),
        # not YAML
        ("params.json", "a .yaml file inside the project"),
    ],
)
def test_a_pipeline_params_file_must_be_yaml_inside_the_project(
    tmp_path: Path, value: str, message: str
) -> None:
    root = make_project(tmp_path)
    text = (root / "pipelines" / "main.yaml").read_text()
    (root / "pipelines" / "main.yaml").write_text(f"params: {value}\n{text}")
    with pytest.raises(PixelpipeError, match=rf"pipelines/main.yaml:1 params: .*{message}"):
        load_pipeline(root, "pipelines/main.yaml")


def test_a_missing_entry_names_the_pipelines_own_params_file(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / "own.yaml").write_text("ingest: {}\ntag: {}\n")
    text = (root / "pipelines" / "main.yaml").read_text()
    (root / "pipelines" / "main.yaml").write_text(f"params: own.yaml\n{text}")
    with pytest.raises(PixelpipeError, match=r"own.yaml: no entry for stage 'publish'"):
        load_pipeline(root, "pipelines/main.yaml")


def test_a_missing_file_a_later_stage_reads_is_a_compile_error(tmp_path: Path) -> None:
    """DVC would refuse the stage in its own words: say which param names the file."""
    repo = HERE.parents[1]
    (tmp_path / "pipelines").mkdir()
    for file in ("model-loop.yaml", "model-loop.params.yaml"):
        shutil.copy(repo / "pipelines" / file, tmp_path / "pipelines" / file)
    pipeline = load_pipeline(tmp_path, "pipelines/model-loop.yaml")
    with pytest.raises(
        PixelpipeError,
        match=r"pipelines/model-loop.params.yaml route.reviewed: reviews/route.json does not "
        r"exist, and DVC needs every dependency to",
    ):
        compile_pipeline(pipeline)
    (tmp_path / "reviews").mkdir()
    (tmp_path / "reviews" / "route.json").write_text('{"format": 1, "reviews": {}}\n')
    assert compile_pipeline(pipeline)  # the source folders need not exist yet
