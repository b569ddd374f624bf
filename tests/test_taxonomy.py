"""Taxonomies: the YAML loader's errors (file:line, all at once), the tree's maths, and the
hierarchy a class map's parents give (COCO's supercategories)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from pixelpipe import Category
from pixelpipe.errors import PixelpipeError
from pixelpipe.project.demo import CATEGORIES as DEMO_CATEGORIES
from pixelpipe.taxonomy import Taxonomy, TaxonomyClass, check, from_categories, load

REPO = Path(__file__).resolve().parents[1]

TREE = """\
leaf_only: true
classes:
  vehicle: {description: Anything that carries people or goods.}
  car: {parent: vehicle, synonyms: [automobile, auto]}
  sedan: {parent: car}
  suv: {parent: car}
  truck: {parent: vehicle, synonyms: [lorry]}
  animal: {}
  cat: {parent: animal}
"""


@pytest.fixture
def tree(tmp_path: Path) -> Taxonomy:
    (tmp_path / "tree.yaml").write_text(TREE)
    return load(tmp_path / "tree.yaml", "configs/taxonomy/tree.yaml")


# --- the loader -----------------------------------------------------------------------

ROOT = "classes:\n  vehicle: {}\n"

ERRORS = [
    # Not a mapping at all.
    ("- car\n", r"x\.yaml:1: a taxonomy is a mapping with 'classes'"),
    # An empty file: nothing to point at but the file.
    ("", r"x\.yaml: a taxonomy is a mapping"),
    # No classes key.
    ("leaf_only: true\n", r"x\.yaml:1 classes: required key is missing"),
    # Classes given as a list of names.
    ("classes: [car, truck]\n", r"x\.yaml:1 classes: a taxonomy is a mapping .*got a list"),
    # An empty taxonomy checks nothing: surely a mistake.
    ("classes: {}\n", r"x\.yaml:1 classes: no classes: name at least one class"),
    # A misspelt top-level key, with a did-you-mean.
    (
        "leaf_onyl: true\n" + ROOT,
        r"x\.yaml:1 leaf_onyl: unknown key 'leaf_onyl' \(did you mean 'leaf_only'\?\)",
    ),
    # leaf_only is a boolean.
    ("leaf_only: sometimes\n" + ROOT, r"x\.yaml:1 leaf_only: leaf_only is true or false"),
    # The file's description is text.
    ("description: [a]\n" + ROOT, r"x\.yaml:1 description: description is text"),
    # A class named twice is a duplicate key (YAML would keep the last one).
    (ROOT + "  vehicle: {}\n", r"x\.yaml:3 classes\.vehicle: duplicate key"),
    # A misspelt parent, with a did-you-mean among the classes.
    (
        ROOT + "  car: {parent: vehicel}\n",
        r"x\.yaml:3 classes\.car\.parent: unknown parent 'vehicel' \(did you mean 'vehicle'\?\)",
    ),
    # A parent that is nothing like any class.
    (
        ROOT + "  car: {parent: zzz}\n",
        r"x\.yaml:3 classes\.car\.parent: unknown parent 'zzz'; a parent is a class of this file",
    ),
    # A class that is its own parent.
    (ROOT + "  car: {parent: car}\n", r"x\.yaml:3 classes\.car\.parent: a class cannot be its own"),
    # Parents that go round: reported once, at the first class of the cycle in the file.
    (
        "classes:\n  a: {parent: c}\n  b: {parent: a}\n  c: {parent: b}\n",
        r"x\.yaml:2 classes\.a\.parent: parents form a cycle: 'a' -> 'c' -> 'b' -> 'a'",
    ),
    # A parent named by its synonym: the class must be named.
    (
        ROOT + "  car: {parent: vehicle, synonyms: [auto]}\n  sedan: {parent: auto}\n",
        r"x\.yaml:4 classes\.sedan\.parent: parent 'auto' is a synonym of 'car'",
    ),
    # A parent that is not a name.
    (ROOT + "  car: {parent: [vehicle]}\n", r"x\.yaml:3 classes\.car\.parent: a parent is a class"),
    # A synonym that is also a class: which one would a label mean?
    (
        ROOT + "  car: {synonyms: [vehicle]}\n",
        r"x\.yaml:3 classes\.car\.synonyms\[0\]: synonym 'vehicle' is also a class",
    ),
    # One synonym naming two classes.
    (
        ROOT + "  car: {synonyms: [auto]}\n  truck: {synonyms: [auto]}\n",
        r"x\.yaml:4 classes\.truck\.synonyms\[0\]: synonym 'auto' already names 'car'",
    ),
    # A synonym that is the class's own name.
    (ROOT + "  car: {synonyms: [car]}\n", r"x\.yaml:3 classes\.car\.synonyms\[0\]: .*own name"),
    # A synonym listed twice.
    (
        ROOT + "  car: {synonyms: [auto, auto]}\n",
        r"x\.yaml:3 classes\.car\.synonyms\[1\]: synonym 'auto' is listed twice",
    ),
    # Synonyms as one string, not a list.
    (
        ROOT + "  car: {synonyms: auto}\n",
        r"x\.yaml:3 classes\.car\.synonyms: synonyms is a list of names, got 'auto' "
        r"\(write \[auto\]\)",
    ),
    # An empty synonym.
    (ROOT + "  car: {synonyms: ['']}\n", r"x\.yaml:3 classes\.car\.synonyms\[0\]: a synonym is"),
    # The parent written as the class's value: a shorthand the format does not have.
    (
        ROOT + "  car: vehicle\n",
        r"x\.yaml:3 classes\.car: a class is a mapping of parent, synonyms, description, "
        r"got 'vehicle' \(did you mean \{parent: vehicle\}\?\)",
    ),
    # A misspelt key of a class.
    (
        ROOT + "  car: {synonym: [auto]}\n",
        r"x\.yaml:3 classes\.car\.synonym: unknown key 'synonym' \(did you mean 'synonyms'\?\)",
    ),
    # A class's description is text.
    (ROOT + "  car: {description: 3}\n", r"x\.yaml:3 classes\.car\.description: description"),
    # An empty class name.
    (ROOT + "  '': {}\n", r"x\.yaml:3 classes\.: a class name cannot be empty"),
    # A class name YAML reads as a number.
    (ROOT + "  1: {}\n", r"x\.yaml:3 classes\.1: a class name is text, got int 1: quote it"),
    # A class name with a space at its end, which no label would match.
    (ROOT + "  'car ': {}\n", r"x\.yaml:3 classes\.car : class name 'car ' starts or ends"),
    # A YAML tag is not plain YAML: refused, never built.
    ("classes: !!python/object:os.system {}\n", r"x\.yaml:1: invalid YAML: tag"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_loader_errors_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(PixelpipeError, match=message):
        load(tmp_path / "x.yaml", "x.yaml")
    with pytest.raises(PixelpipeError, match=message):
        check(tmp_path / "x.yaml", "x.yaml")


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        "leaf_onyl: true\n"
        "classes:\n"
        "  vehicle: {}\n"
        "  car: {parent: vehicel, synonyms: [auto]}\n"
        "  truck: {parent: auto, synonym: [lorry]}\n"
        "  bike: vehicle\n"
        "  a: {parent: b}\n"
        "  b: {parent: a}\n"
    )
    with pytest.raises(PixelpipeError) as info:
        load(tmp_path / "x.yaml", "configs/taxonomy/x.yaml")
    assert [str(p) for p in info.value.problems] == [
        "configs/taxonomy/x.yaml:1 leaf_onyl: unknown key 'leaf_onyl' (did you mean 'leaf_only'?)",
        "configs/taxonomy/x.yaml:4 classes.car.parent: unknown parent 'vehicel' "
        "(did you mean 'vehicle'?)",
        "configs/taxonomy/x.yaml:5 classes.truck.parent: parent 'auto' is a synonym of 'car'",
        "configs/taxonomy/x.yaml:5 classes.truck.synonym: unknown key 'synonym' "
        "(did you mean 'synonyms'?)",
        "configs/taxonomy/x.yaml:6 classes.bike: a class is a mapping of parent, synonyms, "
        "description, got 'vehicle' (did you mean {parent: vehicle}?)",
        "configs/taxonomy/x.yaml:7 classes.a.parent: parents form a cycle: 'a' -> 'b' -> 'a'",
    ]


def test_a_file_that_cannot_be_read_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(PixelpipeError, match=r"^t\.yaml: cannot read the taxonomy: No such file"):
        load(tmp_path / "missing.yaml", "t.yaml")
    (tmp_path / "latin1.yaml").write_bytes("classes:\n  caf\xe9: {}\n".encode("latin-1"))
    with pytest.raises(PixelpipeError, match=r"^latin1\.yaml: a taxonomy is UTF-8 text$"):
        load(tmp_path / "latin1.yaml", "latin1.yaml")


def test_a_good_file_loads_in_file_order(tree: Taxonomy) -> None:
    assert list(tree.classes) == ["vehicle", "car", "sedan", "suv", "truck", "animal", "cat"]
    assert tree.classes["car"] == TaxonomyClass("car", "vehicle", "", ("automobile", "auto"))
    assert tree.classes["vehicle"].description == "Anything that carries people or goods."
    assert tree.leaf_only is True
    assert tree.source == "configs/taxonomy/tree.yaml"
    assert tree.names()[-3:] == ["automobile", "auto", "lorry"]


def test_leaf_only_defaults_to_false_and_a_bare_class_is_a_root(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("classes:\n  animal:\n  cat: {parent: animal}\n")
    taxonomy = load(tmp_path / "t.yaml")
    assert taxonomy.leaf_only is False
    assert taxonomy.source == str(tmp_path / "t.yaml")  # shown as given when not named
    assert taxonomy.classes["animal"] == TaxonomyClass("animal")


def test_the_demo_taxonomy_has_every_demo_class_as_a_leaf_three_levels_down() -> None:
    taxonomy = load(REPO / "configs" / "taxonomy" / "demo.yaml")
    assert taxonomy.levels() == 3 and taxonomy.leaf_only
    for category in DEMO_CATEGORIES:
        name = str(category["name"])
        assert taxonomy.canonical(name) == name
        assert (taxonomy.depth(name), taxonomy.is_leaf(name)) == (3, True), name


# --- the tree's maths -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ancestors"),
    [
        # A root is its own only ancestor.
        ("vehicle", ["vehicle"]),
        # A leaf three levels down.
        ("sedan", ["vehicle", "car", "sedan"]),
        # A synonym answers for its class.
        ("automobile", ["vehicle", "car"]),
        # A second tree of the forest.
        ("cat", ["animal", "cat"]),
    ],
)
def test_ancestors_and_depth(tree: Taxonomy, name: str, ancestors: list[str]) -> None:
    assert tree.ancestors(name) == ancestors
    assert tree.depth(name) == len(ancestors)


@pytest.mark.parametrize(
    ("name", "depth", "expected"),
    [
        # Flattening a leaf to the roots.
        ("sedan", 1, "vehicle"),
        # ... to the middle level.
        ("sedan", 2, "car"),
        # ... to its own level.
        ("sedan", 3, "sedan"),
        # A class shallower than the depth is itself.
        ("truck", 3, "truck"),
        # A synonym flattens as its class.
        ("auto", 1, "vehicle"),
        # Deeper than the tree: as labelled.
        ("cat", 9, "cat"),
    ],
)
def test_at_depth(tree: Taxonomy, name: str, depth: int, expected: str) -> None:
    assert tree.at_depth(name, depth) == expected


@pytest.mark.parametrize(
    ("a", "b", "common", "credit"),
    [
        # The same class: full credit.
        ("sedan", "sedan", 3, 1.0),
        # A synonym of the class: the same class.
        ("car", "automobile", 2, 1.0),
        # Siblings under car under vehicle: 2 of 3 levels shared.
        ("sedan", "suv", 2, 2 / 3),
        # Cousins that share only the root.
        ("sedan", "truck", 1, 1 / 3),
        # A class and its ancestor: the ancestor's depth over the deeper one.
        ("vehicle", "sedan", 1, 1 / 3),
        # Different roots: nothing shared.
        ("sedan", "cat", 0, 0.0),
        # A name the taxonomy does not know shares nothing.
        ("sedan", "dog", 0, 0.0),
        # ... unless both labels are that same name.
        ("dog", "dog", 0, 1.0),
    ],
)
def test_common_depth_and_credit(
    tree: Taxonomy, a: str, b: str, common: int, credit: float
) -> None:
    assert tree.common_depth(a, b) == tree.common_depth(b, a) == common
    assert tree.credit(a, b) == pytest.approx(credit)
    assert tree.credit(b, a) == pytest.approx(credit)


def test_canonical_leaves_children_and_levels(tree: Taxonomy) -> None:
    assert [tree.canonical(n) for n in ("car", "automobile", "lorry", "dog")] == [
        "car",
        "car",
        "truck",
        None,
    ]
    assert [n for n in tree.classes if tree.is_leaf(n)] == ["sedan", "suv", "truck", "cat"]
    assert tree.children("automobile") == ("sedan", "suv")
    assert tree.levels() == 3
    assert Taxonomy({}).levels() == 0


def test_unknown_names_and_bad_depths_are_refused(tree: Taxonomy) -> None:
    with pytest.raises(KeyError, match=r"'dog' is not a class or synonym of the taxonomy configs"):
        tree.depth("dog")
    with pytest.raises(KeyError, match="'dog'"):
        tree.is_leaf("dog")
    with pytest.raises(ValueError, match="depth starts at 1"):
        tree.at_depth("car", 0)


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        # A class filed under another name.
        ({"a": TaxonomyClass("b")}, "class 'b' is filed under 'a'"),
        # A parent that is not a class.
        ({"a": TaxonomyClass("a", "x")}, "unknown parent 'x'"),
        # A cycle would make ancestors() loop forever.
        (
            {"a": TaxonomyClass("a", "b"), "b": TaxonomyClass("b", "a")},
            "parents form a cycle: 'a' -> 'b' -> 'a'",
        ),
        # A synonym naming two classes.
        (
            {"a": TaxonomyClass("a", synonyms=("s",)), "b": TaxonomyClass("b", synonyms=("s",))},
            "synonym 's' of 'b' names 'a'",
        ),
        # A synonym that is another class.
        ({"a": TaxonomyClass("a", synonyms=("b",)), "b": TaxonomyClass("b")}, "synonym 'b'"),
    ],
)
def test_a_taxonomy_built_in_code_must_be_a_forest(
    classes: dict[str, TaxonomyClass], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Taxonomy(classes)


def test_a_taxonomy_is_immutable_and_travels_to_workers(tree: Taxonomy) -> None:
    with pytest.raises(TypeError):
        tree.classes["dog"] = TaxonomyClass("dog")  # type: ignore[index]
    copy = pickle.loads(pickle.dumps(tree))
    assert copy == tree and copy.source == tree.source
    assert copy.credit("sedan", "auto") == pytest.approx(2 / 3)


# --- from a class map -----------------------------------------------------------------


def test_from_categories_reads_coco_supercategories(corpora: Path) -> None:
    path = corpora / "detection" / "coco256" / "coco_json" / "instances_train2017.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    categories = [
        Category(c["id"], c["name"], c["supercategory"])
        for c in json.loads(path.read_text())["categories"]
    ]
    taxonomy = from_categories(categories, "coco256")
    roots = [n for n, c in taxonomy.classes.items() if c.parent is None]
    supercategories = sorted({c.parent for c in categories if c.parent})
    assert sorted(roots) == supercategories  # 'person' is a class and its own supercategory
    assert len(taxonomy.classes) == len(categories) + len(supercategories) - 1
    assert list(taxonomy.classes)[:4] == ["person", "vehicle", "bicycle", "car"]
    assert taxonomy.levels() == 2
    assert (taxonomy.depth("person"), taxonomy.is_leaf("person")) == (1, True)
    assert taxonomy.ancestors("car") == ["vehicle", "car"]
    assert taxonomy.at_depth("hair drier", 1) == "indoor"
    assert taxonomy.credit("car", "truck") == pytest.approx(0.5)
    assert taxonomy.credit("car", "cat") == 0.0
    assert all(taxonomy.is_leaf(c.name) for c in categories)


@pytest.mark.parametrize(
    ("categories", "parents"),
    [
        # COCO's "person in person": no parent; an empty parent: none either.
        (
            [Category(1, "person", "person"), Category(2, "rock", "")],
            {"person": None, "rock": None},
        ),
        # A parent that is not a class becomes a root, before its first child.
        ([Category(3, "car", "vehicle")], {"vehicle": None, "car": "vehicle"}),
        # A parent that is a class (listed later) makes a deeper tree.
        (
            [Category(5, "sedan", "car"), Category(3, "car", "vehicle")],
            {"sedan": "car", "vehicle": None, "car": "vehicle"},
        ),
        # A class listed twice with the same parent is one class.
        (
            [Category(1, "cat", "animal"), Category(2, "cat", "animal")],
            {"animal": None, "cat": "animal"},
        ),
    ],
)
def test_from_categories(categories: list[Category], parents: dict[str, str | None]) -> None:
    taxonomy = from_categories(categories)
    assert {n: c.parent for n, c in taxonomy.classes.items()} == parents
    assert list(taxonomy.classes) == list(parents)


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        # Parents that go round.
        (
            [Category(1, "a", "b"), Category(2, "b", "a")],
            r"^map\.json: the parents of the class map form a cycle: 'a' -> 'b' -> 'a'$",
        ),
        # One name with two parents.
        (
            [Category(1, "cat", "animal"), Category(2, "cat", "pet")],
            r"^map\.json: class 'cat' is listed with parents 'animal' and 'pet'$",
        ),
    ],
)
def test_from_categories_refuses_what_is_not_a_tree(
    categories: list[Category], message: str
) -> None:
    with pytest.raises(PixelpipeError, match=message):
        from_categories(categories, "map.json")
