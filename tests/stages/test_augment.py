"""The augment stage: byte-identical copies, replay data, boxes and masks, oversampling, errors."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from pixelpipe import Annotation, Category, DatasetBuilder, PixelpipeError, Sample
from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.context import derive_seed
from pixelpipe.engine.runner import run_stage
from pixelpipe.project.demo import build
from stages._augment.recipe import BoxRules, albumentations, load_recipe
from stages._augment.recipe import build as build_recipe
from stages._augment.worker import encode
from stages.augment import Params, plan_copies

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RECIPE = REPO / "configs" / "augment" / "default.yaml"
CATEGORIES = [Category(1, "box"), Category(2, "blob"), Category(3, "rare")]


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")


def recipe_yaml(*transforms: Any) -> str:
    """A recipe file as A.save writes it."""
    A = albumentations()
    return yaml.safe_dump(
        {
            "__version__": A.__version__,
            "transform": A.Compose(list(transforms)).to_dict()["transform"],
        }
    )


def pipeline(root: Path, params: dict[str, Any], recipe: str | None = None) -> None:
    """Stages ``src`` (already written) and ``augment`` with its recipe and params."""
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "recipe.yaml").write_text(
        recipe if recipe is not None else DEFAULT_RECIPE.read_text()
    )
    stages = {
        "src": {"kind": "ingest"},
        "augment": {
            "kind": "augment",
            "inputs": ["src"],
            "configs": {"recipe": "configs/recipe.yaml"},
        },
    }
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (root / "params.yaml").write_text(yaml.safe_dump({"src": {}, "augment": params}))


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file the augment stage wrote, by relative path."""
    out = root / "data" / "augment"
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo_ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose ``src`` stage holds the ingested demo photos (38 images)."""
    root = tmp_path_factory.mktemp("demo")
    build(root / "data" / "raw" / "demo")
    stages = {"src": {"kind": "ingest"}}
    (root / "pipelines").mkdir()
    (root / "pipelines" / "p.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (root / "params.yaml").write_text("src: {}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIXELPIPE_TRACKING", "off")
        run_stage(root, "src", "pipelines/p.yaml", workers=1)
    return root


def demo_project(
    demo_ingested: Path, root: Path, params: dict[str, Any], recipe: str | None = None
) -> Path:
    shutil.copytree(demo_ingested / "data" / "src", root / "data" / "src")
    pipeline(root, params, recipe)
    return root


def synthetic(
    root: Path, samples: list[tuple[str, np.ndarray, list[Annotation], str | None]]
) -> None:
    """Write images and their manifest as the ``src`` stage's output."""
    builder = DatasetBuilder(CATEGORIES)
    for name, pixels, labels, split in samples:
        data = encode(pixels, name.endswith(".jpg"), 95)
        sha = hashlib.sha256(data).hexdigest()
        path = root / "data" / "src" / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        builder.add(
            Sample(
                name,
                f"data/src/images/{name}",
                sha,
                pixels.shape[1],
                pixels.shape[0],
                f"raw/{name}",
                split=split,
                annotations=labels,
            )
        )
    write_dataset(root / "data" / "src", builder, stage="src", kind="ingest", params={}, inputs={})


def pattern(height: int = 80, width: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def copies_of(root: Path) -> dict[str, dict[str, Any]]:
    table = Dataset(root / "data" / "augment").table
    return {r["id"]: r for r in table.to_pylist() if r["parent"] is not None}


def test_copies_are_byte_identical_across_runs_and_worker_counts(
    demo_ingested: Path, tmp_path: Path
) -> None:
    one = demo_project(demo_ingested, tmp_path / "one", {})
    two = demo_project(demo_ingested, tmp_path / "two", {})
    run_stage(one, "augment", "pipelines/p.yaml", workers=1)
    first = snapshot(one)
    run_stage(two, "augment", "pipelines/p.yaml", workers=2)
    assert snapshot(two) == first
    run_stage(one, "augment", "pipelines/p.yaml", workers=2)
    assert snapshot(one) == first
    metrics = json.loads((one / "reports" / "augment.json").read_text())
    originals = len(Dataset(one / "data" / "src"))
    # copies: 1 of each image, but none of the truncated photo (reported, and kept as it is)
    assert metrics["copies_requested"] == originals
    assert (metrics["images_undecodable"], metrics["copies_failed"]) == (1, 0)
    assert metrics["copies_made"] == originals - 1 == metrics["samples"] - originals
    assert len([name for name in first if name.startswith("images/")]) == originals - 1
    report = json.loads((one / "data" / "augment" / "report.json").read_text())
    assert [u["id"] for u in report["undecodable"]] == ["launchpad_truncated.jpg"]


def test_each_copy_names_its_parent_and_replays_to_the_same_bytes(
    demo_ingested: Path, tmp_path: Path
) -> None:
    root = demo_project(demo_ingested, tmp_path / "p", {"copies": 2, "seed": 5})
    run_stage(root, "augment", "pipelines/p.yaml", workers=1)
    table = Dataset(root / "data" / "augment").table.to_pylist()
    by_id = {r["id"]: r for r in table}
    recipe = load_recipe(root / "configs" / "recipe.yaml", "recipe.yaml", BoxRules(0.3, 1.0))
    names = set(recipe.transforms)
    copies = [r for r in table if r["parent"]]
    assert len(copies) == 2 * (len([r for r in table if not r["parent"]]) - 1)  # one is truncated
    for row in copies[:6]:
        parent = by_id[row["parent"]]
        replay = json.loads(row["augment"])
        assert replay["recipe"] == recipe.digest
        copy = replay["copy"]
        assert (
            row["id"]
            == parent["id"].rsplit(".", 1)[0] + f".aug{copy}." + parent["id"].rsplit(".", 1)[1]
        )
        assert replay["seed"] == int(
            np.random.default_rng(derive_seed(5, parent["id"], copy)).integers(0, 2**63)
        )
        assert {name for name, _ in replay["applied"]} <= names
        # Regenerate: the recipe, the seed and the parent's pixels give the copy's bytes.
        compose = build_recipe(recipe.text)
        compose.set_random_state(
            np.random.default_rng(replay["seed"]), random.Random(replay["seed"])
        )
        import cv2

        cv2.setRNGSeed(replay["seed"] % (1 << 31))
        with Image.open(root / parent["image"]) as image:
            pixels = np.asarray(image.convert("RGB"))
        boxes = [a["bbox"] for a in parent["annotations"]]
        index = list(range(len(boxes)))
        cats = [a["category_id"] for a in parent["annotations"]]
        masks = [
            m
            for a in parent["annotations"]
            if (m := _mask(a, pixels.shape[0], pixels.shape[1])) is not None
        ]
        data: dict[str, Any] = {
            "image": pixels.copy(),
            "bboxes": np.array(boxes, dtype=np.float64).reshape(-1, 4),
            "category_id": cats,
            "index": index,
        }
        if masks:
            data["masks"] = np.stack(masks)
        out = compose(**data)
        again = encode(np.asarray(out["image"]), row["id"].endswith(".jpg"), 95)
        assert hashlib.sha256(again).hexdigest() == row["sha256"]
        assert [name for name, _ in out["applied_transforms"]] == [
            name for name, _ in replay["applied"]
        ]


def _mask(annotation: dict[str, Any], height: int, width: int) -> np.ndarray | None:
    if not annotation["polygons"] and not annotation["rle"]:
        return None
    from stages._augment.masks import rasterize

    return rasterize(annotation, height, width)


def test_every_transform_of_a_copy_draws_its_own_numbers(tmp_path: Path) -> None:
    """Two p=0.5 flips must not be decided by one shared draw (what set_random_seed does)."""
    A = albumentations()
    names = [f"img{i:03d}.png" for i in range(60)]
    synthetic(tmp_path, [(n, pattern(16, 16, i), [], None) for i, n in enumerate(names)])
    pipeline(tmp_path, {"copies": 4}, recipe_yaml(A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)))
    run_stage(tmp_path, "augment", "pipelines/p.yaml", workers=1)
    combos = Counter(
        tuple(sorted(name for name, _ in json.loads(r["augment"])["applied"]))
        for r in copies_of(tmp_path).values()
    )
    assert len(combos) == 4  # neither, either one, both
    both_or_neither = combos[()] + combos[("HorizontalFlip", "VerticalFlip")]
    assert 0.3 < both_or_neither / 240 < 0.7


def _one_box_project(
    root: Path, box: tuple[float, float, float, float], params: dict[str, Any]
) -> dict[str, Any]:
    A = albumentations()
    boxes = [
        Annotation(1, box),
        Annotation(2, (10.0, 10.0, 20.0, 20.0)),
        Annotation(3, (5.0, 5.0, 0.0, 4.0)),
    ]
    synthetic(root, [("a.png", pattern(), boxes, None)])
    shift = A.Affine(translate_px={"x": 30, "y": 0}, p=1.0)
    pipeline(root, params, recipe_yaml(shift))
    run_stage(root, "augment", "pipelines/p.yaml", workers=1)
    (copy,) = copies_of(root).values()
    metrics = json.loads((root / "reports" / "augment.json").read_text())
    return {"boxes": {a["category_id"]: a["bbox"] for a in copy["annotations"]}, "metrics": metrics}


@pytest.mark.parametrize(
    ("params", "kept_edge_box", "filtered"),
    [
        # default: a third of the box stays inside (>= 0.3): clipped to the image
        ({}, [90.0, 10.0, 10.0, 20.0], 1 - 1),
        # min_visibility 0.5: a third is too little: dropped and counted
        ({"min_visibility": 0.5}, None, 1),
        # outside: drop: any box leaving the image goes, however much stays
        ({"outside": "drop"}, None, 1),
    ],
)
def test_boxes_leaving_the_image_are_clipped_or_dropped_and_counted(
    params: dict[str, Any], kept_edge_box: list[float] | None, filtered: int, tmp_path: Path
) -> None:
    found = _one_box_project(tmp_path, (60.0, 10.0, 30.0, 20.0), {"copies": 1, **params})
    assert found["boxes"].get(1) == kept_edge_box
    assert found["boxes"][2] == [40.0, 10.0, 20.0, 20.0]  # inside: moved, untouched
    metrics = found["metrics"]
    assert metrics["boxes_dropped_invalid"] == 1  # the zero-width box, in every mode
    assert metrics.get("boxes_dropped_filtered", 0) == filtered
    assert metrics["boxes_dropped"] == 1 + filtered
    assert metrics["boxes_in_parents"] == metrics["boxes_kept"] + metrics["boxes_dropped"]


@pytest.mark.parametrize(
    ("transform", "expect_x"),
    [
        # a shift right by 30 px moves the object's mask by 30 px
        (
            {"__class_fullname__": "Affine", "translate_px": {"x": 30, "y": 0}, "p": 1.0},
            lambda x, w: x + 30,
        ),
        # a horizontal flip mirrors it: x -> width - x - w
        ({"__class_fullname__": "HorizontalFlip", "p": 1.0}, lambda x, w: 100 - x - w),
    ],
)
def test_masks_follow_the_image(transform: dict[str, Any], expect_x: Any, tmp_path: Path) -> None:
    square = np.zeros((80, 100), dtype=np.uint8)
    square[20:40, 10:30] = 1
    rle = mask_utils.encode(np.asfortranarray(square))
    annotations = [
        Annotation(
            1, (10.0, 20.0, 20.0, 20.0), polygons=[[10.0, 20.0, 30.0, 20.0, 30.0, 40.0, 10.0, 40.0]]
        ),
        Annotation(
            2,
            (10.0, 20.0, 20.0, 20.0),
            rle={"size": [80, 100], "counts": rle["counts"].decode()},
            iscrowd=True,
        ),
    ]
    synthetic(tmp_path, [("a.png", pattern(), annotations, None)])
    A = albumentations()
    recipe = yaml.safe_dump(
        {
            "__version__": A.__version__,
            "transform": {"__class_fullname__": "Compose", "p": 1.0, "transforms": [transform]},
        }
    )
    pipeline(tmp_path, {"copies": 1}, recipe)
    run_stage(tmp_path, "augment", "pipelines/p.yaml", workers=1)
    (copy,) = copies_of(tmp_path).values()
    polygon, crowd = copy["annotations"]
    xs = polygon["polygons"][0][0::2]
    assert abs(min(xs) - expect_x(10, 20)) <= 1 and abs(max(xs) - (expect_x(10, 20) + 20)) <= 1
    assert polygon["bbox"][0] == pytest.approx(expect_x(10, 20), abs=0.01)
    moved = mask_utils.decode(
        {"size": crowd["rle"]["size"], "counts": crowd["rle"]["counts"].encode()}
    )
    cols = np.flatnonzero(moved.any(axis=0))
    assert (cols.min(), cols.max() + 1) == (expect_x(10, 20), expect_x(10, 20) + 20)
    assert crowd["area"] == 400.0 and crowd["iscrowd"] is True


@pytest.mark.parametrize(
    ("classes", "params", "expected"),
    [
        # no target: every eligible image gets `copies`
        ([{1}, {1}, set()], {"copies": 1}, [1, 1, 1]),
        # class 2 is in 1 image of 4: target 6 asks ceil(6/1) - 1 - 1 = 4 extra
        ([{1}, {1}, {1}, {1, 2}], {"copies": 1, "target_per_class": 6}, [1, 1, 1, 5]),
        # ... capped by max_copies
        (
            [{1}, {1}, {1}, {1, 2}],
            {"copies": 1, "target_per_class": 6, "max_copies": 3},
            [1, 1, 1, 3],
        ),
        # a common class asks nothing; images without labels keep the base count
        ([{1}, {1}, {2}, set()], {"copies": 0, "target_per_class": 2}, [0, 0, 1, 0]),
        # an image takes the largest ask of its classes
        ([{2}, {3}, {3}, {2, 3}], {"copies": 0, "target_per_class": 6}, [2, 1, 1, 2]),
    ],
)
def test_class_balanced_oversampling_plan(
    classes: list[set[int]], params: dict[str, Any], expected: list[int]
) -> None:
    pairs = [(row, c) for row, held in enumerate(classes) for c in sorted(held)]
    rows = np.array([r for r, _ in pairs], dtype=np.int64)
    cats = np.array([c for _, c in pairs], dtype=np.int64)
    counts, _ = plan_copies(rows, cats, len(classes), Params(**params))
    assert counts.tolist() == expected


def test_oversampling_moves_a_rare_class_toward_its_target(tmp_path: Path) -> None:
    samples = [
        (f"c{i}.png", pattern(32, 32, i), [Annotation(1, (2.0, 2.0, 10.0, 10.0))], None)
        for i in range(8)
    ]
    samples.append(("rare.png", pattern(32, 32, 99), [Annotation(3, (4.0, 4.0, 12.0, 12.0))], None))
    synthetic(tmp_path, samples)
    pipeline(tmp_path, {"copies": 0, "target_per_class": 5})
    run_stage(tmp_path, "augment", "pipelines/p.yaml", workers=1)
    report = json.loads((tmp_path / "data" / "augment" / "report.json").read_text())
    rare = next(c for c in report["classes"] if c["name"] == "rare")
    assert (rare["images_before"], rare["images_after"]) == (1, 5)
    assert set(copies_of(tmp_path)) == {f"rare.aug{k}.png" for k in range(4)}


def test_only_the_chosen_splits_and_unsplit_images_are_augmented(tmp_path: Path) -> None:
    synthetic(
        tmp_path,
        [
            ("t.jpg", pattern(seed=1), [], "train"),
            ("v.jpg", pattern(seed=2), [], "val"),
            ("x.png", pattern(seed=3), [], "test"),
            ("u.png", pattern(seed=4), [], None),
        ],
    )
    pipeline(tmp_path, {"copies": 1})
    run_stage(tmp_path, "augment", "pipelines/p.yaml", workers=1)
    copies = copies_of(tmp_path)
    assert sorted(copies) == ["t.aug0.jpg", "u.aug0.png"]
    assert copies["t.aug0.jpg"]["split"] == "train" and copies["u.aug0.png"]["split"] is None
    assert copies["t.aug0.jpg"]["image"].endswith(".jpg") and copies["u.aug0.png"][
        "image"
    ].endswith(".png")


@pytest.mark.parametrize(
    ("recipe", "params", "message"),
    [
        # a misspelt transform: file, line and key path, with a did-you-mean
        (
            "transform:\n  __class_fullname__: Compose\n  transforms:\n  - __class_fullname__: HorizontalFlipp\n    p: 0.5\n",
            {},
            r"recipe\.yaml:4 transform\.transforms\[0\]\.__class_fullname__: unknown albumentations transform 'HorizontalFlipp' \(did you mean 'HorizontalFlip'\?\)",
        ),
        # an argument albumentations would silently ignore
        (
            "transform:\n  __class_fullname__: Compose\n  transforms:\n  - __class_fullname__: Affine\n    rotat: 10\n    p: 0.5\n",
            {},
            r"recipe\.yaml:4 transform\.transforms\[0\]: Affine: Argument\(s\) 'rotat' are not valid",
        ),
        # a value albumentations rejects
        (
            "transform:\n  __class_fullname__: Compose\n  transforms:\n  - __class_fullname__: RandomCrop\n    p: 0.5\n",
            {},
            r"recipe\.yaml:4 transform\.transforms\[0\]: RandomCrop: .*height",
        ),
        # not a recipe at all
        ("- HorizontalFlip\n", {}, r"recipe\.yaml: not an albumentations recipe"),
        # a YAML tag (only plain YAML is read)
        (
            "transform: !!python/object:os.system {}\n",
            {},
            r"recipe\.yaml:1: invalid YAML: .*no tags",
        ),
        # a recipe that makes float pixels fails on every image
        (
            "transform:\n  __class_fullname__: Compose\n  transforms:\n  - __class_fullname__: ToFloat\n    p: 1.0\n",
            {},
            r"recipe\.yaml: the recipe failed on every image .*8-bit",
        ),
        # copies whose ids exist already
        (
            None,
            {"id_tag": "copy"},
            r"params\.yaml augment\.id_tag: 1 copy ids are already taken \(first: a\.copy0\.png\)",
        ),
        # a cap below the base count
        (
            None,
            {"copies": 3, "max_copies": 2},
            r"params\.yaml:3 augment\.max_copies: value error, must be at least copies \(3\), got 2",
        ),
    ],
)
def test_mistakes_are_clear_errors(
    recipe: str | None, params: dict[str, Any], message: str, tmp_path: Path
) -> None:
    synthetic(
        tmp_path,
        [("a.png", pattern(seed=1), [], None), ("a.copy0.png", pattern(seed=2), [], "val")],
    )
    pipeline(tmp_path, params, recipe)
    with pytest.raises(PixelpipeError, match=message):
        run_stage(tmp_path, "augment", "pipelines/p.yaml", workers=1)
    assert not (tmp_path / "data" / "augment").exists()


def test_encoding_is_fixed(tmp_path: Path) -> None:
    pixels = pattern(seed=8)
    for jpeg in (True, False):
        data = encode(pixels, jpeg, 90)
        assert data == encode(pixels.copy(), jpeg, 90)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == ("JPEG" if jpeg else "PNG") and image.size == (100, 80)
