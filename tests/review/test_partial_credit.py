"""Partial credit in agreement with a taxonomy: sedan and suv under car under vehicle agree 2/3.

The credit of two classes is the depth of their lowest common ancestor over the deeper
depth. Matched boxes (and image labels) of differing classes earn it instead of 0, reported
as ``hierarchical_agreement`` (the mean over the matched pairs, per annotator pair and
overall) beside the existing figures, which stay as they were. Checked on hand-made
files, through ``pixelpipe agreement --taxonomy`` and through the ``agreement`` stage.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from steps import after_source

from pixelpipe.dataset import Annotation, Category, Dataset, Sample
from pixelpipe.engine.runner import run_stage
from pixelpipe.errors import PixelpipeError
from pixelpipe.quality.credit import CreditTable, label_credit
from pixelpipe.quality.inputs import QualityInputError
from pixelpipe.review.inputs import read_inputs
from pixelpipe.review.measure import NO_LABEL, agreement
from pixelpipe.taxonomy import Taxonomy, load

Run = Callable[..., subprocess.CompletedProcess[str]]
TAXONOMY = """\
classes:
  vehicle: {}
  car: {parent: vehicle, synonyms: [automobile]}
  sedan: {parent: car}
  suv: {parent: car}
  truck: {parent: vehicle}
  animal: {}
  cat: {parent: animal}
"""
NAMES = ["sedan", "suv", "truck", "cat", "car", "automobile", "boat"]
CATEGORIES: list[dict[str, Any]] = [{"id": i, "name": n} for i, n in enumerate(NAMES, start=1)]


@pytest.fixture
def taxonomy(tmp_path: Path) -> Taxonomy:
    path = tmp_path / "vehicles.yaml"
    path.write_text(TAXONOMY)
    return load(path, "vehicles.yaml")


CREDITS = [
    ("sedan", "suv", 2 / 3),  # siblings under car (depth 2) at depth 3
    ("sedan", "car", 2 / 3),  # a class and its parent: car is 2 of sedan's 3 levels
    ("sedan", "truck", 1 / 3),  # cousins under vehicle only
    ("sedan", "cat", 0.0),  # no common ancestor
    ("automobile", "car", 1.0),  # a synonym is its class
    ("automobile", "suv", 2 / 3),  # ... and earns what its class earns
    ("boat", "sedan", 0.0),  # a class the taxonomy does not know earns nothing
    ("boat", "boat", 1.0),  # ... but the same label is agreement
    ("sedan", "sedan", 1.0),  # the same class
]


@pytest.mark.parametrize(("a", "b", "expected"), CREDITS)
def test_the_credit_of_two_classes(taxonomy: Taxonomy, a: str, b: str, expected: float) -> None:
    table = CreditTable(taxonomy.credit)
    assert table.of(a, b) == pytest.approx(expected)
    assert table.of(b, a) == pytest.approx(expected)


def test_a_credit_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(QualityInputError, match=r"credit of 'a' and 'b' must be in \[0, 1\]"):
        CreditTable(lambda a, b: 1.5).of("a", "b")


def test_image_label_credit_skips_pairs_where_one_gave_no_label(taxonomy: Taxonomy) -> None:
    rows: list[list[str | None]] = [
        ["sedan", "suv", "sedan"],  # 2/3, 1, 2/3
        ["cat", NO_LABEL, "cat"],  # ann|cleo 1; ben saw it and gave no label: not compared
        ["truck", None, None],  # only ann rated it: nothing to compare
    ]
    found = label_credit(rows, ["ann", "ben", "cleo"], taxonomy.credit, {NO_LABEL})
    assert found["hierarchical_agreement"] == pytest.approx((2 / 3 + 1 + 2 / 3 + 1) / 4)
    assert found["hierarchical_pairs_compared"] == 4
    pairs = found["hierarchical_agreement_pairs"]
    assert pairs["ann|ben"] == pytest.approx(2 / 3)
    assert pairs["ann|cleo"] == 1.0
    assert pairs["ben|cleo"] == pytest.approx(2 / 3)


def _coco(path: Path, boxes: dict[str, list[tuple[str, list[float]]]]) -> str:
    """A COCO file: per image, its (class, box) labels; every image 100 x 80."""
    ids = {c["name"]: c["id"] for c in CATEGORIES}
    images = [
        {"id": i, "file_name": name, "width": 100, "height": 80}
        for i, name in enumerate(boxes, start=1)
    ]
    annotations = [
        {"id": i * 100 + n, "image_id": i, "category_id": ids[c], "bbox": b}
        for i, name in enumerate(boxes, start=1)
        for n, (c, b) in enumerate(boxes[name])
    ]
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES})
    )
    return str(path)


def _two_annotators(folder: Path) -> list[str]:
    """alice and bob: one sedan/suv pair, one truck/truck pair, one box only alice drew."""
    alice: dict[str, list[tuple[str, list[float]]]] = {
        "a.jpg": [("sedan", [10, 10, 30, 20])],
        "b.jpg": [("truck", [0, 0, 50, 40]), ("cat", [60, 50, 20, 20])],
    }
    bob: dict[str, list[tuple[str, list[float]]]] = {
        "a.jpg": [("suv", [11, 10, 30, 20])],
        "b.jpg": [("truck", [1, 1, 50, 40])],
    }
    return [_coco(folder / "alice.json", alice), _coco(folder / "bob.json", bob)]


def _without_credit(result: dict[str, Any]) -> dict[str, Any]:
    """The result less what the taxonomy adds."""
    out = {k: v for k, v in result.items() if k not in ("hierarchical_agreement", "taxonomy")}
    boxes = dict(out["boxes"])
    boxes.pop("hierarchical_agreement")
    boxes["pairs"] = {
        name: {k: v for k, v in pair.items() if k != "hierarchical_agreement"}
        for name, pair in boxes["pairs"].items()
    }
    out["boxes"] = boxes
    out["notes"] = [n for n in out["notes"] if "taxonomy" not in n]
    return out


def test_matched_boxes_of_sibling_classes_earn_two_thirds(
    tmp_path: Path, taxonomy: Taxonomy
) -> None:
    gathered, _ = read_inputs(_two_annotators(tmp_path))
    plain = agreement(gathered)
    result = agreement(gathered, taxonomy=taxonomy)
    pair = result["boxes"]["pairs"]["alice|bob"]
    assert (pair["matched"], pair["label_mismatch"], pair["unmatched_a"]) == (1, 1, 1)
    # sedan/suv earns 2/3, truck/truck 1; alice's lone cat is no matched pair
    assert pair["hierarchical_agreement"] == pytest.approx((2 / 3 + 1) / 2)
    assert result["boxes"]["hierarchical_agreement"] == pytest.approx(5 / 6)
    assert result["hierarchical_agreement"] == pytest.approx(5 / 6)  # statistics over boxes
    assert result["taxonomy"] == {
        "file": "vehicles.yaml",
        "levels": 3,
        "not_in_taxonomy": ["boat"],
    }
    assert any("boat" in note and "vehicles.yaml" in note for note in result["notes"])
    # the existing figures do not change, and without a taxonomy nothing is added
    assert _without_credit(result) == plain
    assert "hierarchical_agreement" not in plain
    assert "hierarchical_agreement" not in plain["boxes"]["pairs"]["alice|bob"]


def test_the_one_sedan_and_suv_pair_is_two_thirds(tmp_path: Path, taxonomy: Taxonomy) -> None:
    a = _coco(tmp_path / "ann.json", {"p.jpg": [("sedan", [0, 0, 10, 10])]})
    b = _coco(tmp_path / "ben.json", {"p.jpg": [("suv", [0, 0, 10, 10])]})
    gathered, _ = read_inputs([a, b])
    result = agreement(gathered, taxonomy=taxonomy)
    assert result["box_f1"] == 0.0  # unchanged: a label mismatch is no match
    assert result["hierarchical_agreement"] == pytest.approx(2 / 3)


def test_image_labels_from_a_csv_earn_partial_credit(tmp_path: Path, taxonomy: Taxonomy) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "item,annotator,label\n"
        "i1.jpg,ann,sedan\ni1.jpg,ben,suv\ni1.jpg,cleo,sedan\n"
        "i2.jpg,ann,cat\ni2.jpg,ben,\ni2.jpg,cleo,cat\n"
    )
    gathered, _ = read_inputs([str(path)])
    result = agreement(gathered, taxonomy=taxonomy)
    assert result["statistics_over"] == "image_labels"
    assert result["hierarchical_agreement"] == pytest.approx(5 / 6)
    labels = result["image_labels"]
    assert labels["hierarchical_agreement_pairs"]["ann|ben"] == pytest.approx(2 / 3)
    assert labels["hierarchical_pairs_compared"] == 4
    assert labels["percent_agreement"] == agreement(gathered)["percent_agreement"]


def test_the_command_reports_hierarchical_agreement(tmp_path: Path, run: Run) -> None:
    (tmp_path / "vehicles.yaml").write_text(TAXONOMY)
    files = _two_annotators(tmp_path)
    args = ["pixelpipe", "agreement", *files, "--json", "with.json", "--report", "page.html"]
    result = run([*args, "--taxonomy", "vehicles.yaml"], tmp_path)
    figures = json.loads((tmp_path / "with.json").read_text())
    assert figures["hierarchical_agreement"] == pytest.approx(5 / 6)
    assert figures["boxes"]["pairs"]["alice|bob"]["hierarchical_agreement"] == pytest.approx(5 / 6)
    assert "  hierarchical_agreement: 0.833" in result.stdout
    assert "hierarchical agreement" in (tmp_path / "page.html").read_text()
    plain = run(["pixelpipe", "agreement", *files], tmp_path)
    assert "hierarchical" not in plain.stdout


MISTAKES = [
    # a taxonomy file that is not there
    ("nothere.yaml", None, "error: nothere.yaml: no such file"),
    # a taxonomy whose class names a parent it does not have: the file, line and key
    (
        "bad.yaml",
        TAXONOMY.replace("{parent: car}", "{parent: kar}", 1),
        "error: bad.yaml:4 classes.sedan.parent: unknown parent 'kar' (did you mean 'car'?)",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), MISTAKES)
def test_a_bad_taxonomy_is_one_error_line(
    tmp_path: Path, run: Run, name: str, text: str | None, message: str
) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)
    files = _two_annotators(tmp_path)
    result = run(["pixelpipe", "agreement", *files, "--taxonomy", name], tmp_path, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == message


def _labelled(annotator: str, category: int, box: tuple[float, ...]) -> Annotation:
    x, y, w, h = box
    return Annotation(category, (x, y, w, h), annotator=annotator)


def test_the_stage_reports_hierarchical_agreement_in_its_metrics(tmp_path: Path) -> None:
    categories = [Category(c["id"], c["name"]) for c in CATEGORIES]
    samples = [
        Sample(
            "a.jpg",
            "a.jpg",
            "0" * 64,
            100,
            80,
            "a.jpg",
            annotations=[
                _labelled("alice", 1, (10, 10, 30, 20)),  # sedan
                _labelled("bob", 2, (11, 10, 30, 20)),  # suv
            ],
        )
    ]
    root = after_source(
        tmp_path, samples, categories, "agreement", taxonomy="configs/taxonomy/vehicles.yaml"
    )
    (root / "configs" / "taxonomy").mkdir(parents=True)
    (root / "configs" / "taxonomy" / "vehicles.yaml").write_text(TAXONOMY)
    run_stage(root, "agreement", "pipelines/p.yaml", workers=1)
    report = json.loads((root / "data" / "agreement" / "report.json").read_text())
    assert report["hierarchical_agreement"] == pytest.approx(2 / 3)
    metrics = json.loads((root / "reports" / "agreement.json").read_text())
    assert metrics["hierarchical_agreement"] == pytest.approx(2 / 3)
    assert metrics["box_f1"] == 0.0
    assert Dataset(root / "data" / "agreement").table.num_rows == 1


def test_the_stage_refuses_a_bad_taxonomy_before_the_work(tmp_path: Path) -> None:
    categories = [Category(1, "sedan")]
    sample = Sample("a.jpg", "a.jpg", "0" * 64, 10, 10, "a.jpg")
    root = after_source(tmp_path, [sample], categories, "agreement", taxonomy="t.yaml")
    (root / "t.yaml").write_text("classes:\n  sedan: {parent: car}\n")
    with pytest.raises(PixelpipeError, match=r"t\.yaml"):
        run_stage(root, "agreement", "pipelines/p.yaml", workers=1)
    assert not (root / "data" / "agreement").exists()
