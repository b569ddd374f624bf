"""Exported files are part of a version: its digest covers them, diff names them, and a
tampered copy is refused. Real git, DVC and pixelpipe commands on the demo data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from shell import sh

from pixelpipe import Dataset, PixelpipeError
from pixelpipe.lineage import log_dataset

pytestmark = pytest.mark.e2e

PIPELINE = (
    "stages:\n  ingest:\n    kind: ingest\n  publish:\n    kind: publish\n    inputs: ingest\n"
)


def set_publish(root: Path, **values: object) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["publish"].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def commit_and_release(root: Path, version: str) -> None:
    sh(["dvc", "repro", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", version], root)
    sh(["pixelpipe", "release", version], root)


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 publishes COCO with the source's ids; v2 only changes the ids written (zero-based)."""
    base = tmp_path_factory.mktemp("exports")
    root = base / "project"
    sh(["pixelpipe", "init", str(root)], base)
    sh(["pixelpipe", "demo"], root)
    (root / "pipelines" / "default.yaml").write_text(PIPELINE, encoding="utf-8")
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    kept = {"ingest": params["ingest"], "publish": params["publish"]}
    (root / "params.yaml").write_text(yaml.safe_dump(kept, sort_keys=False), encoding="utf-8")
    sh(["pixelpipe", "compile"], root)
    commit_and_release(root, "v1")
    set_publish(root, category_ids="zero_based")
    commit_and_release(root, "v2")
    return root


def test_the_digest_covers_the_exported_files(released: Path) -> None:
    data = Dataset(released / "data" / "publish")
    listed = data.files().column("path").to_pylist()
    assert "coco/annotations/instances_unassigned.json" in listed and "class_map.json" in listed
    assert not any(p.startswith("images/") or p in ("README.md", "dataset.json") for p in listed)
    assert data.info["files"]["count"] == len(listed)
    data.verify()  # what was written is what is listed


def test_an_id_policy_change_is_a_new_digest_and_diff_names_the_exports(released: Path) -> None:
    result = json.loads(sh(["pixelpipe", "diff", "v1", "v2", "--json"], released).stdout)
    assert result["identical"] is False
    assert result["a"]["digest"] != result["b"]["digest"]
    assert result["images"] == {"added": [], "removed": [], "changed": []}
    assert "coco/annotations/instances_unassigned.json" in result["files"]["changed"]
    assert "class_map.json" in result["files"]["changed"]
    shown = sh(["pixelpipe", "diff", "v1", "v2"], released).stdout
    assert "exported files" in shown and "identical content" not in shown


def test_a_tampered_export_is_refused(released: Path, tmp_path: Path) -> None:
    copy = tmp_path / "v1"
    sh(["pixelpipe", "get", "v1", "--out", str(copy)], released)
    Dataset(copy).verify()  # the copy as fetched is whole
    coco = copy / "coco" / "annotations" / "instances_unassigned.json"
    document = json.loads(coco.read_text(encoding="utf-8"))
    document["annotations"].pop()
    coco.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(
        PixelpipeError, match=r"coco/annotations/instances_unassigned\.json: content differs"
    ):
        log_dataset(copy, root=released)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # an exported image removed
        (lambda d: next((d / "coco" / "images" / "unassigned").iterdir()).unlink(), "missing"),
        # a file added beside the exports
        (lambda d: (d / "coco" / "extra.txt").write_text("x"), "coco/extra.txt: not part of"),
        # the class map rewritten
        (lambda d: (d / "class_map.json").write_text("[]\n"), "class_map.json: content differs"),
    ],
)
def test_every_export_change_is_named(
    released: Path, tmp_path: Path, change: object, message: str
) -> None:
    copy = tmp_path / "v2"
    sh(["pixelpipe", "get", "v2", "--out", str(copy)], released)
    change(copy)  # type: ignore[operator]
    with pytest.raises(PixelpipeError, match=message):
        Dataset(copy).verify()


PLOTS = [
    # (plot, the field on the y axis, what each row also holds)
    ("instances", "class_split", {"class", "split", "instances"}),  # per class and split
    ("images", "split", {"images", "boxes"}),  # per split
    ("box_sizes", "size_split", {"size", "split", "boxes"}),  # sqrt(w*h) bins per split
    ("box_aspects", "aspect_split", {"aspect", "split", "boxes"}),  # w/h bins per split
]


@pytest.mark.parametrize(("plot", "y", "fields"), PLOTS)
def test_dvc_plots_render_and_diff_across_versions(
    released: Path, plot: str, y: str, fields: set[str]
) -> None:
    path = f"reports/plots/publish/{plot}.json"
    rows = json.loads((released / path).read_text())
    assert rows and {y, *fields} <= set(rows[0])
    shown = json.loads(sh(["dvc", "plots", "show", "--json"], released).stdout)
    (entry,) = shown["data"][path]
    assert entry["type"] == "vega"
    assert {v[y] for v in entry["content"]["data"]["values"]} == {r[y] for r in rows}
    diffed = json.loads(sh(["dvc", "plots", "diff", "v1", "v2", "--json"], released).stdout)
    (entry,) = diffed["data"][path]
    assert set(entry["revisions"]) == {"v1", "v2"}


def test_metrics_hold_numbers_only(released: Path) -> None:
    def leaves(value: object) -> list[object]:
        if isinstance(value, dict):
            return [leaf for v in value.values() for leaf in leaves(v)]
        return [value]

    for report in (released / "reports").glob("*.json"):
        values = leaves(json.loads(report.read_text()))
        assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values), report
    notes = json.loads((released / "data/publish/dataset.json").read_text()).get("notes", {})
    assert "digest" not in json.loads((released / "reports/publish.json").read_text())
    assert isinstance(notes, dict)
