"""Pipeline and params errors: every one located as FILE:LINE key.path, all reported at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pixelpipe.engine.loader import load_pipeline
from pixelpipe.errors import PixelpipeError

PARAMS = "ingest: {}\npublish: {}\n"
GOOD = """\
stages:
  ingest:
    kind: ingest
  publish:
    kind: publish
    inputs: ingest
"""


def _load(tmp_path: Path, pipeline: str, params: str = PARAMS) -> list[str]:
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    (tmp_path / "pipelines" / "p.yaml").write_text(textwrap.dedent(pipeline))
    (tmp_path / "params.yaml").write_text(textwrap.dedent(params))
    with pytest.raises(PixelpipeError) as info:
        load_pipeline(tmp_path, "pipelines/p.yaml")
    return [str(p) for p in info.value.problems]


PIPELINE_ERRORS = [
    # A typo in a stage kind: the line of `kind`, and a did-you-mean.
    (
        "stages:\n  ingest:\n    kind: ingst\n  publish:\n    kind: publish\n    inputs: ingest\n",
        "pipelines/p.yaml:3 stages.ingest.kind: unknown stage kind 'ingst' (did you mean 'ingest'?)",
    ),
    # A typo in a key of a stage.
    (
        "stages:\n  ingest:\n    kind: ingest\n  publish:\n    kind: publish\n    inptus: ingest\n",
        "pipelines/p.yaml:6 stages.publish.inptus: unknown key 'inptus' (did you mean 'inputs'?)",
    ),
    # An input that names no stage.
    (
        "stages:\n  ingest:\n    kind: ingest\n  publish:\n    kind: publish\n    inputs: [ingets]\n",
        "pipelines/p.yaml:6 stages.publish.inputs[0]: no stage named 'ingets' (did you mean 'ingest'?)",
    ),
    # A stage reading itself.
    (
        "stages:\n  ingest:\n    kind: ingest\n  publish:\n    kind: publish\n    inputs: publish\n",
        "pipelines/p.yaml:6 stages.publish.inputs[0]: a stage cannot read its own output",
    ),
    # Two stages with one name: YAML would silently keep the last one.
    (
        "stages:\n  ingest:\n    kind: ingest\n  ingest:\n    kind: ingest\n  publish:\n"
        "    kind: publish\n    inputs: ingest\n",
        "pipelines/p.yaml:4 stages.ingest: duplicate key",
    ),
    # A Python tag is never constructed.
    (
        "stages:\n  ingest:\n    kind: !!python/object/apply:os.system ['true']\n",
        "pipelines/p.yaml:3: invalid YAML: tag '!!python/object/apply:os.system' is not allowed",
    ),
    # A syntax error names its line.
    (
        "stages:\n  ingest:\n    kind: ingest\n   publish: [\n",
        "pipelines/p.yaml:4: invalid YAML:",
    ),
    # A stage without a kind.
    (
        "stages:\n  ingest:\n    kind: ingest\n  publish:\n    inputs: ingest\n",
        "pipelines/p.yaml:4 stages.publish.kind: required key is missing",
    ),
    # A source stage given an input.
    (
        "stages:\n  ingest:\n    kind: ingest\n    inputs: publish\n  publish:\n    kind: publish\n"
        "    inputs: ingest\n",
        "pipelines/p.yaml:4 stages.ingest.inputs: stage kind 'ingest' takes no inputs, got 1",
    ),
    # A top-level typo.
    (
        "stage:\n  ingest:\n    kind: ingest\n",
        "pipelines/p.yaml:1 stages: a pipeline needs a 'stages' mapping of name -> stage",
    ),
    # A name that would collide with the source-data folder.
    (
        "stages:\n  raw:\n    kind: ingest\n",
        "pipelines/p.yaml:2 stages.raw: 'raw' is reserved (data/raw holds source data)",
    ),
    # A name that cannot be a folder or a DVC stage name.
    (
        "stages:\n  my stage:\n    kind: ingest\n",
        "pipelines/p.yaml:2 stages.my stage: stage names use letters, digits, '-' and '_' only",
    ),
    # A kind named module:attr whose module does not exist.
    (
        "stages:\n  ingest:\n    kind: nosuchmodule:step\n",
        "pipelines/p.yaml:3 stages.ingest.kind: stage kind 'nosuchmodule:step': no module named "
        "'nosuchmodule'",
    ),
]


@pytest.mark.parametrize(("pipeline", "expected"), PIPELINE_ERRORS)
def test_pipeline_errors_are_located(tmp_path: Path, pipeline: str, expected: str) -> None:
    problems = _load(tmp_path, pipeline, "ingest: {}\npublish: {}\nraw: {}\nmy stage: {}\n")
    assert any(p.startswith(expected) for p in problems), problems


def test_cycle_is_reported(tmp_path: Path) -> None:
    pipeline = """\
    stages:
      ingest:
        kind: ingest
      a:
        kind: publish
        inputs: b
      b:
        kind: publish
        inputs: a
    """
    problems = _load(tmp_path, pipeline, "ingest: {}\na: {}\nb: {}\n")
    assert any("inputs form a cycle: a -> b -> a" in p for p in problems), problems


PARAMS_ERRORS = [
    # A value of the wrong type, on the line of the value's key.
    (
        "ingest:\n  max_pixels: lots\npublish: {}\n",
        "params.yaml:2 ingest.max_pixels: input should be a valid integer",
    ),
    # A typo in a param name.
    (
        "ingest:\n  sorce: data/x\npublish: {}\n",
        "params.yaml:2 ingest.sorce: unknown key 'sorce' (did you mean 'source'?)",
    ),
    # A choice that is not offered, inside a list.
    (
        "ingest: {}\npublish:\n  formats: [cocoo]\n",
        "params.yaml:3 publish.formats[0]: input should be 'coco'",
    ),
    # A key for a stage that does not exist.
    (
        "ingest: {}\npublish: {}\npublsh: {}\n",
        "params.yaml:3 publsh: no stage named 'publsh' in the pipeline (did you mean 'publish'?)",
    ),
    # A stage with no entry: DVC could not track its params.
    ("ingest: {}\n", "params.yaml: no entry for stage 'publish'; add `publish: {}`"),
]


@pytest.mark.parametrize(("params", "expected"), PARAMS_ERRORS)
def test_params_errors_are_located(tmp_path: Path, params: str, expected: str) -> None:
    problems = _load(tmp_path, GOOD, params)
    assert any(p.startswith(expected) for p in problems), problems


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    pipeline = "stages:\n  ingest:\n    kind: ingst\n  publish:\n    kind: publsh\n    inputs: x\n"
    problems = _load(tmp_path, pipeline, "ingest:\n  sorce: 1\npublish: {}\n")
    assert len(problems) == 3, problems
    assert [p.split(" ")[0] for p in problems] == [
        "pipelines/p.yaml:3",
        "pipelines/p.yaml:5",
        "pipelines/p.yaml:6",
    ]


def test_a_good_pipeline_loads_in_dependency_order(tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yaml").write_text(
        "stages:\n  publish:\n    kind: publish\n    inputs: ingest\n  ingest:\n    kind: ingest\n"
    )
    (tmp_path / "params.yaml").write_text("ingest:\n  max_pixels: 8\npublish:\n")
    pipeline = load_pipeline(tmp_path, "pipelines/p.yaml")
    assert [s.name for s in pipeline.stages] == ["ingest", "publish"]
    assert pipeline.stage("ingest").params.max_pixels == 8  # type: ignore[attr-defined]
    with pytest.raises(
        PixelpipeError, match=r"no stage named 'publsh' \(did you mean 'publish'\?\)"
    ):
        pipeline.stage("publsh")


def test_missing_pipeline_file(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"^pipelines/none.yaml: file not found$"):
        load_pipeline(tmp_path, "pipelines/none.yaml")
