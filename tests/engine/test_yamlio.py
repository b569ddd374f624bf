"""Safe YAML with positions."""

from __future__ import annotations

import pytest

from pixelpipe.engine.yamlio import load_text
from pixelpipe.errors import PixelpipeError

CASES = [
    # A custom tag is refused, not constructed, and named as written.
    ("a: !env HOME\n", r"^x.yaml:1: invalid YAML: tag '!env' is not allowed \(.*no tags\)$"),
    # A duplicate key deep inside is reported where it is.
    ("a:\n  b: 1\n  c: 2\n  b: 3\n", r"^x.yaml:4 a.b: duplicate key$"),
    # Tabs are a syntax error with a line.
    ("a:\n\tb: 1\n", r"^x.yaml:2: invalid YAML: found character '\\t'"),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_bad_yaml(text: str, message: str) -> None:
    with pytest.raises(PixelpipeError, match=message):
        load_text(text, "x.yaml")


def test_lines_of_keys_and_items_and_merge_keys() -> None:
    doc = load_text(
        "base: &b\n  x: 1\nstages:\n  s:\n    <<: *b\n    inputs:\n    - a\n    - b\n", "y"
    )
    assert doc.data["stages"]["s"] == {"x": 1, "inputs": ["a", "b"]}
    assert doc.line_of(("stages", "s", "inputs", 1)) == 8
    assert doc.line_of(("stages", "s", "missing")) == 4  # nearest located ancestor
    assert str(doc.problem(("stages", "s", "inputs", 0), "bad")) == "y:7 stages.s.inputs[0]: bad"


def test_empty_document() -> None:
    assert load_text("", "e").data is None
