"""The dedupe stage on real near-duplicate sets, the demo data, and hand-made datasets."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from pydantic import ValidationError
from shell import sh

from pixelpipe.dataset import Annotation, Category, Dataset, DatasetBuilder, Sample, write_dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.imaging import hamming
from pixelpipe.imaging.hashing import HashSpec, hash_files, to_hex, to_words
from stages.dedupe import Params

PIPELINE = "pipelines/dedupe_test.yaml"
ASTRONAUT = Path(__import__("skimage").__file__).parent / "data" / "astronaut.png"


def _setup(project: Path, ingest: dict[str, Any], dedupe: dict[str, Any]) -> None:
    stages = {
        "ingest": {"kind": "ingest"},
        "dedupe": {"kind": "dedupe", "inputs": "ingest"},
    }
    (project / PIPELINE).write_text(yaml.safe_dump({"stages": stages}))
    (project / "params.yaml").write_text(yaml.safe_dump({"ingest": ingest, "dedupe": dedupe}))


def _run(project: Path, dedupe: dict[str, Any], workers: int = 1) -> dict[str, Any]:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["dedupe"] = dedupe
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    return run_stage(project, "dedupe", PIPELINE, workers=workers)


def _removed(project: Path, stage: str = "dedupe") -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in Dataset(project / "data" / stage).removed().to_pylist()}


def _kept(project: Path) -> list[str]:
    return [str(i) for i in Dataset(project / "data" / "dedupe").table.column("id").to_pylist()]


def _object(sample_id: str) -> str:
    """The photographed object of an imagededup test file (its ukbench number, else name)."""
    if sample_id == "alpha_channel_image.png":  # ukbench00120 saved with an alpha channel
        return "00120"
    found = re.search(r"ukbench(\d{5})", sample_id)
    return found.group(1) if found else Path(sample_id).stem


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow tracking is the lineage tests' subject, not this module's: keep runs quick."""
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")


@pytest.fixture
def imagededup(project: Path, corpora: Path) -> Path:
    source = corpora / "neardup" / "imagededup"
    _setup(project, {"source": str(source), "format": "images"}, {})
    run_stage(project, "ingest", PIPELINE, workers=1)
    return project


def test_imagededup_copies_join_their_original_and_different_objects_stay(
    imagededup: Path,
) -> None:
    metrics = _run(imagededup, {})
    removed = _removed(imagededup)
    for sample_id, row in removed.items():
        assert row["reason"] == "duplicate"
        assert _object(sample_id) == _object(row["duplicate_of"]), row  # never two objects
        assert row["distance"] <= 8
    # Resized and grayscale copies join the original, as do the byte-identical copies.
    for copy in (
        "ukbench00120_gray.jpg",
        "mixed_images/ukbench00120_resize.jpg",
        "mixed_nested_images/lvl1/lvl2b/ukbench00120_resize.jpg",
        "mixed_images/ukbench00120.jpg",
    ):
        assert copy in removed, copy
    # The ten different objects of base_images/ are all still there, none merged.
    base = [
        "00120",
        "01380",
        "08976",
        "08996",
        "09012",
        "09040",
        "09060",
        "09268",
        "09348",
        "09380",
    ]
    kept_objects = [_object(i) for i in _kept(imagededup)]
    assert set(base) <= set(kept_objects)
    # The random-bytes .jpg is ingest's `unreadable`, never a duplicate.
    assert _removed(imagededup, "ingest")["mixed_images/ukbench09268_corrupt.jpg"]["reason"] == (
        "unreadable"
    )
    assert not any("corrupt" in i for i in removed)
    assert metrics["unhashable"] == 0
    assert metrics["duplicates_removed"] == len(removed)
    assert metrics["exact_duplicates_removed"] + metrics["near_duplicates_removed"] == len(removed)


def test_with_invariance_flipped_copies_join_too(imagededup: Path) -> None:
    _run(imagededup, {"invariant": True})
    removed = _removed(imagededup)
    for name in (
        "mixed_images/ukbench00120_hflip.jpg",
        "mixed_nested_images/ukbench00120_hflip.jpg",
    ):
        assert _object(removed[name]["duplicate_of"]) == "00120"
        assert removed[name]["orientation"] in ("flip_left_right", None)
        # Verified with the kept image turned the same way (or the same file as a copy).
        assert removed[name]["orientation"] is None or removed[name]["matches"] >= 20
    assert all(_object(i) == _object(r["duplicate_of"]) for i, r in removed.items())
    # Left of object 00120: one copy (all are 640x480 without labels, so the first source
    # path wins) and the copy turned by about 20 degrees.
    assert sorted(i for i in _kept(imagededup) if _object(i) == "00120") == [
        "alpha_channel_image.png",
        "mixed_images/ukbench00120_rotation.jpg",
    ]


@pytest.mark.xfail(
    strict=True,
    reason="ukbench00120_rotation.jpg is turned by about 20 degrees with black corners; "
    "perceptual hashes (and the 8 orientations) only undo flips and quarter turns",
)
def test_a_copy_rotated_by_an_arbitrary_angle_is_not_found(imagededup: Path) -> None:
    _run(imagededup, {"invariant": True})
    assert "mixed_images/ukbench00120_rotation.jpg" in _removed(imagededup)


def test_jenssegers_forest_versions_cluster_and_office_photos_do_not(
    project: Path, corpora: Path
) -> None:
    _setup(
        project,
        {"source": str(corpora / "neardup" / "jenssegers_imagehash"), "format": "images"},
        {},
    )
    run_stage(project, "ingest", PIPELINE, workers=1)
    metrics = _run(project, {})
    removed = _removed(project)
    forest = sorted(
        f"forest/{p.name}" for p in (corpora / "neardup/jenssegers_imagehash/forest").glob("*.jpg")
    )
    kept_forest = [i for i in _kept(project) if i.startswith("forest/")]
    assert len(forest) == 5 and len(kept_forest) == 1  # one cluster, one kept
    assert sorted(removed) == sorted(set(forest) - set(kept_forest))
    assert {r["duplicate_of"] for r in removed.values()} == set(kept_forest)
    assert all(0 <= r["distance"] <= 8 for r in removed.values())
    assert sorted(i for i in _kept(project) if i.startswith("office/")) == sorted(
        f"office/{p.name}" for p in (corpora / "neardup/jenssegers_imagehash/office").glob("*.jpg")
    )
    assert metrics["clusters"] == 1 and metrics["largest_cluster"] == 5


def test_demo_duplicates_are_removed_with_reasons_and_reported(demo_project: Path) -> None:
    _setup(demo_project, {}, {})
    run_stage(demo_project, "ingest", PIPELINE, workers=1)
    metrics = _run(demo_project, {}, workers=2)
    removed = _removed(demo_project)
    assert {k: v["duplicate_of"] for k, v in removed.items()} == {
        "cat_copy.jpg": "cat.jpg",
        "coffee_small.jpg": "coffee.jpg",
        "motorcycle_small.jpg": "motorcycle.jpg",
        "astronaut_recompressed.jpg": "astronaut.png",
    }
    assert removed["cat_copy.jpg"]["distance"] == 0
    assert "identical file" in removed["cat_copy.jpg"]["detail"]
    assert "near-duplicate of 'coffee.jpg'" in removed["coffee_small.jpg"]["detail"]
    assert all(r["reason"] == "duplicate" and r["conflict"] is None for r in removed.values())
    assert metrics["exact_duplicates_removed"] == 1
    assert metrics["near_duplicates_removed"] == 3
    assert json.loads((demo_project / "reports" / "dedupe.json").read_text())["clusters"] == 4
    # The hash stays as a manifest column: imagehash's hex, from the stored image.
    table = Dataset(demo_project / "data" / "dedupe").table
    rows = {r["id"]: r for r in table.select(["id", "image", "phash", "duplicates"]).to_pylist()}
    cat = rows["cat.jpg"]
    assert cat["duplicates"] == 1 and rows["coffee.jpg"]["duplicates"] == 1
    assert cat["phash"] == hash_files([demo_project / cat["image"]]).codes[0, 0].tobytes()
    assert len(to_hex(cat["phash"])) == 16
    report = (demo_project / "data" / "dedupe" / "report.html").read_text()
    assert "Duplicate clusters (4)" in report and "data:image/jpeg;base64," in report
    assert "max_distance = 12" in report
    assert "Chains cut into several clusters (0)" in report and metrics["chains_split"] == 0


def test_nearest_distance_plot_counts_each_hashed_file_once_and_dvc_renders_it(
    demo_project: Path,
) -> None:
    _setup(demo_project, {}, {})
    run_stage(demo_project, "ingest", PIPELINE, workers=1)
    metrics = _run(demo_project, {})
    plot = demo_project / "reports" / "plots" / "dedupe" / "nearest_distance.json"
    rows = json.loads(plot.read_text())
    assert [r["distance"] for r in rows] == list(range(len(rows)))  # 0, 1, ... largest
    assert sum(r["images"] for r in rows) == metrics["hashed"]  # cat_copy.jpg counted once
    distinct = metrics["input_samples"] - metrics["exact_duplicates_removed"]
    assert metrics["hashed"] == distinct - metrics["unhashable"]
    # The same figures as the report's histogram: every file at distance 0 or more.
    report = (demo_project / "data" / "dedupe" / "report.html").read_text()
    within = sum(r["images"] for r in rows if r["distance"] <= 6)
    assert f"have a near-duplicate ({within} of {metrics['hashed']})" in report
    assert "text" not in json.dumps(rows)  # numbers only
    sh(["pixelpipe", "compile", "--pipeline", PIPELINE], demo_project)
    shown = json.loads(sh(["dvc", "plots", "show", "--json"], demo_project).stdout)
    (chart,) = shown["data"]["reports/plots/dedupe/nearest_distance.json"]
    values = chart["content"]["data"]["values"]
    assert [(v["distance"], v["images"]) for v in values] == [
        (r["distance"], r["images"]) for r in rows
    ]


CHAIN_PHOTO = "photos/clothing/00f6e504-7c27-438e-a5d7-bc65e557bb2b.jpg"


@pytest.fixture
def crops(project: Path, corpora: Path, tmp_path: Path) -> Path:
    """Copies of copies of a real photo: cropped at the top left by 0, 3, 6, 9 and 12% of
    each side (lossless PNG). pHash puts each 4 or 6 bits from the next, and the first 10,
    16 and 20 bits from the third, fourth and fifth."""
    folder = tmp_path / "crops"
    folder.mkdir()
    with Image.open(corpora / CHAIN_PHOTO) as opened:
        photo = opened.convert("RGB")
    width, height = photo.size
    for k in range(5):
        box = (int(width * 0.03 * k), int(height * 0.03 * k), width, height)
        photo.crop(box).save(folder / f"crop_{3 * k:02d}.png")
    _setup(project, {"source": str(folder), "format": "images"}, {})
    run_stage(project, "ingest", PIPELINE, workers=1)
    return project


def test_a_chain_of_copies_is_cut_so_no_image_is_removed_as_a_copy_of_one_far_from_it(
    crops: Path,
) -> None:
    metrics = _run(crops, {"max_distance": 8, "verify": False})  # links within 8 (margin 2)
    removed = _removed(crops)
    # Union-find made one cluster of the five and removed crop_12 as a copy of crop_00 at
    # distance 20. Now each cluster forms around the largest remaining image.
    assert {i: r["duplicate_of"] for i, r in removed.items()} == {
        "crop_03.png": "crop_00.png",
        "crop_09.png": "crop_06.png",
    }
    assert _kept(crops) == ["crop_00.png", "crop_06.png", "crop_12.png"]
    # Each recorded distance is the true distance to the kept image, within the threshold.
    ingest = Dataset(crops / "data" / "ingest").table.select(["id", "image"]).to_pylist()
    path = {r["id"]: crops / r["image"] for r in ingest}
    for sample_id, row in removed.items():
        batch = hash_files([path[sample_id], path[row["duplicate_of"]]])
        true = int(hamming.pair_distances(to_words(batch.codes), np.array([0]), np.array([1]))[0])
        assert row["distance"] == true <= 8, sample_id
        assert row["detail"].endswith(f"distance {true}")
    assert metrics["chains_split"] == 1 and metrics["largest_component"] == 5
    assert metrics["clusters"] == 2 and metrics["largest_cluster"] == 2
    assert metrics["max_removed_distance"] == 6 and metrics["duplicates_removed"] == 2
    report = (crops / "data" / "dedupe" / "report.html").read_text()
    assert "Chains cut into several clusters (1)" in report
    assert "Chain 1: 5 images cut into 3 clusters" in report
    chain = report[report.index("Chain 1:") : report.index("<h2>Near misses")]
    assert chain.index("KEEP crop_00.png") < chain.index("crop_03.png · d=6")
    assert chain.index("KEEP crop_06.png") < chain.index("crop_09.png · d=6")
    assert "KEEP crop_12.png" in chain
    # The links across clusters and how far apart the kept images are.
    assert "<td>crop_03.png</td><td class=num>1</td><td>crop_06.png</td>" in chain
    assert "<td>crop_09.png</td><td class=num>2</td><td>crop_12.png</td>" in chain


def _copy(image: Image.Image, path: Path, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=quality)


def _sample(project: Path, name: str, width: int, height: int, anns: list[Annotation]) -> Sample:
    path = project / "data" / "ingest" / "images" / name
    return Sample(
        id=name,
        image=path.relative_to(project).as_posix(),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        width=width,
        height=height,
        source=f"raw/{name}",
        annotations=anns,
    )


@pytest.fixture
def handmade(project: Path) -> Path:
    """An ``ingest`` output written directly: one photo in three sizes with different labels,
    a byte-identical pair of truncated files, and an unrelated picture."""
    with Image.open(ASTRONAUT) as opened:
        photo = opened.convert("RGB")
    folder = project / "data" / "ingest" / "images"
    _copy(photo, folder / "big.jpg")
    _copy(photo.resize((256, 256)), folder / "half.jpg", 70)
    _copy(photo.resize((128, 128)), folder / "quarter.jpg", 80)
    _copy(photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM).rotate(45), folder / "other.jpg")
    good = (folder / "big.jpg").read_bytes()
    (folder / "broken_a.jpg").write_bytes(good[:3000])
    (folder / "broken_b.jpg").write_bytes(good[:3000])
    person = Annotation(1, (20.0, 15.0, 345.0, 497.0))
    samples = [
        _sample(project, "big.jpg", 512, 512, [person]),
        _sample(
            project,
            "half.jpg",
            256,
            256,
            [Annotation(1, (10.0, 7.5, 172.5, 248.5)), Annotation(2, (5.0, 5.0, 20.0, 20.0))],
        ),
        _sample(project, "quarter.jpg", 128, 128, [Annotation(2, (0.0, 0.0, 30.0, 30.0))]),
        _sample(project, "other.jpg", 512, 512, []),
        _sample(project, "broken_a.jpg", 512, 512, []),
        _sample(project, "broken_b.jpg", 512, 512, []),
    ]
    builder = DatasetBuilder([Category(1, "person"), Category(2, "rocket")])
    for sample in samples:
        builder.add(sample)
    write_dataset(
        project / "data" / "ingest", builder, stage="ingest", kind="ingest", params={}, inputs={}
    )
    _setup(project, {}, {})
    return project


@pytest.mark.parametrize(
    ("keep", "kept"),
    [("largest", "big.jpg"), ("most_annotations", "half.jpg"), ("first", "big.jpg")],
)
def test_keep_policy_and_label_conflicts(handmade: Path, keep: str, kept: str) -> None:
    metrics = _run(handmade, {"keep": keep})
    removed = _removed(handmade)
    cluster = {"big.jpg", "half.jpg", "quarter.jpg"}
    assert {i for i, r in removed.items() if r["duplicate_of"] == kept} == cluster - {kept}
    assert kept in _kept(handmade) and "other.jpg" in _kept(handmade)
    conflicts = {i: r["conflict"] for i, r in removed.items() if r["conflict"]}
    assert all(c.startswith("labels differ: kept copy has") for c in conflicts.values())
    assert set(conflicts) == cluster - {kept}  # the three copies disagree pairwise
    assert metrics["annotation_conflicts"] == len(conflicts)
    # Two identical truncated files: one removed as an exact copy, the other kept unhashed.
    assert removed["broken_b.jpg"]["duplicate_of"] == "broken_a.jpg"
    assert removed["broken_b.jpg"]["distance"] == 0
    assert metrics["unhashable"] == 1
    report = (handmade / "data" / "dedupe" / "report.html").read_text()
    assert "Not hashed (1)" in report and "broken_a.jpg" in report


def test_scaled_boxes_agree_and_moved_boxes_conflict() -> None:
    from stages._dedupe.decide import conflict

    names = {1: "person"}
    kept = [{"category_id": 1, "bbox": [20.0, 15.0, 345.0, 497.0]}]
    half = [{"category_id": 1, "bbox": [10.0, 7.5, 172.5, 248.5]}]
    moved = [{"category_id": 1, "bbox": [300.0, 300.0, 100.0, 100.0]}]
    assert conflict(kept, (512, 512), half, (256, 256), names, True) is None
    found = conflict(kept, (512, 512), moved, (512, 512), names, True)
    assert found is not None and found.startswith("boxes differ: 1 box(es)")
    assert conflict(kept, (512, 512), moved, (512, 512), names, False) is None


def test_results_are_identical_with_one_and_two_workers(handmade: Path) -> None:
    outputs = []
    for workers in (1, 2):
        _run(handmade, {"invariant": True}, workers=workers)
        folder = handmade / "data" / "dedupe"
        outputs.append({p.name: p.read_bytes() for p in sorted(folder.iterdir())})
        plots = handmade / "reports" / "plots" / "dedupe"
        outputs[-1].update({p.name: p.read_bytes() for p in sorted(plots.iterdir())})
    assert outputs[0].keys() == {
        "categories.json",
        "dataset.json",
        "nearest_distance.json",
        "removed.parquet",
        "report.html",
        "samples.parquet",
    }
    assert outputs[0] == outputs[1]
    table = pq.read_table(handmade / "data" / "dedupe" / "samples.parquet")
    assert table.schema.field("phash_orientations").type.byte_width == 64


def test_near_off_removes_only_identical_files(handmade: Path) -> None:
    metrics = _run(handmade, {"near": False})
    assert set(_removed(handmade)) == {"broken_b.jpg"}
    assert metrics["search"] == "none" and metrics["hashed"] == 0
    assert "phash" not in Dataset(handmade / "data" / "dedupe").table.column_names


def test_params_reject_a_threshold_at_half_the_bits() -> None:
    with pytest.raises(ValidationError, match="max_distance 32 must be below 32"):
        Params(max_distance=32)
    assert Params(hash_size=16, max_distance=32).max_distance == 32
    with pytest.raises(ValidationError, match="hash_size"):
        Params(hash_size=12)  # type: ignore[arg-type]
    assert HashSpec().bits == Params().hash_size ** 2


@pytest.mark.parametrize(
    ("turn", "back"),
    [
        ("ROTATE_90", "rotate_270"),
        ("ROTATE_270", "rotate_90"),
        ("FLIP_LEFT_RIGHT", "flip_left_right"),
    ],
)
def test_orientation_names_the_turn_that_maps_the_copy_onto_the_kept_image(
    turn: str, back: str
) -> None:
    from pixelpipe.imaging.hashing import hash_image, to_words
    from stages.dedupe import _orientation

    with Image.open(ASTRONAUT) as opened:
        image = opened.convert("RGB").resize((300, 200))
    spec = HashSpec(invariant=True, draft=False)
    copy = image.transpose(Image.Transpose[turn])
    words = to_words(np.stack([hash_image(copy, spec), hash_image(image, spec)]))
    assert _orientation(words, 0, 1) == back
    restored = copy.transpose(Image.Transpose[back.upper()])
    assert np.array_equal(np.asarray(restored), np.asarray(image))
