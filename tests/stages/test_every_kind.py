"""Every registered stage kind runs on a tiny dataset with its default params."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pixelpipe.dataset import Dataset
from pixelpipe.engine.registry import builtin_names, resolve
from pixelpipe.engine.runner import run_stage
from pixelpipe.project.demo import build

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PIPELINE = yaml.safe_load((REPO / "pipelines" / "default.yaml").read_text())["stages"]
TINY = (
    "cat.jpg",
    "cat_copy.jpg",
    "coffee.jpg",
    "coffee_small.jpg",
    "cameraman.jpg",
    "launchpad_truncated.jpg",
    "notes.jpg",
    "unlabelled/retina.jpg",
)


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few demo images, among them a duplicate, a truncated file and a non-image."""
    import json

    demo = Path(build(tmp_path_factory.mktemp("demo") / "demo")["path"])
    coco = json.loads((demo / "annotations.json").read_text())
    keep = {i["id"] for i in coco["images"] if i["file_name"] in TINY}
    coco["images"] = [i for i in coco["images"] if i["id"] in keep]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    (demo / "annotations.json").write_text(json.dumps(coco))
    for path in [p for p in (demo / "images").rglob("*") if p.is_file()]:
        if path.relative_to(demo / "images").as_posix() not in TINY:
            path.unlink()
    return demo


def _configs_for(kind: str) -> dict[str, str]:
    """The config files the repository's default pipeline gives a stage of this kind."""
    for spec in DEFAULT_PIPELINE.values():
        if spec["kind"] == kind:
            return dict(spec.get("configs") or {})
    return {}


@pytest.mark.parametrize("kind", builtin_names())
def test_kind_runs_on_a_tiny_dataset(kind: str, tiny_source: Path, tmp_path: Path) -> None:
    found = resolve(kind)
    configs = _configs_for(kind)
    missing = set(found.configs) - set(configs)
    assert not missing, f"give '{kind}' its configs {missing} in pipelines/default.yaml"
    for path in configs.values():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    shutil.copytree(tiny_source, tmp_path / "data" / "raw" / "demo")
    stages: dict[str, dict[str, object]] = {"ingest": {"kind": "ingest"}}
    if kind != "ingest":
        stages["under_test"] = {
            "kind": kind,
            "configs": configs,
            "inputs": ["ingest"] * max(found.min_inputs, 1),
        }
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (tmp_path / "params.yaml").write_text("".join(f"{name}: {{}}\n" for name in stages))

    run_stage(tmp_path, "ingest", "pipelines/p.yaml", workers=1)
    name = "ingest" if kind == "ingest" else "under_test"
    if name != "ingest":
        run_stage(tmp_path, name, "pipelines/p.yaml", workers=1)
    dataset = Dataset(tmp_path / "data" / name)
    total = len(dataset) + dataset.removed().num_rows
    upstream = len(Dataset(tmp_path / "data" / "ingest"))
    assert total >= upstream if name != "ingest" else total == len(TINY)
    assert (tmp_path / "reports" / f"{name}.json").is_file()
