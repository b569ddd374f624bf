"""The generated stage reference is current, and every param is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelpipe.engine.registry import builtin_names, resolve
from pixelpipe.project.reference import markdown

REPO = Path(__file__).resolve().parents[2]


def test_docs_stages_md_is_current() -> None:
    current = (REPO / "docs" / "stages.md").read_text()
    assert current == markdown(), "run `pixelpipe stages --markdown > docs/stages.md`"


@pytest.mark.parametrize("kind", builtin_names())
def test_every_param_is_documented_and_defaults_work(kind: str) -> None:
    found = resolve(kind)
    undocumented = [n for n, f in found.params.model_fields.items() if not f.description]
    assert not undocumented, f"{kind}: document {undocumented}"
    assert found.params.model_config.get("extra") == "forbid"
    assert found.params.model_config.get("frozen") is True
    found.params()  # every default works
    assert "```yaml" in found.doc, f"{kind}: the docstring shows its YAML"
