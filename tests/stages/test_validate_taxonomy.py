"""The taxonomy rules of ``validate`` (unknown_class, renamed_class, not_leaf), the class map's
parents and merges, the metrics per level, and a bad taxonomy stopping the stage."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from bounded import error_lines

from pixelpipe import Annotation, Category, DatasetBuilder, PixelpipeError, Sample
from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.taxonomy import Taxonomy, TaxonomyClass
from stages._validate.rules import RULES, TAXONOMY_RULES
from stages._validate.ruleset import load_ruleset
from stages._validate.taxonomy import level_counts, plan_classes

REPO = Path(__file__).resolve().parents[2]
DEMO_TAXONOMY = REPO / "configs" / "taxonomy" / "demo.yaml"
PIXELPIPE = str(Path(sys.executable).parent / "pixelpipe")


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about validation, not MLflow: no run is logged."""
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")


def _tree(leaf_only: bool = True) -> Taxonomy:
    """vehicle > car (automobile, auto) > sedan; vehicle > truck; animal > cat."""
    return Taxonomy(
        {
            "vehicle": TaxonomyClass("vehicle"),
            "car": TaxonomyClass("car", "vehicle", synonyms=("automobile", "auto")),
            "sedan": TaxonomyClass("sedan", "car"),
            "truck": TaxonomyClass("truck", "vehicle"),
            "animal": TaxonomyClass("animal"),
            "cat": TaxonomyClass("cat", "animal"),
        },
        leaf_only=leaf_only,
        source="tree.yaml",
    )


def _rule(rule_id: str, config: dict[str, Any]) -> Any:
    return RULES[rule_id].model_validate(config)


# --- the rules, one class at a time ----------------------------------------------------

CASES = [
    # unknown_class: a class the taxonomy lacks quarantines its samples by default.
    ("unknown_class", {}, "dog", True, "error"),
    # unknown_class: a class of the taxonomy passes.
    ("unknown_class", {}, "sedan", True, None),
    # unknown_class: a synonym is known (renamed_class deals with it).
    ("unknown_class", {"severity": "warn"}, "automobile", True, None),
    # renamed_class: a synonym is renamed to its class by default.
    ("renamed_class", {}, "automobile", True, "fix"),
    # renamed_class: or only reported.
    ("renamed_class", {"severity": "warn"}, "auto", True, "warn"),
    # renamed_class: the class's own name passes.
    ("renamed_class", {}, "car", True, None),
    # renamed_class: a name the taxonomy lacks is unknown_class's, not this rule's.
    ("renamed_class", {}, "dog", True, None),
    # not_leaf: with leaf_only, a class with subclasses is refused.
    ("not_leaf", {}, "vehicle", True, "error"),
    # not_leaf: a synonym of a class with subclasses too.
    ("not_leaf", {"severity": "warn"}, "automobile", True, "warn"),
    # not_leaf: a leaf passes.
    ("not_leaf", {}, "sedan", True, None),
    # not_leaf: without leaf_only, any level may be labelled.
    ("not_leaf", {}, "vehicle", False, None),
]


@pytest.mark.parametrize(
    ("rule_id", "config", "name", "leaf_only", "severity"),
    CASES,
    ids=[f"{c[0]}-{c[2]}-{c[4] or 'pass'}" for c in CASES],
)
def test_taxonomy_rule(
    rule_id: str, config: dict[str, Any], name: str, leaf_only: bool, severity: str | None
) -> None:
    plan = plan_classes(_tree(leaf_only), [Category(7, name)], {rule_id: _rule(rule_id, config)})
    annotations = [Annotation(7, (1.0, 2.0, 3.0, 4.0))]
    after, findings = plan.check(annotations)
    assert [(f.rule, f.severity, f.annotation) for f in findings] == (
        [(rule_id, severity, 0)] if severity else []
    )
    assert all(f.message.startswith(f"annotation 0 ({name}): ") for f in findings)
    assert all(f.boxes == ((1.0, 2.0, 3.0, 4.0),) and f.labels == (name,) for f in findings)
    assert after == annotations  # one class: nothing to re-point


def test_every_taxonomy_rule_has_a_table_row() -> None:
    for rule_id in TAXONOMY_RULES:
        rows = [c for c in CASES if c[0] == rule_id]
        assert any(r[4] is None for r in rows), f"no passing case for {rule_id}"
        assert any(r[4] is not None for r in rows), f"no failing case for {rule_id}"
        assert RULES[rule_id].SCOPE == "label"


def test_the_messages_name_the_class_the_taxonomy_and_a_fix() -> None:
    rules = {r: _rule(r, {}) for r in TAXONOMY_RULES}
    categories = [Category(1, "cta"), Category(2, "automobile"), Category(3, "vehicle")]
    plan = plan_classes(_tree(), categories, rules)
    _, findings = plan.check([Annotation(c.id, (0.0, 0.0, 1.0, 1.0)) for c in categories])
    assert [f.message for f in findings] == [
        "annotation 0 (cta): class 'cta' is not in the taxonomy tree.yaml (did you mean 'cat'?)",
        "annotation 1 (automobile): class 'automobile' is a synonym of 'car' in the taxonomy "
        "tree.yaml; renamed to 'car'",
        "annotation 1 (automobile): class 'car' has subclasses ('sedan'); the taxonomy asks "
        "for the most specific class (leaf_only)",
        "annotation 2 (vehicle): class 'vehicle' has subclasses ('car', 'truck'); the taxonomy "
        "asks for the most specific class (leaf_only)",
    ]


# --- the class map ---------------------------------------------------------------------

MAPS = [
    # A synonym alone is renamed in place: same id, the taxonomy's name and parent.
    ([Category(2, "automobile")], "fix", [Category(2, "car", "vehicle")], {}),
    # A synonym beside its class merges into the class; the annotations follow.
    (
        [Category(3, "automobile"), Category(2, "car")],
        "fix",
        [Category(2, "car", "vehicle")],
        {3: 2},
    ),
    # Two synonyms of one class merge into the lower id, renamed.
    (
        [Category(5, "automobile"), Category(4, "auto")],
        "fix",
        [Category(4, "car", "vehicle")],
        {5: 4},
    ),
    # The class itself stays the target even with a higher id than its synonym.
    (
        [Category(1, "auto"), Category(9, "car")],
        "fix",
        [Category(9, "car", "vehicle")],
        {1: 9},
    ),
    # Reported, not fixed: names kept, parents from the taxonomy, nothing merged.
    (
        [Category(3, "automobile"), Category(2, "car")],
        "warn",
        [Category(3, "automobile", "vehicle"), Category(2, "car", "vehicle")],
        {},
    ),
    # A root loses a parent the source gave it (COCO's person in person); a class the
    # taxonomy lacks keeps its own; a source parent is replaced by the taxonomy's.
    (
        [Category(1, "vehicle", "vehicle"), Category(8, "dog", "pets"), Category(6, "cat", "x")],
        "fix",
        [Category(1, "vehicle"), Category(8, "dog", "pets"), Category(6, "cat", "animal")],
        {},
    ),
]


@pytest.mark.parametrize(("categories", "severity", "expected", "target"), MAPS)
def test_the_output_class_map(
    categories: list[Category],
    severity: str,
    expected: list[Category],
    target: dict[int, int],
) -> None:
    rules = {"renamed_class": _rule("renamed_class", {"severity": severity})}
    plan = plan_classes(_tree(), categories, rules)
    assert plan.categories == expected
    assert dict(plan.target) == target
    ids = [c.id for c in categories]
    after, _ = plan.check([Annotation(i, (0.0, 0.0, 1.0, 1.0)) for i in ids])
    assert [a.category_id for a in after] == [target.get(i, i) for i in ids]


def test_level_counts_roll_instances_up_the_tree() -> None:
    counts = {"sedan": 3, "automobile": 2, "truck": 1, "vehicle": 4, "cat": 5, "dog": 7}
    assert level_counts(_tree(), counts) == {
        "level_1": {"vehicle": 10, "animal": 5},
        # A shallower class labelled directly stays itself; a leaf above the level too.
        "level_2": {"vehicle": 4, "car": 5, "truck": 1, "cat": 5},
        "level_3": {"vehicle": 4, "car": 2, "sedan": 3, "truck": 1, "cat": 5},
        "unknown": 7,
    }


# --- the stage -------------------------------------------------------------------------

PIPELINE = """\
stages:
  ingest:
    kind: ingest
  validate:
    kind: validate
    inputs: ingest
    configs:
      rules: configs/validation/rules.yaml
"""
RULES_FILE = """\
rules:
  unknown_class: error
  renamed_class: fix
  not_leaf: error
  duplicate_boxes: fix
  unlabelled: warn
"""
# The demo's class map with a synonym beside its class, a synonym alone, a class with
# subclasses and a class the taxonomy lacks.
CLASS_MAP = [
    Category(1, "person", "person"),
    Category(4, "motorcycle", "vehicle"),
    Category(17, "cat", "animal"),
    Category(30, "vehicle"),
    Category(40, "dog", "animal"),
    Category(47, "mug", "kitchen"),
    Category(90, "motorbike"),
]
BOX = (10.0, 10.0, 20.0, 20.0)


def _project(root: Path, rules: str = RULES_FILE, taxonomy: str | None = None) -> None:
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "v.yaml").write_text(PIPELINE)
    (root / "configs" / "validation").mkdir(parents=True)
    (root / "configs" / "validation" / "rules.yaml").write_text(rules)
    (root / "configs" / "taxonomy").mkdir()
    (root / "configs" / "taxonomy" / "demo.yaml").write_text(DEMO_TAXONOMY.read_text())
    params = f"{{taxonomy: {taxonomy}}}" if taxonomy is not None else "{}"
    (root / "params.yaml").write_text(f"ingest: {{}}\nvalidate: {params}\n")
    builder = DatasetBuilder(CLASS_MAP)
    samples = {
        "person.jpg": [1],
        "merged.jpg": [90, 4],  # a motorbike and a motorcycle on one box: one object
        "renamed.jpg": [47],
        "vehicle.jpg": [30, 1],
        "dog.jpg": [40],
        "empty.jpg": [],
    }
    for name, classes in samples.items():
        sha = hashlib.sha256(name.encode()).hexdigest()
        labels = [Annotation(c, BOX) for c in classes]
        builder.add(Sample(name, f"data/raw/{name}", sha, 64, 48, name, annotations=labels))
    write_dataset(
        root / "data" / "ingest", builder, stage="ingest", kind="ingest", params={}, inputs={}
    )


def _findings(root: Path) -> list[tuple[str, str, str]]:
    rows = pq.read_table(root / "data" / "validate" / "findings.parquet").to_pylist()
    return [(r["id"], r["rule"], r["severity"]) for r in rows]


def test_validate_with_the_demo_taxonomy(tmp_path: Path) -> None:
    _project(tmp_path, taxonomy="configs/taxonomy/demo.yaml")
    metrics = run_stage(tmp_path, "validate", "pipelines/v.yaml", workers=1)
    out = Dataset(tmp_path / "data" / "validate")
    assert [c.to_json() for c in out.categories] == [
        {"id": 1, "name": "person", "parent": "human"},
        {"id": 4, "name": "motorcycle", "parent": "vehicle"},
        {"id": 17, "name": "cat", "parent": "animal"},
        {"id": 30, "name": "vehicle", "parent": "object"},
        {"id": 40, "name": "dog", "parent": "animal"},  # unknown: its own parent kept
        {"id": 47, "name": "cup", "parent": "tableware"},
    ]
    rows = {r["id"]: r for r in out.table.to_pylist()}
    assert sorted(rows) == ["empty.jpg", "merged.jpg", "person.jpg", "renamed.jpg"]
    # The motorbike became a motorcycle, and then a duplicate of the other box.
    assert [a["category_id"] for a in rows["merged.jpg"]["annotations"]] == [4]
    assert rows["merged.jpg"]["validate_fixes"] == [
        "renamed_class: annotation 0 (motorbike): class 'motorbike' is a synonym of "
        "'motorcycle' in the taxonomy configs/taxonomy/demo.yaml; merged into 'motorcycle' "
        "(id 4)",
        "duplicate_boxes: annotation 1 (motorcycle): box [10, 10, 20, 20] repeats annotation "
        "0 [10, 10, 20, 20] (IoU 1.000); annotation dropped",
    ]
    assert [a["category_id"] for a in rows["renamed.jpg"]["annotations"]] == [47]
    assert rows["renamed.jpg"]["validate_fixes"] == [
        "renamed_class: annotation 0 (mug): class 'mug' is a synonym of 'cup' in the taxonomy "
        "configs/taxonomy/demo.yaml; renamed to 'cup'"
    ]
    removed = {r["id"]: r for r in out.removed().to_pylist()}
    assert removed["vehicle.jpg"]["reason"] == "not_leaf"
    assert removed["vehicle.jpg"]["detail"] == (
        "annotation 0 (vehicle): class 'vehicle' has subclasses ('motorcycle', 'rocket'); "
        "the taxonomy asks for the most specific class (leaf_only)"
    )
    assert removed["dog.jpg"]["reason"] == "unknown_class"
    assert (
        "class 'dog' is not in the taxonomy configs/taxonomy/demo.yaml"
        in (removed["dog.jpg"]["detail"])
    )
    assert ("merged.jpg", "renamed_class", "fix") in _findings(tmp_path)
    assert metrics["classes"] == {
        "person": 1,
        "motorcycle": 1,
        "cat": 0,
        "vehicle": 0,
        "dog": 0,
        "cup": 1,
    }
    assert metrics["taxonomy"] == {
        "level_1": {"object": 2, "living": 1},
        "level_2": {"vehicle": 1, "tableware": 1, "furnishing": 0, "human": 1, "animal": 0},
        "level_3": {
            "motorcycle": 1,
            "rocket": 0,
            "cup": 1,
            "spoon": 0,
            "clock": 0,
            "person": 1,
            "cat": 0,
        },
        "unknown": 0,
    }
    report = json.loads((tmp_path / "reports" / "validate.json").read_text())
    assert report["taxonomy"]["level_1"] == {"object": 2, "living": 1}
    assert "taxonomy_file" not in report  # text goes to dataset.json, metrics stay numbers


def test_a_synonym_only_reported_keeps_its_name_and_samples(tmp_path: Path) -> None:
    _project(
        tmp_path,
        RULES_FILE.replace("renamed_class: fix", "renamed_class: warn"),
        "configs/taxonomy/demo.yaml",
    )
    run_stage(tmp_path, "validate", "pipelines/v.yaml", workers=1)
    out = Dataset(tmp_path / "data" / "validate")
    names = {c.id: (c.name, c.parent) for c in out.categories}
    assert names[90] == ("motorbike", "vehicle") and names[47] == ("mug", "tableware")
    rows = {r["id"]: r for r in out.table.to_pylist()}
    assert [a["category_id"] for a in rows["merged.jpg"]["annotations"]] == [90, 4]
    assert rows["merged.jpg"]["validate_warnings"] == ["renamed_class"]
    assert rows["renamed.jpg"]["validate_fixes"] == []


def test_without_a_taxonomy_the_taxonomy_rules_are_off(tmp_path: Path) -> None:
    _project(tmp_path)
    metrics = run_stage(tmp_path, "validate", "pipelines/v.yaml", workers=1)
    out = Dataset(tmp_path / "data" / "validate")
    assert out.categories == CLASS_MAP  # names and parents as they came
    assert len(out.table) == 6 and "taxonomy" not in metrics
    assert {rule for _, rule, _ in _findings(tmp_path)} <= {"unlabelled"}
    plot = json.loads((tmp_path / "reports/plots/validate/findings.json").read_text())
    assert {row["rule"] for row in plot} == {"duplicate_boxes", "unlabelled"}


def test_a_bad_taxonomy_stops_the_stage_before_any_work(tmp_path: Path) -> None:
    _project(tmp_path, taxonomy="configs/taxonomy/demo.yaml")
    (tmp_path / "configs" / "taxonomy" / "demo.yaml").write_text(
        "classes:\n  vehicle: {}\n  motorcycle: {parent: vehicel}\n"
    )
    with pytest.raises(
        PixelpipeError,
        match=r"configs/taxonomy/demo\.yaml:3 classes\.motorcycle\.parent: unknown parent "
        r"'vehicel' \(did you mean 'vehicle'\?\)",
    ):
        run_stage(tmp_path, "validate", "pipelines/v.yaml", workers=1)
    assert not (tmp_path / "data" / "validate").exists()


def test_the_default_rule_set_names_the_taxonomy_rules() -> None:
    ruleset = load_ruleset(REPO / "configs" / "validation" / "default.yaml", "default.yaml")
    assert {r: ruleset.rules[r].severity for r in TAXONOMY_RULES} == {
        "unknown_class": "error",
        "renamed_class": "fix",
        "not_leaf": "error",
    }


def test_compile_refuses_a_broken_taxonomy_with_its_line(tmp_path: Path) -> None:
    _project(tmp_path, taxonomy="configs/taxonomy/demo.yaml")
    (tmp_path / "configs" / "taxonomy" / "demo.yaml").write_text(
        "classes:\n  vehicle: {}\n  car: {parent: vehicel}\n  sedan: {parent: car, synonym: [x]}\n"
    )
    lines = error_lines([PIXELPIPE, "compile", "--pipeline", "pipelines/v.yaml"], tmp_path)
    assert lines == [
        "configs/taxonomy/demo.yaml:3 classes.car.parent: unknown parent 'vehicel' "
        "(did you mean 'vehicle'?)",
        "configs/taxonomy/demo.yaml:4 classes.sedan.synonym: unknown key 'synonym' "
        "(did you mean 'synonyms'?)",
    ]
    assert not (tmp_path / "dvc.yaml").exists()
