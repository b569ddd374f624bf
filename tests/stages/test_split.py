"""The split stage on manifests built here: groups, stability, existing splits, leaks, errors.

The manifests carry their own 64-bit ``phash`` column (as dedupe leaves it), so near
duplicates are exact by construction and no pixels are needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from codes import far_codes
from steps import after_source

from pixelpipe import Annotation, Category, PixelpipeError, Sample
from pixelpipe.dataset import Dataset
from pixelpipe.engine.runner import run_stage
from stages._split import assign

CATEGORIES = [Category(1, "car"), Category(2, "person"), Category(3, "bike"), Category(4, "dog")]


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")


def flip(code: int, bits: int, offset: int = 0) -> int:
    """``code`` with ``bits`` bits flipped, starting at bit ``offset``."""
    return code ^ sum(1 << ((offset + k) % 64) for k in range(bits))


def make(index: int, **fields: Any) -> Sample:
    """A sample ``img###.jpg`` with defaults for everything not given."""
    cats = fields.pop("cats", ())
    code = fields.pop("code", None)
    extra = dict(fields.pop("extra", {}))
    if code is not None:
        extra["phash"] = code.to_bytes(8, "big")
    sample_id = fields.pop("id", f"img{index:03d}.jpg")
    return Sample(
        id=sample_id,
        image=fields.pop("image", f"data/src/images/{sample_id}"),
        sha256=fields.pop("sha256", f"{index:064x}"),
        width=100,
        height=100,
        source=fields.pop("source", f"raw/{sample_id}"),
        annotations=[Annotation(c, (1.0, 1.0, 10.0, 10.0)) for c in cats],
        extra=extra,
        **fields,
    )


def project(root: Path, samples: list[Sample], **params: Any) -> Path:
    """A project whose stage ``src`` already holds ``samples``, with a ``split`` stage."""
    return after_source(root, samples, CATEGORIES, "split", **params)


def run_split(root: Path, workers: int = 1) -> tuple[dict[str, str], dict[str, Any]]:
    """Run the split stage; each kept sample's split, and the report."""
    run_stage(root, "split", "pipelines/p.yaml", workers=workers)
    out = Dataset(root / "data" / "split")
    splits = dict(
        zip(out.table.column("id").to_pylist(), out.table.column("split").to_pylist(), strict=True)
    )
    report = json.loads((root / "data" / "split" / "report.json").read_text())
    return splits, report


def grouped(kind: str) -> tuple[list[Sample], dict[str, Any], list[list[str]]]:
    """100 samples in 20 groups of 5 joined by ``kind``; the samples, params, groups."""
    codes = far_codes(100)
    samples: list[Sample] = []
    params: dict[str, Any] = {}
    for i in range(100):
        g = i // 5
        fields: dict[str, Any] = {"code": codes[i], "cats": [1 + i % 4]}
        if kind == "group column":
            fields["group"] = f"g{g}"
        elif kind == "user column":
            fields["extra"] = {"patient": f"p{g}"}
            params["group_by"] = ["patient"]
        elif kind == "source pattern":
            fields["source"] = f"s3://bucket/patient_{g}/scan{i}.jpg"
            params["group_pattern"] = r"/patient_(\d+)/"
        elif kind == "identical files":
            fields["sha256"] = f"{g:064x}"
        elif kind == "near duplicates":
            fields["code"] = flip(
                codes[g * 5], 2 * (i % 5), offset=3 * (i % 5)
            )  # chain of <= 8 bits
        elif kind == "copies of one parent" and i % 5:
            fields["parent"] = f"img{g * 5:03d}.jpg"
            params["augmented_splits"] = ["train", "val", "test"]
        samples.append(make(i, **fields))
    members = [[f"img{i:03d}.jpg" for i in range(g * 5, g * 5 + 5)] for g in range(20)]
    return samples, params, members


@pytest.mark.parametrize(
    "kind",
    [
        "group column",  # the manifest's own `group` values
        "user column",  # group_by: [patient], an extra manifest column
        "source pattern",  # group_pattern over the source URI
        "identical files",  # same sha256
        "near duplicates",  # phash within near_distance, chained transitively
        "copies of one parent",  # derived images follow their parent
    ],
)
def test_groups_never_cross_splits(kind: str, tmp_path: Path) -> None:
    samples, params, members = grouped(kind)
    splits, report = run_split(project(tmp_path, samples, **params))
    for group in members:
        assert len({splits[m] for m in group}) == 1, f"{kind}: group {group} crosses splits"
    assert len(set(splits.values())) == 3  # the groups themselves are spread
    assert report["leak_check"]["result"] == "clean"
    assert report["groups"]["count"] == 20


def test_near_duplicates_are_grouped_transitively_and_only_within_distance(tmp_path: Path) -> None:
    codes = far_codes(60)
    # a - b at 10 bits, b - c at 10 bits (a - c at 20): one group; d at 14 bits from a: apart.
    a = codes[0]
    b = flip(a, 10)
    c = flip(b, 10, offset=10)
    samples = [
        make(0, code=a),
        make(1, code=b),
        make(2, code=c),
        make(3, code=flip(a, 14, offset=40)),
    ]
    samples += [make(i, code=codes[i]) for i in range(4, 60)]
    splits, report = run_split(project(tmp_path, samples, near_distance=12))
    assert splits["img000.jpg"] == splits["img001.jpg"] == splits["img002.jpg"]
    assert report["groups"]["largest"] == 3
    assert report["groups"]["rows_joined_by"]["near_duplicate"] == 2
    assert report["leak_check"]["pairs_within_distance"] == 2


def test_adding_and_removing_images_never_moves_the_others(tmp_path: Path) -> None:
    codes = far_codes(440, min_distance=20)
    base = [
        make(i, code=codes[i], cats=[1 + i % 3], group=f"g{i // 4}" if i % 7 == 0 else None)
        for i in range(400)
    ]
    first, _ = run_split(project(tmp_path / "v1", base))
    grown = base[:380] + [make(i, code=codes[i], cats=[1 + i % 3]) for i in range(400, 440)]
    second, _ = run_split(project(tmp_path / "v2", grown))
    moved = [i for i in first if i in second and first[i] != second[i]]
    assert not moved
    assert len(second) == 420


def test_copies_outside_the_augmented_splits_are_removed_with_a_reason(tmp_path: Path) -> None:
    codes = far_codes(40)
    samples = [make(i, code=codes[i], cats=[1]) for i in range(40)]
    samples += [
        make(100 + i, id=f"img{i:03d}.aug0.jpg", parent=f"img{i:03d}.jpg", cats=[1])
        for i in range(40)
    ]
    root = project(tmp_path, samples)
    splits, report = run_split(root)
    removed = Dataset(root / "data" / "split").removed()
    rows = removed.to_pylist()
    assert {r["reason"] for r in rows} == {"outside_augmented_splits"}
    for row in rows:
        parent = row["id"].replace(".aug0", "")
        assert splits[parent] != "train"
        assert f"'{parent}'" in row["detail"] and row["split"] == splits[parent]
    copies = [i for i in splits if ".aug0" in i]
    assert copies and all(splits[c] == "train" == splits[c.replace(".aug0", "")] for c in copies)
    assert len(copies) + len(rows) == 40
    assert report["copies_removed"] == len(rows)
    assert report["splits"]["train"]["copies"] == len(copies)


@pytest.mark.parametrize(
    ("given", "params", "expected"),
    [
        # keep: preset splits stay, unset ones are assigned
        (
            {0: "train", 1: "val", 2: "test"},
            {"existing": "keep"},
            {0: "train", 1: "val", 2: "test"},
        ),
        # keep with a rename of the source's name
        (
            {0: "valid", 1: "valid"},
            {"existing": "keep", "rename": {"valid": "val"}},
            {0: "val", 1: "val"},
        ),
        # keep: a source split outside the requested names stays as it is
        ({0: "holdout"}, {"existing": "keep"}, {0: "holdout"}),
        # keep, but a group split across two source splits goes where most of it is
        (
            {10: "test", 11: "train", 12: "test"},
            {"existing": "keep"},
            {10: "test", 11: "test", 12: "test"},
        ),
    ],
)
def test_existing_splits(
    given: dict[int, str], params: dict[str, Any], expected: dict[int, str], tmp_path: Path
) -> None:
    codes = far_codes(40)
    samples = [
        make(i, code=codes[i], split=given.get(i), group="trio" if i in (10, 11, 12) else None)
        for i in range(40)
    ]
    splits, report = run_split(project(tmp_path, samples, **params))
    for index, split in expected.items():
        assert splits[f"img{index:03d}.jpg"] == split
    assert report["existing"]["kept"] == len(given)
    conflicts = 1 if 11 in given else 0
    assert report["existing"]["moved"] == conflicts
    assert report["leak_check"]["result"] == "clean"


def test_ignored_existing_splits_do_not_change_the_assignment(tmp_path: Path) -> None:
    codes = far_codes(50)
    plain = [make(i, code=codes[i]) for i in range(50)]
    preset = [make(i, code=codes[i], split="test") for i in range(50)]
    assert (
        run_split(project(tmp_path / "a", plain))[0]
        == run_split(project(tmp_path / "b", preset))[0]
    )


def _pair_in_two_splits() -> tuple[str, str]:
    """``img000.jpg`` and the first id the default hash assignment puts elsewhere."""
    ids = [f"img{i:03d}.jpg" for i in range(60)]
    where = assign.by_hash(assign.fractions(0, [f"id={i}" for i in ids]), np.array([0.8, 0.1, 0.1]))
    return ids[0], ids[int(np.flatnonzero(where != where[0])[0])]


@pytest.mark.parametrize(
    ("fail", "outcome"),
    [
        (True, "raises"),  # fail_on_leak: the stage stops and names the pair
        (False, "reported"),  # fail_on_leak: false: written, the report says leak
    ],
)
def test_a_near_duplicate_pair_across_splits_is_a_leak(
    fail: bool, outcome: str, tmp_path: Path
) -> None:
    a, b = _pair_in_two_splits()
    codes = far_codes(60)
    near = flip(codes[0], 6)
    samples = [make(i, code=near if f"img{i:03d}.jpg" == b else codes[i]) for i in range(60)]
    params = {"near_distance": None, "leak_distance": 12, "fail_on_leak": fail}
    root = project(tmp_path, samples, **params)
    if outcome == "raises":
        with pytest.raises(
            PixelpipeError, match=r"leak check failed: 1 near-duplicate pairs .*img000\.jpg"
        ):
            run_split(root)
        assert not (root / "data" / "split").exists()
    else:
        splits, report = run_split(root)
        assert splits[a] != splits[b]
        assert report["leak_check"]["pairs_crossing"] == 1
        assert report["leak_check"]["pair_examples"][0]["distance"] == 6


def test_stratified_balances_every_class_better_than_hashing(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    codes = far_codes(300, min_distance=20)
    samples = []
    for i in range(300):
        cats = [c for c, p in ((1, 0.6), (2, 0.3), (3, 0.1), (4, 0.04)) if rng.random() < p]
        samples.append(make(i, code=codes[i], cats=cats))
    _, stratified = run_split(project(tmp_path / "s", samples, method="stratified"))
    _, hashed = run_split(project(tmp_path / "h", samples, method="hash"))
    assert stratified["max_class_count_error"] <= 1.5
    assert stratified["max_class_count_error"] < hashed["max_class_count_error"]
    for name, want in (("train", 240), ("val", 30), ("test", 30)):
        assert abs(stratified["splits"][name]["images"] - want) <= 1


def test_report_has_per_class_counts_and_the_leak_check(tmp_path: Path) -> None:
    codes = far_codes(30)
    samples = [make(i, code=codes[i], cats=[1, 2] if i % 2 else [3]) for i in range(30)]
    root = project(tmp_path, samples)
    _, report = run_split(root)
    by_name = {c["name"]: c for c in report["classes"]}
    assert sum(by_name["car"]["images"].values()) == 15
    assert sum(by_name["bike"]["boxes"].values()) == 15
    assert sum(by_name["dog"]["images"].values()) == 0
    assert report["leak_check"]["result"] == "clean"
    assert report["leak_check"]["hashed_images"] == 30
    html = (root / "data" / "split" / "report.html").read_text()
    assert "Leak check: clean" in html and "person" in html
    metrics = json.loads((root / "reports" / "split.json").read_text())
    assert "leak_check" not in metrics  # text: in dataset.json, not in the DVC metrics
    info = json.loads((root / "data" / "split" / "dataset.json").read_text())
    assert info["notes"]["leak_check"] == "clean"
    assert metrics["images_train"] + metrics["images_val"] + metrics["images_test"] == 30


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # ratios must sum to 1
        ({"splits": {"train": 0.8, "val": 0.1}}, r"split\.splits: .*sum to 1, they sum to 0\.9"),
        # a ratio above 1
        ({"splits": {"train": 1.5, "val": -0.5}}, r"ratio of 'train' must be from 0 to 1"),
        # a pattern that is not a regular expression
        ({"group_pattern": "patient_(\\d+"}, r"group_pattern: .*not a regular expression"),
        # copies kept in a split that does not exist
        (
            {"augmented_splits": ["training"]},
            r"augmented_splits \['training'\] are not among the splits",
        ),
        # an unknown group column, with a did-you-mean
        (
            {"group_by": ["patiend"]},
            r"split\.group_by: no column 'patiend' .*did you mean 'patient'",
        ),
        # a near-duplicate distance no hash can support
        (
            {"near_distance": 40},
            r"split\.near_distance: 40 bits is at least half of the 64-bit hashes",
        ),
        # an unknown method
        ({"method": "random"}, r"split\.method: .*'hash' or 'stratified'"),
    ],
)
def test_param_mistakes_are_clear_errors(
    params: dict[str, Any], message: str, tmp_path: Path
) -> None:
    codes = far_codes(10)
    samples = [make(i, code=codes[i], extra={"patient": f"p{i}"}) for i in range(10)]
    with pytest.raises(PixelpipeError, match=message):
        run_split(project(tmp_path, samples, **params))


def test_without_near_duplicate_grouping_the_same_data_leaks(tmp_path: Path) -> None:
    samples, _, members = grouped("near duplicates")
    params = {"near_distance": None, "leak_distance": 12, "fail_on_leak": False}
    splits, report = run_split(project(tmp_path, samples, **params))
    crossing = [g for g in members if len({splits[m] for m in g}) > 1]
    assert crossing  # the control: grouping is what keeps them together
    assert report["leak_check"]["pairs_crossing"] > 0
    assert report["leak_check"]["result"].endswith("are in different splits")


def test_invariant_hashes_group_flipped_copies(tmp_path: Path) -> None:
    """With dedupe's ``phash_orientations`` (8 codes per image), a flipped copy groups."""
    codes = far_codes(8 * 40, min_distance=18)
    samples = []
    for i in range(40):
        turns = codes[8 * i : 8 * i + 8]
        if i % 2:  # image i is image i-1 flipped: its own code is i-1's flipped code
            turns = [codes[8 * (i - 1) + 1], *turns[1:]]
        extra = {"phash_orientations": b"".join(c.to_bytes(8, "big") for c in turns)}
        samples.append(make(i, code=turns[0], extra=extra))
    splits, report = run_split(project(tmp_path, samples))
    for i in range(0, 40, 2):
        assert splits[f"img{i:03d}.jpg"] == splits[f"img{i + 1:03d}.jpg"]
    assert report["groups"]["count"] == 20
    assert report["groups"]["rows_joined_by"]["near_duplicate"] == 20
