"""A three-level taxonomy end to end on the demo: validate with it, publish at depths 1 and 2.

The demo goes through the real runner (ingest, validate with ``configs/taxonomy/demo.yaml``,
publish with ``class_depth``); every export is read back and must declare the classes of
the taxonomy at that depth and hold, per class, the instances of its descendants.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from exports import read_back

from pixelpipe.dataset import Dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.taxonomy import load

REPO = Path(__file__).resolve().parents[2]
TAXONOMY = "configs/taxonomy/demo.yaml"
FORMATS = ["coco", "yolo", "voc", "hf", "cvat", "labelstudio"]
PIPELINE = {
    "stages": {
        "ingest": {"kind": "ingest"},
        "validate": {
            "kind": "validate",
            "inputs": "ingest",
            "configs": {"rules": "configs/validation/default.yaml"},
        },
        "publish": {"kind": "publish", "inputs": "validate"},
    }
}


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory, demo_raw: Path) -> Path:
    """The demo ingested and validated with the demo taxonomy (publish not run yet)."""
    root = tmp_path_factory.mktemp("taxonomy")
    shutil.copytree(demo_raw, root / "data" / "raw" / "demo")
    for config in (TAXONOMY, "configs/validation/default.yaml"):
        (root / config).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / config, root / config)
    (root / "pipelines").mkdir()
    (root / "pipelines" / "t.yaml").write_text(yaml.safe_dump(PIPELINE))
    _params(root, class_depth=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIXELPIPE_TRACKING", "off")
        run_stage(root, "ingest", "pipelines/t.yaml", workers=1)
        metrics = run_stage(root, "validate", "pipelines/t.yaml", workers=1)
    assert metrics["taxonomy"]["unknown"] == 0
    return root


def _params(root: Path, class_depth: int | None) -> None:
    publish = {"formats": FORMATS, "taxonomy": TAXONOMY, "class_depth": class_depth}
    params = {"ingest": {}, "validate": {"taxonomy": TAXONOMY}, "publish": publish}
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def _counts(dataset: Dataset) -> Counter[str]:
    names = {c.id: c.name for c in dataset.categories}
    return Counter(names[a.category_id] for s in dataset.samples() for a in s.annotations)


def test_validate_gives_every_demo_class_its_parent(validated: Path) -> None:
    taxonomy = load(validated / TAXONOMY)
    out = Dataset(validated / "data" / "validate")
    assert out.categories and all(
        c.parent == taxonomy.ancestors(c.name)[-2] for c in out.categories
    )
    assert taxonomy.levels() == 3 and all(taxonomy.depth(c.name) == 3 for c in out.categories)


@pytest.mark.parametrize("depth", [1, 2])
def test_publish_at_a_depth_is_one_class_map_in_every_export(
    validated: Path, depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")
    _params(validated, class_depth=depth)
    shutil.rmtree(validated / "data" / "publish", ignore_errors=True)
    run_stage(validated, "publish", "pipelines/t.yaml", workers=1)
    taxonomy = load(validated / TAXONOMY)
    labelled = _counts(Dataset(validated / "data" / "validate"))
    expected: Counter[str] = Counter()
    for name, count in labelled.items():
        expected[taxonomy.at_depth(name, depth)] += count
    published = Dataset(validated / "data" / "publish")
    assert _counts(published) == expected
    assert all(taxonomy.depth(c.name) == depth for c in published.categories)
    for fmt in FORMATS:
        declared, found = read_back(validated / "data" / "publish" / fmt, fmt)
        assert found == expected, fmt
        assert set(expected) <= declared <= {c.name for c in published.categories}, fmt
