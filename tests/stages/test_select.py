"""The select stage on manifests built here: ranking, budget, quotas, groups, the LS batch.

The manifests carry their own 64-bit ``phash`` column (as dedupe leaves it), so near
duplicates are exact by construction and no pixels are needed, except in the one test
that lets the stage hash real images itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from codes import far_codes
from PIL import Image
from steps import after_source

from pixelpipe import Annotation, Category, PixelpipeError, Sample, derive_seed
from pixelpipe.dataset import Dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.formats import labelstudio
from pixelpipe.formats.base import ReadOptions
from pixelpipe.sources import open_tree

CATEGORIES = [Category(1, "car"), Category(2, "person"), Category(3, "bike")]
BATCH = Path("data") / "select" / "batch" / "labelstudio.json"


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")


CODES = far_codes(40, seed=11)


def pred(category: int, score: float, model: str = "det", box: float = 10.0) -> Annotation:
    """A prediction: a box with a score."""
    return Annotation(category, (box, 5.0, 20.0, 10.0), score=score, annotator=model)


def human(category: int) -> Annotation:
    """A person's label: no score."""
    return Annotation(category, (1.0, 1.0, 8.0, 8.0), annotator="alice")


def make(index: int, annotations: list[Annotation], **extra: Any) -> Sample:
    """Sample ``img###.jpg`` (200x100) with a hash far from every other sample's."""
    code = extra.pop("code", CODES[index])
    sample_id = f"img{index:03d}.jpg"
    return Sample(
        id=sample_id,
        image=f"data/src/images/{sample_id}",
        sha256=f"{index:064x}",
        width=200,
        height=100,
        source=f"raw/{sample_id}",
        annotations=annotations,
        extra={"phash": code.to_bytes(8, "big"), **extra} if code is not None else extra,
    )


def project(root: Path, samples: list[Sample], **params: Any) -> Path:
    """A project whose stage ``src`` holds ``samples``, with a ``select`` stage after it."""
    return after_source(root, samples, CATEGORIES, "select", **params)


def run(root: Path) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """Run select; the batch's ids in order, each row by id, and the metrics."""
    run_stage(root, "select", "pipelines/p.yaml", workers=1)
    tasks = json.loads((root / BATCH).read_text())
    rows = {r["id"]: r for r in Dataset(root / "data" / "select").table.to_pylist()}
    metrics = json.loads((root / "reports" / "select.json").read_text())
    return [t["data"]["pixelpipe_id"] for t in tasks], rows, metrics


def ranked_samples() -> list[Sample]:
    """Five images with hand-computed uncertainties (K = 3, least confidence 3(1-p)/2)."""
    return [
        make(0, [human(1), pred(2, 0.1)]),  # labelled: never a candidate
        make(1, [pred(1, 0.9)]),  # 0.15
        make(2, [pred(1, 0.95), pred(2, 0.4, box=50.0)]),  # max(0.075, 0.9) = 0.9
        make(3, [pred(3, 0.6)]),  # 0.6
        make(4, []),  # no prediction: 1.0
    ]


def test_ranks_by_the_most_uncertain_box_and_writes_the_columns(tmp_path: Path) -> None:
    order, rows, metrics = run(project(tmp_path, ranked_samples(), budget=3))
    assert order == ["img004.jpg", "img002.jpg", "img003.jpg"]
    expected = {"img001.jpg": 0.15, "img002.jpg": 0.9, "img003.jpg": 0.6, "img004.jpg": 1.0}
    for sample_id, value in expected.items():
        assert rows[sample_id]["uncertainty"] == pytest.approx(value)
    assert rows["img000.jpg"]["uncertainty"] is None  # labelled
    assert [i for i, r in sorted(rows.items()) if r["selected"]] == sorted(order)
    assert metrics["candidates"] == 4 and metrics["selected"] == 3 and metrics["labelled"] == 1
    assert metrics["selected_per_class"] == {"bike": 1, "car": 1, "no_prediction": 1}
    assert metrics["candidates_per_class"] == {"bike": 1, "car": 2, "no_prediction": 1}


@pytest.mark.parametrize(
    ("measure", "value"),
    [
        # p = 0.6 over K = 3: 3 * 0.4 / 2
        ("least_confidence", 0.6),
        # 1 - (0.6 - 0.2)
        ("margin", 0.6),
        # (0.6 log2(1/0.6) + 0.4 log2(1/0.2)) / log2 3 = (0.44218 + 0.92877) / 1.58496
        ("entropy", 0.8649735),
    ],
)
def test_each_measure_gives_its_value(tmp_path: Path, measure: str, value: float) -> None:
    _, rows, _ = run(project(tmp_path, ranked_samples(), budget=1, measure=measure))
    assert rows["img003.jpg"]["uncertainty"] == pytest.approx(value, abs=1e-6)


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        # nothing asked, nothing sent
        (0, []),
        # the single most uncertain
        (1, ["img004.jpg"]),
        # more than there are candidates: every candidate, never the labelled image
        (50, ["img004.jpg", "img002.jpg", "img003.jpg", "img001.jpg"]),
    ],
)
def test_budget_caps_the_batch(tmp_path: Path, budget: int, expected: list[str]) -> None:
    order, rows, _ = run(project(tmp_path, ranked_samples(), budget=budget))
    assert order == expected
    assert sum(r["selected"] for r in rows.values()) == len(expected)
    assert not rows["img000.jpg"]["selected"]


def test_labelled_images_are_never_selected_whatever_their_predictions(tmp_path: Path) -> None:
    samples = [make(i, [human(1), pred(1, 0.0)]) for i in range(5)] + [make(5, [pred(1, 0.99)])]
    order, rows, metrics = run(project(tmp_path, samples, budget=10))
    assert order == ["img005.jpg"]
    assert all(rows[f"img00{i}.jpg"]["uncertainty"] is None for i in range(5))
    assert metrics["labelled"] == 5


def test_include_empty_false_leaves_images_without_predictions_out(tmp_path: Path) -> None:
    order, rows, metrics = run(project(tmp_path, ranked_samples(), budget=10, include_empty=False))
    assert order == ["img002.jpg", "img003.jpg", "img001.jpg"]
    assert rows["img004.jpg"]["uncertainty"] is None and not rows["img004.jpg"]["selected"]
    assert metrics["without_prediction"] == 1 and metrics["candidates"] == 3


def test_per_class_quota_caps_images_by_their_top_predicted_class(tmp_path: Path) -> None:
    # five car images, most uncertain of all; the top class is the highest-scoring box's
    samples = [make(i, [pred(1, 0.4 + 0.01 * i)]) for i in range(5)]
    samples.append(make(5, [pred(2, 0.6), pred(1, 0.35, box=70.0)]))  # person tops: 0.6 > 0.35
    samples += [make(6 + i, [pred(3, 0.8 + 0.01 * i)]) for i in range(3)]
    order, _, metrics = run(project(tmp_path, samples, budget=5, per_class={"car": 2}))
    # img005 ranks first (its car box at 0.35), but counts as person
    assert order == ["img005.jpg", "img000.jpg", "img001.jpg", "img006.jpg", "img007.jpg"]
    assert metrics["selected_per_class"] == {"bike": 2, "car": 2, "person": 1}
    assert metrics["skipped_over_quota"] == 3


def test_a_quota_of_zero_excludes_a_class(tmp_path: Path) -> None:
    samples = [make(0, [pred(1, 0.4)]), make(1, [pred(2, 0.9)])]
    order, _, _ = run(project(tmp_path, samples, budget=2, per_class={"car": 0}))
    assert order == ["img001.jpg"]


def flip(code: int, bits: int) -> int:
    """``code`` with its lowest ``bits`` bits flipped."""
    return code ^ ((1 << bits) - 1)


def twins() -> list[Sample]:
    """Three pairs of near duplicates (3, 8 and 10 bits apart) and one loner."""
    samples = []
    for pair, bits in enumerate((3, 8, 10)):
        base = CODES[pair]
        samples.append(make(2 * pair, [pred(1, 0.5 + 0.1 * pair)], code=base))
        samples.append(make(2 * pair + 1, [pred(1, 0.45 + 0.1 * pair)], code=flip(base, bits)))
    samples.append(make(6, [pred(1, 0.95)], code=CODES[30]))
    return samples


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # default 10 bits: one of each pair (the more uncertain), then the loner
        ({}, ["img001.jpg", "img003.jpg", "img005.jpg", "img006.jpg"]),
        # 8 bits: the 10-bit pair is two groups
        ({"near_distance": 8}, ["img001.jpg", "img003.jpg", "img005.jpg", "img004.jpg"]),
        # no near-duplicate groups: the ranking alone
        ({"near_distance": None}, ["img001.jpg", "img000.jpg", "img003.jpg", "img002.jpg"]),
    ],
)
def test_at_most_one_image_per_near_duplicate_group(
    tmp_path: Path, params: dict[str, Any], expected: list[str]
) -> None:
    order, _, metrics = run(project(tmp_path, twins(), budget=4, **params))
    assert order == expected
    if params == {}:
        assert metrics["groups"] == 4 and metrics["skipped_same_group"] == 3


def test_a_user_column_and_identical_files_form_groups_too(tmp_path: Path) -> None:
    samples = [make(i, [pred(1, 0.4 + 0.05 * i)], video=f"v{i // 2}") for i in range(4)]
    copy = make(4, [pred(1, 0.41)], code=None)
    copy.sha256 = samples[0].sha256  # the same file as img000, without a hash
    samples.append(copy)
    order, _, _ = run(project(tmp_path, samples, budget=5, group_column="video"))
    assert order == ["img000.jpg", "img002.jpg"]


def test_the_stage_hashes_images_itself_without_a_hash_column(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "src" / "images"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    samples = []
    for index in range(3):
        pixels = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
        photo = Image.fromarray(pixels).resize((200, 100), Image.Resampling.BICUBIC)
        for copy in range(2):  # a PNG and a slightly different JPEG of the same photo
            sample = make(2 * index + copy, [pred(1, 0.5 + 0.1 * index + 0.01 * copy)], code=None)
            path = tmp_path / sample.image
            photo.save(path, format="PNG" if copy == 0 else "JPEG", quality=85)
            samples.append(sample)
    order, _, metrics = run(project(tmp_path, samples, budget=6))
    assert order == ["img000.jpg", "img002.jpg", "img004.jpg"]
    assert metrics["groups"] == 3


def test_ties_are_broken_by_a_seeded_hash_and_runs_repeat_exactly(tmp_path: Path) -> None:
    samples = [make(i, [pred(1, 0.7)]) for i in range(12)]
    first, _, _ = run(project(tmp_path / "a", samples, budget=5, seed=4))
    manifest = (tmp_path / "a" / "data" / "select" / "samples.parquet").read_bytes()
    batch = (tmp_path / "a" / BATCH).read_bytes()
    again, _, _ = run(project(tmp_path / "b", samples, budget=5, seed=4))
    assert again == first
    assert (tmp_path / "b" / "data" / "select" / "samples.parquet").read_bytes() == manifest
    assert (tmp_path / "b" / BATCH).read_bytes() == batch
    expected = sorted((s.id for s in samples), key=lambda i: derive_seed(4, "select", i))[:5]
    assert first == expected
    other, _, _ = run(project(tmp_path / "c", samples, budget=5, seed=5))
    assert other != first


def test_the_dataset_passes_through_with_two_more_columns(tmp_path: Path) -> None:
    run(project(tmp_path, ranked_samples(), budget=2))
    before = Dataset(tmp_path / "data" / "src").table
    after = Dataset(tmp_path / "data" / "select").table
    assert after.drop_columns(["uncertainty", "selected"]).equals(before)
    assert after.schema.field("uncertainty").type == "double"
    assert after.schema.field("selected").type == "bool"


def test_a_model_param_scores_that_models_predictions_only(tmp_path: Path) -> None:
    samples = [
        make(0, [pred(1, 0.95, model="a"), pred(1, 0.3, model="b")]),
        make(1, [pred(1, 0.6, model="a")]),
    ]
    order, rows, _ = run(project(tmp_path, samples, budget=1, model="a"))
    assert order == ["img001.jpg"]
    assert rows["img000.jpg"]["uncertainty"] == pytest.approx(0.075)
    tasks = json.loads((tmp_path / BATCH).read_text())
    assert tasks[0]["predictions"][0]["model_version"] == "a"


def test_min_score_ignores_low_boxes(tmp_path: Path) -> None:
    samples = [make(0, [pred(1, 0.9), pred(2, 0.2)]), make(1, [pred(1, 0.8)])]
    _, rows, _ = run(project(tmp_path, samples, budget=1, min_score=0.5))
    assert rows["img000.jpg"]["uncertainty"] == pytest.approx(0.15)


def test_the_batch_reads_back_as_predictions_with_the_reader(tmp_path: Path) -> None:
    samples = ranked_samples()
    order, _, _ = run(project(tmp_path, samples, budget=3))
    tasks = json.loads((tmp_path / BATCH).read_text())
    # the task score is 1 - uncertainty: Label Studio shows the lowest (most uncertain) first
    scores = [t["predictions"][0]["score"] for t in tasks]
    assert scores == pytest.approx([0.0, 0.1, 0.4])
    assert [t["data"]["pixelpipe_rank"] for t in tasks] == [1, 2, 3]
    labels = labelstudio.read(open_tree(str(tmp_path / BATCH)), ReadOptions(predictions=True))
    names = labels.category_names()
    by_sample = {s.id: s for s in samples}
    read_back = {i.image: i for i in labels.items}
    assert sorted(read_back) == sorted(f"data/src/images/{i}" for i in order)
    for sample_id in order:
        item = read_back[f"data/src/images/{sample_id}"]
        sample = by_sample[sample_id]
        if sample.annotations:  # an empty prediction declares no size
            assert (item.width, item.height) == (sample.width, sample.height)
        got = sorted(
            (
                names[a.category_id],
                a.score,
                a.annotator,
                tuple(round(v * s, 6) for v, s in zip(a.bbox, (200, 100, 200, 100), strict=True)),
            )
            for a in item.annotations
        )
        sent = sorted(
            ({c.id: c.name for c in CATEGORIES}[a.category_id], a.score, "det", a.bbox)
            for a in sample.annotations
        )
        assert got == sent


@pytest.mark.parametrize(
    ("image_prefix", "url"),
    [
        # default: Label Studio's local files, the path relative to the project
        ("", "/data/local-files/?d=data/src/images/img%20000.jpg"),
        # a bucket: a slash added between
        ("s3://bucket/proj", "s3://bucket/proj/data/src/images/img%20000.jpg"),
        # a prefix that ends in '=' takes the path as it is
        ("https://host/files?path=", "https://host/files?path=data/src/images/img%20000.jpg"),
    ],
)
def test_image_urls(tmp_path: Path, image_prefix: str, url: str) -> None:
    sample = make(0, [pred(1, 0.5)])
    sample.image = "data/src/images/img 000.jpg"  # a space, percent-encoded
    run(project(tmp_path, [sample], budget=1, image_prefix=image_prefix))
    task = json.loads((tmp_path / BATCH).read_text())[0]
    assert task["data"]["image"] == url
    assert task["data"]["pixelpipe_sha256"] == f"{0:064x}"


@pytest.mark.parametrize(
    ("samples", "params", "message"),
    [
        # a class the class map lacks, with a suggestion
        (
            [make(0, [pred(1, 0.5)])],
            {"per_class": {"persn": 3}},
            r"select.per_class.persn: no class 'persn' in the class map \(did you mean 'person'",
        ),
        # a model that made no prediction
        (
            [make(0, [pred(1, 0.5, model="yolo-v8")])],
            {"model": "yolo-v9"},
            r"select.model: no prediction by 'yolo-v9' in the input \(did you mean 'yolo-v8'",
        ),
        # a score outside [0, 1] names the image and the model
        (
            [make(0, [pred(1, 1.5)])],
            {},
            r"data/src/samples.parquet: score 1.5 of a prediction by 'det' on 'img000.jpg'",
        ),
        # a group column the manifest lacks
        (
            [make(0, [pred(1, 0.5)], video="v")],
            {"group_column": "vidoe"},
            r"select.group_column: no column 'vidoe' .*did you mean 'video'",
        ),
        # a threshold at half the bits of the hashes
        (
            [make(0, [pred(1, 0.5)])],
            {"near_distance": 32},
            r"select.near_distance: 32 bits is at least half of the 64-bit hashes",
        ),
        # a negative quota
        (
            [make(0, [pred(1, 0.5)])],
            {"per_class": {"car": -1}},
            r"the quota of 'car' must not be negative",
        ),
    ],
)
def test_mistakes_are_errors_with_the_key(
    tmp_path: Path, samples: list[Sample], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(PixelpipeError, match=message):
        run(project(tmp_path, samples, budget=1, **params))


def test_an_empty_manifest_gives_an_empty_batch(tmp_path: Path) -> None:
    order, rows, metrics = run(project(tmp_path, [], budget=5))
    assert order == [] and rows == {}
    assert metrics["candidates"] == 0 and metrics["selected"] == 0
