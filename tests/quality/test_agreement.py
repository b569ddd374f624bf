"""Box agreement: a hand-checked case, then the batched totals against a per-image reference
(match_boxes, cluster_boxes and the krippendorff package) on random data."""

from __future__ import annotations

import itertools
import json
from typing import Any

import krippendorff
import numpy as np
import pytest

from pixelpipe.quality.agreement import CHUNK_IMAGES, box_agreement
from pixelpipe.quality.consensus import cluster_boxes
from pixelpipe.quality.inputs import QualityInputError
from pixelpipe.quality.matching import match_boxes


def box(x: float, y: float = 0.0, w: float = 10.0, h: float = 10.0) -> list[float]:
    return [x, y, w, h]


HAND: list[tuple[Any, dict[str, Any]]] = [
    # a car both drew; a box A calls dog and B calls cat
    ("a", {"A": ([box(0), box(50)], ["car", "dog"]), "B": ([box(1), box(50.5)], ["car", "cat"])}),
    # B saw the image and drew nothing: A's car counts against agreement
    ("b", {"A": ([box(0)], ["car"]), "B": ([], [])}),
    # both saw it, neither drew anything: they agree
    ("c", {"A": ([], []), "B": ([], [])}),
    # only A saw it: compared with nobody
    ("d", {"A": ([box(0)], ["car"])}),
]


def test_hand_checked_two_annotators() -> None:
    report = box_agreement(HAND, ["A", "B"])
    assert (report["images"], report["items"]) == (4, 3)
    pair = report["pairs"]["A|B"]
    assert pair == {
        "images": 3,
        "boxes_a": 3,
        "boxes_b": 2,
        "matched": 1,
        "label_mismatch": 1,
        "unmatched_a": 1,
        "unmatched_b": 0,
        "precision": 0.5,  # B's boxes judged against A
        "recall": pytest.approx(1 / 3),
        "f1": pytest.approx(2 / 5),
        "iou_mean": pytest.approx((9 / 11 + 9.5 / 10.5) / 2),
    }
    assert report["box_f1"] == pytest.approx(2 / 5)
    assert report["box_iou_mean"] == pytest.approx((9 / 11 + 9.5 / 10.5) / 2)
    assert report["matrix"] == {
        "A": {"A": 1.0, "B": pytest.approx(0.4)},
        "B": {"A": pytest.approx(0.4), "B": 1.0},
    }
    # image scores: b 0.0, a 2 * 1 / 4, c 1.0 (both drew nothing)
    assert report["worst_images"] == [
        {"id": "b", "score": 0.0, "boxes": {"A": 1, "B": 0}},
        {"id": "a", "score": 0.5, "boxes": {"A": 2, "B": 2}},
        {"id": "c", "score": 1.0, "boxes": {"A": 0, "B": 0}},
    ]
    assert report["per_class"] == {
        "car": {"boxes": 4, "f1": pytest.approx(2 / 3), "iou_mean": pytest.approx(9 / 11)},
        "cat": {"boxes": 1, "f1": 0.0, "iou_mean": None},
        "dog": {"boxes": 1, "f1": 0.0, "iou_mean": None},
    }
    assert report["annotators"]["A"] == {
        "images": 4,
        "boxes": 4,
        "zero_area": 0,
        "f1_with_others": pytest.approx(0.4),
    }
    assert report["notes"] == [
        "1 image was seen by only some of the annotators (images seen: A 4, B 3); each pair "
        "is compared on the images both saw.",
        "1 image was seen by one annotator only and compared with nobody.",
        "Only B used the label cat (1 box).",
        "Only A used the label dog (1 box).",
    ]
    # alpha over the clusters (car, car), (dog, cat), (car, no box), as the package computes it
    expected = krippendorff.alpha(
        reliability_data=[[1, 2, 1], [1, 3, 0]], level_of_measurement="nominal"
    )
    assert report["krippendorff_alpha"] == pytest.approx(expected)
    assert report["krippendorff_units"] == 3
    json.dumps(report, allow_nan=False)


def test_notes_on_zero_area_boxes_and_an_annotator_who_drew_nothing() -> None:
    images = [
        (
            "x",
            {
                "A": ([box(0, w=0), box(20)], ["car", "car"]),
                "B": ([box(0, w=0), box(20)], ["car", "car"]),
                "C": ([], []),
            },
        ),
    ]
    report = box_agreement(images, ["A", "B", "C"], iou_threshold=0.0)
    # the zero-area boxes never match, even at threshold 0 and on top of each other
    assert report["pairs"]["A|B"]["matched"] == 1
    assert report["pairs"]["A|C"]["f1"] == 0.0
    assert "2 boxes have zero area (A 1, B 1); they never match." in report["notes"]
    assert (
        "Annotator C drew no box on the 1 image it saw; every box of the others there counts "
        "against agreement." in report["notes"]
    )
    assert report["annotators"]["A"]["zero_area"] == 1


def test_a_pair_that_shared_no_image() -> None:
    images = [
        ("1", {"A": ([box(0)], ["x"]), "B": ([box(0)], ["x"])}),
        ("2", {"C": ([box(0)], ["x"])}),
    ]
    report = box_agreement(images, ["A", "B", "C"])
    assert report["matrix"]["A"]["C"] is None and report["matrix"]["C"]["A"] is None
    assert report["pairs"]["A|C"]["f1"] is None
    assert report["annotators"]["C"]["f1_with_others"] is None


def test_alpha_is_undefined_when_everyone_agrees_on_one_label() -> None:
    images = [(i, {"A": ([box(0)], ["x"]), "B": ([box(0)], ["x"])}) for i in range(3)]
    report = box_agreement(images, ["A", "B"])
    assert report["box_f1"] == 1.0
    assert report["krippendorff_alpha"] is None
    assert report["krippendorff_alpha_reason"].startswith("only one value occurs")


def test_nothing_drawn_anywhere() -> None:
    report = box_agreement([("1", {"A": ([], []), "B": ([], [])})], ["A", "B"])
    assert report["box_f1"] == 1.0
    assert report["krippendorff_alpha"] is None
    assert report["box_iou_mean"] is None
    json.dumps(report, allow_nan=False)


def test_worst_images_break_ties_by_id() -> None:
    same = {"A": ([box(0)], ["x"]), "B": ([], [])}
    images = [(name, same) for name in ["b", 10, "a", 2]]
    report = box_agreement(images, ["A", "B"], worst=3)
    # integer ids first by value, then text
    assert [row["id"] for row in report["worst_images"]] == [2, 10, "a"]


@pytest.mark.parametrize(
    ("images", "annotators", "worst", "message"),
    [
        # an image naming an annotator that is not compared
        (
            [("1", {"A": ([], []), "Z": ([], [])})],
            ["A", "B"],
            20,
            "image '1': annotator 'Z' is not among",
        ),
        # the same image twice
        ([("1", {}), ("1", {})], ["A", "B"], 20, "image '1' is listed more than once"),
        # boxes and labels of different lengths
        (
            [("1", {"A": ([box(0)], [])})],
            ["A", "B"],
            20,
            "image '1', annotator 'A': 1 box but 0 labels",
        ),
        # one annotator only
        ([], ["A"], 20, "needs two or more annotators"),
        # a negative count of worst images
        ([], ["A", "B"], -1, "worst must be a count of images"),
        # an entry that is not (id, annotators)
        ([42], ["A", "B"], 20, r"image #0: expected \(image_id, annotators\)"),
    ],
)
def test_bad_input_is_refused(
    images: list[Any], annotators: list[str], worst: int, message: str
) -> None:
    with pytest.raises(QualityInputError, match=message):
        box_agreement(images, annotators, worst=worst)


def test_every_bad_image_is_reported_at_once() -> None:
    images: list[Any] = [
        ("1", {"A": ([[0, 0]], ["x"])}),
        ("2", {"A": ([], [])}),
        ("3", {"Q": ([], [])}),
    ]
    with pytest.raises(QualityInputError) as caught:
        box_agreement(images, ["A", "B"])
    assert len(caught.value.problems) == 2
    assert caught.value.problems[0].startswith("image '1'")
    assert caught.value.problems[1].startswith("image '3'")


def random_images(count: int, names: list[str], seed: int) -> list[tuple[Any, dict[str, Any]]]:
    """Jittered copies of a few objects per image, some dropped or relabelled, some images
    not seen by everyone, some zero-area boxes."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        objects = int(rng.integers(0, 6))
        base = np.column_stack(
            [rng.uniform(0, 200, (objects, 2)), rng.uniform(5, 40, (objects, 2))]
        )
        labels = rng.choice(["car", "bus", "person"], objects)
        per: dict[str, Any] = {}
        for name in names:
            if rng.random() < 0.15:
                continue  # this annotator did not see the image
            keep = rng.random(objects) > 0.1
            boxes = base[keep] + rng.uniform(-3, 3, (int(keep.sum()), 4))
            mine = labels[keep].copy()
            flip = rng.random(mine.size) < 0.1
            mine[flip] = "bus"
            boxes[rng.random(mine.size) < 0.02, 3] = 0.0
            per[name] = (boxes, mine.tolist())
        images.append((index if index % 2 else f"img{index}", per))
    return images


def test_batched_totals_equal_a_per_image_reference() -> None:
    names = ["ann1", "ann2", "ann3"]
    images = random_images(CHUNK_IMAGES + 300, names, seed=5)  # more than one chunk
    report = box_agreement(images, names, iou_threshold=0.5, worst=15)

    pairs = {
        f"{a}|{b}": dict.fromkeys(("images", "boxes_a", "boxes_b", "matched", "label_mismatch"), 0)
        for a, b in itertools.combinations(names, 2)
    }
    scores = []
    units: list[list[float]] = []
    codes = {"car": 1, "bus": 2, "person": 3}
    for image_id, per in images:
        seen = [n for n in names if n in per]
        image_f1 = []
        for a, b in itertools.combinations(seen, 2):
            found = match_boxes(*per[a], *per[b])
            tally = pairs[f"{a}|{b}"]
            tally["images"] += 1
            tally["boxes_a"] += len(per[a][1])
            tally["boxes_b"] += len(per[b][1])
            tally["matched"] += found.matched
            tally["label_mismatch"] += found.label_mismatch
            total = len(per[a][1]) + len(per[b][1])
            image_f1.append(2 * found.matched / total if total else 1.0)
        if len(seen) >= 2:
            scores.append((sum(image_f1) / len(image_f1), image_id))
            for cluster in cluster_boxes({n: per[n] for n in seen}):
                row = [np.nan if n not in per else 0.0 for n in names]
                for n, k in cluster.members.items():
                    row[names.index(n)] = codes[per[n][1][k]]
                units.append(row)
    for key, expected in pairs.items():
        got = report["pairs"][key]
        assert {k: got[k] for k in expected} == expected
    assert report["items"] == len(scores)
    matched = sum(p["matched"] for p in pairs.values())
    boxes = sum(p["boxes_a"] + p["boxes_b"] for p in pairs.values())
    assert report["box_f1"] == pytest.approx(2 * matched / boxes)
    expected_alpha = krippendorff.alpha(
        reliability_data=np.array(units).T, level_of_measurement="nominal"
    )
    assert report["krippendorff_alpha"] == pytest.approx(expected_alpha, abs=1e-12)
    assert report["krippendorff_units"] == len(units)
    id_order = {i: (0, i, "") if isinstance(i, int) else (1, 0, i) for _, i in scores}
    worst = sorted(scores, key=lambda s: (s[0], id_order[s[1]]))[:15]
    assert [(row["score"], row["id"]) for row in report["worst_images"]] == [
        (pytest.approx(s), i) for s, i in worst
    ]
    assert 0.5 < report["box_f1"] < 1.0  # the data is neither trivial nor noise
    json.dumps(report, allow_nan=False)
