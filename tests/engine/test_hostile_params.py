"""`pixelpipe compile` on hostile YAML in params.yaml and the pipeline file: one line, fast."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from bounded import error_lines

PIXELPIPE = str(Path(sys.executable).parent / "pixelpipe")
PIPELINE = "stages:\n  ingest:\n    kind: ingest\n"
PARAMS = "ingest:\n  source: data/raw\n"


def bomb(levels: int = 9, indent: str = "  ") -> str:
    """Ten nested anchors of ten aliases each: the last expands to 10^9 leaves."""
    rows = [f"{indent}a0: &a0 [{', '.join(['lol'] * 10)}]"]
    rows += [f"{indent}a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


CASES = [
    # The billion laughs under an unused key of params.yaml: refused on its line (the
    # fifth anchor, line 8), before the machine runs out of memory.
    (
        "params.yaml",
        PARAMS + "x:\n" + bomb(),
        r"params\.yaml:8: YAML expands to more than 100000 nodes through aliases "
        r"\(an alias bomb\?\)",
    ),
    # The bomb as a stage's params value.
    (
        "params.yaml",
        "bombs:\n" + bomb() + "ingest:\n  source: data/raw\n  classes: *a8\n",
        r"params\.yaml:6: YAML expands to more than 100000 nodes",
    ),
    # The bomb in the pipeline file (the fifth anchor is on line 9).
    (
        "pipelines/default.yaml",
        PIPELINE + "x:\n" + bomb(),
        r"pipelines/default\.yaml:9: YAML expands",
    ),
    # A Python tag in params.yaml: named with its line, never run.
    (
        "params.yaml",
        PARAMS + "  classes: !!python/object/apply:os.system ['touch pwned']\n",
        r"params\.yaml:3: invalid YAML: tag '!!python/object/apply:os\.system' is not allowed",
    ),
    # A value that refers to itself.
    ("params.yaml", PARAMS + "  classes: &c [a, *c]\n", r"params\.yaml:3: alias \*c is inside"),
    # Nesting deeper than Python's recursion (was a RecursionError traceback).
    (
        "params.yaml",
        PARAMS + "  classes: " + "[" * 3000 + "]" * 3000 + "\n",
        r"params\.yaml:3: YAML nests",
    ),
    # An integer of 5000 digits (was a ValueError traceback).
    ("params.yaml", PARAMS + "  seed: " + "9" * 5000 + "\n", r"params\.yaml:3: invalid YAML: '9"),
]


@pytest.mark.parametrize(("name", "text", "message"), CASES)
def test_compile_refuses_hostile_yaml_in_one_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines/default.yaml").write_text(PIPELINE)
    (tmp_path / "params.yaml").write_text(PARAMS)
    (tmp_path / name).write_text(text)
    lines = error_lines([PIXELPIPE, "compile"], tmp_path)
    assert len(lines) == 1 and re.match(message, lines[0]), lines
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "dvc.yaml").exists()
