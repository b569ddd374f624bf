"""Publish at a depth of the class hierarchy: one flattened class map in the manifest and every export.

A small dataset labelled with the leaves of a three-level taxonomy (vehicle > car > sedan)
is published at depths 1, 2, 3 and 5 by the real runner, in every export format; each
export is read back (pixelpipe's readers, the Hugging Face shards' own metadata) and must
hold the class names and the counts per class of the manifest publish wrote. The demo and
``detection/coco256`` are published at depth 1 from their COCO supercategories.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from exports import read_back
from PIL import Image
from steps import after_source, ingest, serial_context

from pixelpipe.dataset import (
    Annotation,
    Category,
    Dataset,
    DatasetBuilder,
    Sample,
    write_dataset,
)
from pixelpipe.engine.compile import compile_pipeline
from pixelpipe.engine.loader import load_pipeline
from pixelpipe.engine.registry import resolve
from pixelpipe.engine.runner import run_stage
from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.imagefolder import IMAGE_LABEL, class_of
from stages._publish.depth import class_map, repoint

FORMATS = ["coco", "yolo", "voc", "imagefolder", "hf", "cvat", "labelstudio"]
TAXONOMY = """\
classes:
  vehicle: {description: Anything that carries people or goods.}
  car: {parent: vehicle, synonyms: [automobile]}
  sedan: {parent: car}
  suv: {parent: car}
  truck: {parent: vehicle}
  animal: {}
  cat: {parent: animal}
  tabby: {parent: cat}
"""
TAXONOMY_FILE = "configs/taxonomy/vehicles.yaml"
CATEGORIES = [
    Category(2, "cat", "animal"),
    Category(3, "sedan", "car"),
    Category(5, "suv", "car"),
    Category(7, "truck", "vehicle"),
    Category(8, "tabby", "cat"),
]
LABELS = {  # sample id -> (split, labels); every image 64 x 48
    "a.png": ("train", [(3, (1, 1, 20, 10)), (5, (30, 20, 20, 20))]),  # sedan, suv
    "b.png": ("train", [(7, (2, 2, 30, 30)), (3, (40, 5, 10, 10))]),  # truck, sedan
    "c.png": ("val", [(8, (0, 0, 16, 16)), (2, (20, 20, 16, 16))]),  # tabby, cat
    "d.png": ("val", [(5, (5, 5, 40, 30))]),  # suv
    "e.png": ("train", []),  # nothing
    "f.png": ("val", [(7, (10, 10, 12, 12))]),  # truck
}
DEPTHS = [
    # depth 1: the roots, new ids after the largest (8), in name order
    (1, {9: ("animal", None), 10: ("vehicle", None)}, {"animal": 2, "vehicle": 6}),
    # depth 2: cat and truck keep their ids, car is new; tabby -> cat, sedan and suv -> car
    (
        2,
        {2: ("cat", "animal"), 7: ("truck", "vehicle"), 9: ("car", "vehicle")},
        {"car": 4, "cat": 2, "truck": 2},
    ),
    # depth 3: the whole tree, as labelled
    (
        3,
        {c.id: (c.name, c.parent) for c in CATEGORIES},
        {"sedan": 2, "suv": 2, "truck": 2, "cat": 1, "tabby": 1},
    ),
    # depth 5, deeper than the tree: the tree
    (
        5,
        {c.id: (c.name, c.parent) for c in CATEGORIES},
        {"sedan": 2, "suv": 2, "truck": 2, "cat": 1, "tabby": 1},
    ),
]


def _box(box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return float(x), float(y), float(w), float(h)


def _samples(root: Path) -> list[Sample]:
    samples = []
    for index, (sample_id, (split, labels)) in enumerate(sorted(LABELS.items())):
        image = root / "pictures" / sample_id
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (index * 40, 90, 0)).save(image)
        samples.append(
            Sample(
                id=sample_id,
                image=image.relative_to(root).as_posix(),
                sha256=hashlib.sha256(image.read_bytes()).hexdigest(),
                width=64,
                height=48,
                source=sample_id,
                split=split,
                annotations=[Annotation(c, _box(box)) for c, box in labels],
            )
        )
    return samples


def _project(root: Path, **params: Any) -> Path:
    """A project whose ``publish`` stage reads a written dataset; the taxonomy in configs/."""
    (root / TAXONOMY_FILE).parent.mkdir(parents=True)
    (root / TAXONOMY_FILE).write_text(TAXONOMY)
    return Path(after_source(root, _samples(root), CATEGORIES, "publish", **params))


@pytest.mark.parametrize(("depth", "classes", "counts"), DEPTHS)
def test_every_export_holds_the_flattened_class_map(
    tmp_path: Path, depth: int, classes: dict[int, tuple[str, str | None]], counts: dict[str, int]
) -> None:
    root = _project(tmp_path, formats=FORMATS, class_depth=depth, taxonomy=TAXONOMY_FILE)
    metrics = run_stage(root, "publish", "pipelines/p.yaml", workers=1)
    out = root / "data" / "publish"
    published = Dataset(out)
    assert {c.id: (c.name, c.parent) for c in published.categories} == classes
    names = {c.id: c.name for c in published.categories}
    rows = published.table.to_pylist()
    manifest = Counter(names[a["category_id"]] for r in rows for a in r["annotations"])
    assert manifest == counts
    assert metrics["class_depth"] == min(depth, 3)
    assert metrics["categories"] == len(classes)
    class_map_file = json.loads((out / "class_map.json").read_text())
    assert [(c["id"], c["name"]) for c in class_map_file] == sorted(
        (i, n) for i, (n, _) in classes.items()
    )
    # the plots are counted after flattening: instances per published class
    plot = json.loads((root / "reports" / "plots" / "publish" / "instances.json").read_text())
    per_class: Counter[str] = Counter()
    for row in plot:
        per_class[row["class"]] += row["instances"]
    assert +per_class == manifest
    for fmt in FORMATS:
        declared, found = read_back(out / fmt, fmt)
        if fmt == "imagefolder":  # one folder per class of the single-class images
            single = Counter(
                names[c] for s in Dataset(out).samples() if (c := class_of(s)) is not None
            )
            assert found == single, fmt
            assert declared == set(single), fmt
        else:
            assert declared == set(names.values()), fmt
            assert found == manifest, fmt


def test_depth_two_makes_an_image_of_sedans_and_suvs_one_class_for_image_folders(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path, formats=["imagefolder"], class_depth=2, taxonomy=TAXONOMY_FILE)
    metrics = run_stage(root, "publish", "pipelines/p.yaml", workers=1)
    # a.png (sedan + suv) is a car; b.png (truck + sedan) stays two classes; e.png has none
    assert (root / "data/publish/imagefolder/train/car/a.png").is_file()
    assert metrics["imagefolder_skipped_not_single_class"] == 2


def test_the_class_maps_parents_are_the_hierarchy_without_a_taxonomy_file(tmp_path: Path) -> None:
    root = _project(tmp_path, formats=["coco"], class_depth=1)
    run_stage(root, "publish", "pipelines/p.yaml", workers=1)
    # from the class map's parents alone: car, animal and vehicle are parents but no class,
    # so each is a root of its own (new ids, in name order)
    published = Dataset(root / "data" / "publish")
    assert {c.id: c.name for c in published.categories} == {9: "animal", 10: "car", 11: "vehicle"}
    assert _published_counts(published) == {"animal": 2, "car": 4, "vehicle": 2}


REFUSED = [
    # zero is no depth: a params error at compile time, with the file and key
    ({"class_depth": 0}, r"params\.yaml:\d+ publish\.class_depth: input should be greater"),
    # neither is a negative one
    ({"class_depth": -2}, r"publish\.class_depth: input should be greater than or equal to 1"),
    # a taxonomy file that is not there: DVC could not track it
    (
        {"class_depth": 1, "taxonomy": "configs/taxonomy/nope.yaml"},
        r"configs/taxonomy/nope\.yaml does not exist",
    ),
]


@pytest.mark.parametrize(("params", "error"), REFUSED)
def test_bad_params_are_refused_before_anything_runs(
    tmp_path: Path, params: dict[str, Any], error: str
) -> None:
    root = _project(tmp_path, formats=["coco"], **params)
    with pytest.raises(PixelpipeError, match=error):
        compile_pipeline(load_pipeline(root, "pipelines/p.yaml"))


def test_a_taxonomy_that_lacks_a_class_of_the_class_map_names_every_one(tmp_path: Path) -> None:
    root = _project(tmp_path, formats=["coco"], class_depth=1, taxonomy=TAXONOMY_FILE)
    (root / TAXONOMY_FILE).write_text(TAXONOMY.replace("  tabby: {parent: cat}\n", ""))
    with pytest.raises(PixelpipeError, match=r"class 'tabby' \(id 8\) of the class map") as caught:
        run_stage(root, "publish", "pipelines/p.yaml", workers=1)
    assert caught.value.problems[0].file == TAXONOMY_FILE
    assert not (root / "data" / "publish").exists()


SYNONYMS = [
    # a class the class map knows by a synonym keeps that entry's id under the class's name
    ([Category(4, "automobile"), Category(6, "sedan")], 2, {4: "car"}),
    # both spellings: the class's own entry wins, the synonym's merges into it
    ([Category(4, "automobile"), Category(6, "car")], 3, {6: "car"}),
]


@pytest.mark.parametrize(("categories", "depth", "expected"), SYNONYMS)
def test_synonyms_become_their_class(
    tmp_path: Path, categories: list[Category], depth: int, expected: dict[int, str]
) -> None:
    from pixelpipe.taxonomy import load

    path = tmp_path / "t.yaml"
    path.write_text(TAXONOMY)
    done = class_map(categories, load(path, "t.yaml"), depth)
    assert {c.id: c.name for c in done.categories} == expected
    assert set(done.ids.values()) == set(expected)


def test_repointing_keeps_everything_but_the_class(tmp_path: Path) -> None:
    whole = Annotation(5, (0.0, 0.0, 1.0, 1.0), attributes={IMAGE_LABEL: True})
    boxed = Annotation(3, (1.0, 2.0, 3.0, 4.0), score=0.5, annotator="ann", iscrowd=True)
    other = Annotation(7, (2.0, 2.0, 2.0, 2.0))
    builder = DatasetBuilder(CATEGORIES)
    builder.add(Sample("x", "x.png", "0" * 64, 4, 4, "x", annotations=[boxed, whole]))
    builder.add(Sample("y", "y.png", "1" * 64, 4, 4, "y"))
    builder.add(Sample("z", "z.png", "2" * 64, 4, 4, "z", annotations=[other, boxed]))
    write_dataset(tmp_path / "d", builder, stage="s", kind="ingest", params={}, inputs={})
    table = Dataset(tmp_path / "d").table
    rows = repoint(table, {3: 9, 5: 9}).to_pylist()
    assert [[a["category_id"] for a in r["annotations"]] for r in rows] == [[9, 9], [], [7, 9]]
    for before, after in zip(table.to_pylist(), rows, strict=True):
        assert {k: v for k, v in before.items() if k != "annotations"} == {
            k: v for k, v in after.items() if k != "annotations"
        }
        for old, new in zip(before["annotations"], after["annotations"], strict=True):
            old.pop("category_id"), new.pop("category_id")
            assert old == new  # box, score, annotator, crowd, the image-label attribute
    # a slice of the manifest (an Arrow view with an offset) is re-pointed in place
    (row,) = repoint(table.slice(2, 1), {7: 10}).to_pylist()
    assert [a["category_id"] for a in row["annotations"]] == [10, 3]


def _step_publish(root: Path, source: Path, **params: Any) -> tuple[Dataset, dict[str, Any]]:
    """Run publish in-process on ``source`` and write its dataset, as the runner does."""
    kind = resolve("publish")
    validated = kind.params(**params)
    out = root / "data" / "publish"
    out.mkdir(parents=True)
    result = kind.step([Dataset(source)], validated, serial_context(root, "publish", out))
    write_dataset(
        out,
        result.output,
        stage="publish",
        kind="publish",
        params=validated.model_dump(mode="json"),
        inputs={},
    )
    return Dataset(out), result.metrics


def _supercategory_counts(dataset: Dataset) -> Counter[str]:
    """Instances per COCO supercategory: each class's parent (``person`` is its own)."""
    parent = {c.id: c.parent or c.name for c in dataset.categories}
    return Counter(
        parent[a["category_id"]] for r in dataset.table.to_pylist() for a in r["annotations"]
    )


def _published_counts(dataset: Dataset) -> Counter[str]:
    names = {c.id: c.name for c in dataset.categories}
    return Counter(
        names[a["category_id"]] for r in dataset.table.to_pylist() for a in r["annotations"]
    )


def _coco_counts(folder: Path) -> tuple[set[str], Counter[str]]:
    names: dict[int, str] = {}
    counts: Counter[str] = Counter()
    for document in sorted((folder / "annotations").glob("instances_*.json")):
        data = json.loads(document.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        counts.update(names[a["category_id"]] for a in data["annotations"])
    return set(names.values()), counts


def test_coco256_at_depth_one_is_its_supercategories(tmp_path: Path, corpora: Path) -> None:
    source = corpora / "detection" / "coco256"
    ingested, _ = ingest(
        tmp_path,
        source=str(source),
        format="coco",
        annotations=["coco_json/instances_train2017.json"],
        images="images/train2017",
    )
    published, metrics = _step_publish(
        tmp_path, tmp_path / "data" / "ingest", formats=["coco", "yolo"], class_depth=1
    )
    # the oracle: COCO's own file, each annotation counted under its class's supercategory
    raw = json.loads((source / "coco_json" / "instances_train2017.json").read_text())
    supercategory = {c["id"]: c["supercategory"] for c in raw["categories"]}
    expected = Counter(supercategory[a["category_id"]] for a in raw["annotations"])
    supers = set(supercategory.values())
    assert len(supers) == 12 and "person" in supers  # COCO's person is its own supercategory
    assert {c.name for c in published.categories} == supers
    assert _published_counts(published) == expected
    assert _supercategory_counts(ingested) == expected  # the sum of each one's members
    declared, counts = _coco_counts(tmp_path / "data" / "publish" / "coco")
    assert declared == supers and counts == expected
    names = yaml.safe_load((tmp_path / "data/publish/yolo/data.yaml").read_text())["names"]
    assert set(names.values()) == supers
    assert metrics["class_depth"] == 1 and metrics["categories"] == 12
    # person keeps its id; the other eleven are new, after the largest id, in name order
    ids = {c.name: c.id for c in published.categories}
    assert ids.pop("person") == 1
    largest = max(c.id for c in ingested.categories)
    assert [ids[name] for name in sorted(ids)] == list(range(largest + 1, largest + 12))


def test_coco256_at_depth_two_is_itself_in_every_export(tmp_path: Path, corpora: Path) -> None:
    """Two levels (supercategory > class): depth 2 is the class map, in every export."""
    ingested, _ = ingest(
        tmp_path,
        source=str(corpora / "detection" / "coco256"),
        format="coco",
        annotations=["coco_json/instances_train2017.json"],
        images="images/train2017",
    )
    published, _ = _step_publish(
        tmp_path, tmp_path / "data" / "ingest", formats=FORMATS, class_depth=2
    )
    assert [c.to_json() for c in published.categories] == [c.to_json() for c in ingested.categories]
    expected = _published_counts(ingested)
    assert _published_counts(published) == expected and sum(expected.values()) == 939
    names = {c.id: c.name for c in published.categories}
    crowd = Counter(
        names[a.category_id] for s in published.samples() for a in s.annotations if a.iscrowd
    )
    for fmt in [f for f in FORMATS if f != "imagefolder"]:  # it keeps single-class images
        declared, found = read_back(tmp_path / "data" / "publish" / fmt, fmt)
        assert set(expected) <= declared <= set(names.values()), fmt
        if fmt == "yolo":  # crowd boxes are left out (yolo_include_crowd)
            assert found == expected - crowd, fmt
        elif fmt in ("cvat", "labelstudio"):  # a polygon comes back one annotation a part
            assert set(found) == set(expected) and found.total() >= expected.total(), fmt
        else:
            assert found == expected, fmt


def test_the_demo_at_depth_one(tmp_path: Path, demo_raw: Path) -> None:
    import shutil

    shutil.copytree(demo_raw, tmp_path / "data" / "raw" / "demo")
    ingested, _ = ingest(tmp_path)
    published, _ = _step_publish(
        tmp_path, tmp_path / "data" / "ingest", formats=FORMATS, class_depth=1
    )
    expected = _supercategory_counts(ingested)
    assert _published_counts(published) == expected
    names = {"person", "vehicle", "animal", "kitchen", "indoor"}  # the demo's supercategories
    assert {c.name for c in published.categories} == names
    for fmt in ("coco", "yolo", "voc", "hf", "cvat", "labelstudio"):
        declared, found = read_back(tmp_path / "data" / "publish" / fmt, fmt)
        assert declared == names, fmt
        assert found == expected, fmt
