"""Consensus: clusters with one box per annotator, CVAT's quorum, votes, ties, fused boxes."""

from __future__ import annotations

import numpy as np
import pytest

from pixelpipe.quality.boxes import iou_matrix
from pixelpipe.quality.consensus import (
    cluster_boxes,
    merge_boxes,
    merge_labels,
    needed_votes,
)
from pixelpipe.quality.inputs import QualityInputError


def box(x: float, y: float = 0.0, w: float = 10.0, h: float = 10.0) -> list[float]:
    return [x, y, w, h]


@pytest.mark.parametrize(
    ("quorum", "seen", "needed"),
    [
        # three annotators, a simple majority
        (0.5, 3, 2),
        # five at 70% need four (the CVAT consensus docs' example)
        (0.7, 5, 4),
        # five at 50%
        (0.5, 5, 3),
        # everyone
        (1.0, 3, 3),
        # 0.7 * 10 is 7.000000000000001 in floats: still 7, not 8
        (0.7, 10, 7),
        # 0.6 * 5 is 3.0 exactly: 3
        (0.6, 5, 3),
        # a tiny quorum still needs one vote
        (0.01, 3, 1),
        # nobody saw the image: at least one
        (0.5, 0, 1),
    ],
)
def test_quorum_is_cvats(quorum: float, seen: int, needed: int) -> None:
    assert needed_votes(quorum, seen) == needed


@pytest.mark.parametrize("quorum", [0, -0.5, 1.5, True])
def test_quorum_out_of_range_is_refused(quorum: float) -> None:
    with pytest.raises(QualityInputError, match=r"quorum must be a share in \(0, 1\]"):
        needed_votes(quorum, 3)


def test_three_annotators_two_agree() -> None:
    per = {
        "A": ([box(0), box(100)], ["cat", "dog"]),
        "B": ([box(1)], ["cat"]),
        "C": ([], []),
    }
    merged, review = merge_boxes(per, seen=["A", "B", "C"])
    assert len(merged) == 1
    assert merged[0].label == "cat"
    assert merged[0].annotators == ("A", "B")
    assert merged[0].score == pytest.approx(2 / 3)
    assert merged[0].bbox == pytest.approx((0.5, 0.0, 10.0, 10.0))
    # the dog only A drew: 1 of 3, 2 needed
    assert [(r.reason, r.votes) for r in review] == [("below_quorum", {"A": "dog"})]
    assert review[0].detail == "1 of 3 annotators drew it, 2 needed (dog 1)"
    assert review[0].bbox == pytest.approx((100.0, 0.0, 10.0, 10.0))


@pytest.mark.parametrize(
    ("drawn_by", "kept"),
    [
        # three of five at 0.7: under the quorum of four
        (3, False),
        # four of five: enough
        (4, True),
        # all five
        (5, True),
    ],
)
def test_five_annotators_at_seventy_percent(drawn_by: int, kept: bool) -> None:
    names = ["A", "B", "C", "D", "E"]
    per = {name: ([box(0.2 * i)], ["car"]) for i, name in enumerate(names[:drawn_by])}
    merged, review = merge_boxes(per, seen=names, quorum=0.7)
    assert (len(merged), len(review)) == ((1, 0) if kept else (0, 1))
    if not kept:
        assert review[0].reason == "below_quorum"
        assert review[0].detail.startswith("3 of 5 annotators drew it, 4 needed")


@pytest.mark.parametrize(
    ("labels", "leaders"),
    [
        # two annotators disagree
        (["cat", "dog"], "cat, dog"),
        # two against two
        (["cat", "dog", "dog", "cat"], "cat, dog"),
        # a three-way tie of one vote each
        (["cat", "dog", "fox"], "cat, dog, fox"),
    ],
)
def test_a_tied_vote_goes_to_review_with_the_votes(labels: list[str], leaders: str) -> None:
    names = [f"a{i}" for i in range(len(labels))]
    per = {
        name: ([box(0.1 * i)], [label])
        for i, (name, label) in enumerate(zip(names, labels, strict=True))
    }
    merged, review = merge_boxes(per, seen=names, quorum=0.5)
    assert merged == []
    assert len(review) == 1
    assert review[0].reason == "tie"
    assert review[0].votes == dict(zip(names, labels, strict=True))
    assert review[0].detail.startswith(f"the vote ties between {leaders} (")


def test_a_majority_label_wins_and_only_its_voters_shape_the_box() -> None:
    per = {
        "A": ([box(0)], ["cat"]),
        "B": ([box(2)], ["cat"]),
        "C": ([box(1, 1)], ["dog"]),
    }
    merged, review = merge_boxes(per, seen=["A", "B", "C"])
    assert review == []
    (only,) = merged
    assert only.label == "cat"
    assert only.annotators == ("A", "B", "C")
    assert only.votes == {"A": "cat", "B": "cat", "C": "dog"}
    assert only.score == 1.0
    assert only.bbox == pytest.approx((1.0, 0.0, 10.0, 10.0))  # mean of A and B only
    boxes = np.array([box(0), box(2), box(1, 1)])
    assert only.iou_mean == pytest.approx(iou_matrix(boxes, [only.bbox]).mean())


def test_fusion_mean_median_and_weighted() -> None:
    per = {
        "A": ([box(0)], ["car"]),
        "B": ([box(1, w=12)], ["car"]),
        "C": ([box(3)], ["car"]),
    }
    seen = ["A", "B", "C"]
    mean = merge_boxes(per, seen, fusion="mean")[0][0].bbox
    # corners: x0 = 0, 1, 3; x1 = 10, 13, 13
    assert mean == pytest.approx((4 / 3, 0.0, 12 - 4 / 3, 10.0))
    median = merge_boxes(per, seen, fusion="median")[0][0].bbox
    assert median == pytest.approx((1.0, 0.0, 12.0, 10.0))
    scores = {"A": [1.0], "B": [1.0], "C": [2.0]}
    wbf = merge_boxes(per, seen, fusion="wbf", scores=scores)[0][0].bbox
    assert wbf == pytest.approx(((0 + 1 + 6) / 4, 0.0, (10 + 13 + 26) / 4 - 7 / 4, 10.0))
    # without scores, weighted fusion is the mean (every score 1)
    assert merge_boxes(per, seen, fusion="wbf")[0][0].bbox == pytest.approx(mean)
    # all scores 0: the plain mean, not a division by zero
    zero = {"A": [0.0], "B": [0.0], "C": [0.0]}
    assert merge_boxes(per, seen, fusion="wbf", scores=zero)[0][0].bbox == pytest.approx(mean)


def test_one_box_per_annotator_in_a_cluster() -> None:
    # A drew the same object twice (IoU 0.82 with each other); B drew it once. A cluster
    # never takes both of A's boxes: B joins one, A's second box stays apart.
    per = {"A": ([box(0), box(1)], ["car", "car"]), "B": ([box(0.4)], ["car"])}
    clusters = cluster_boxes(per)
    assert sorted(sorted(c.members.items()) for c in clusters) == [
        [("A", 0), ("B", 0)],
        [("A", 1)],
    ]
    merged, review = merge_boxes(per, seen=["A", "B"], quorum=1.0)
    assert len(merged) == 1 and merged[0].annotators == ("A", "B")
    assert [r.votes for r in review] == [{"A": "car"}]


def test_every_member_is_within_the_threshold_of_every_other() -> None:
    # A-B 7/13 = 0.54 and B-C 0.54, but A-C 4/16 = 0.25: C may not join A and B
    per = {"A": ([box(0)], ["x"]), "B": ([box(3)], ["x"]), "C": ([box(6)], ["x"])}
    clusters = cluster_boxes(per, iou_threshold=0.5)
    assert [c.members for c in clusters] == [{"A": 0, "B": 0}, {"C": 0}]


def test_clusters_take_a_same_label_box_before_a_closer_box_of_another_label() -> None:
    per = {
        "A": ([box(0)], ["cat"]),
        "B": ([box(0.2), box(2)], ["dog", "cat"]),
    }
    clusters = cluster_boxes(per)
    assert [c.members for c in clusters] == [{"A": 0, "B": 1}, {"B": 0}]


def test_zero_area_boxes_are_clusters_of_their_own() -> None:
    per = {"A": ([box(0, w=0)], ["x"]), "B": ([box(0, w=0)], ["x"]), "C": ([box(0)], ["x"])}
    clusters = cluster_boxes(per, iou_threshold=0.0)
    assert sorted(list(c.members) for c in clusters) == [["A"], ["B"], ["C"]]


def test_output_is_sorted_and_does_not_depend_on_the_input_order() -> None:
    per = {
        "B": ([box(50), box(0)], ["dog", "cat"]),
        "A": ([box(0.5), box(50.5), box(200)], ["cat", "dog", "fox"]),
        "C": ([box(49.5)], ["dog"]),
    }
    first = merge_boxes(per, seen=["C", "B", "A"])
    second = merge_boxes(dict(reversed(list(per.items()))), seen=["A", "B", "C"])
    assert first == second
    merged, review = first
    assert [c.label for c in merged] == ["cat", "dog"]
    assert [c.bbox[0] for c in merged] == sorted(c.bbox[0] for c in merged)
    assert [r.votes for r in review] == [{"A": "fox"}]


@pytest.mark.parametrize(
    ("votes", "seen", "quorum", "label", "reason"),
    [
        # two of three agree
        ({"A": "cat", "B": "cat", "C": "dog"}, ["A", "B", "C"], 0.5, "cat", None),
        # one each: a tie
        ({"A": "cat", "B": "dog"}, ["A", "B"], 0.5, None, "tie"),
        # two against two of five: quorum 3 not reached by either
        (
            {"A": "cat", "B": "cat", "C": "dog", "D": "dog"},
            list("ABCDE"),
            0.5,
            None,
            "below_quorum",
        ),
        # two against two of four at 0.5: both reach 2, so a tie
        ({"A": "cat", "B": "cat", "C": "dog", "D": "dog"}, list("ABCD"), 0.5, None, "tie"),
        # five at 0.7: three votes are not four
        ({"A": "cat", "B": "cat", "C": "cat"}, list("ABCDE"), 0.7, None, "below_quorum"),
        # five at 0.7: four are
        ({"A": "cat", "B": "cat", "C": "cat", "D": "cat"}, list("ABCDE"), 0.7, "cat", None),
        # nobody voted on an image three saw
        ({}, ["A", "B", "C"], 0.5, None, "below_quorum"),
    ],
)
def test_merge_labels(
    votes: dict[str, str], seen: list[str], quorum: float, label: str | None, reason: str | None
) -> None:
    decided, review = merge_labels(votes, seen, quorum)
    assert decided == label
    assert (review.reason if review else None) == reason
    if review:
        assert review.votes == votes and review.bbox is None


def test_merge_labels_with_nobody_seeing_the_image() -> None:
    assert merge_labels({}, []) == (None, None)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        # an annotator drew boxes but is not among those who saw the image
        (
            lambda: merge_boxes({"A": ([box(0)], ["x"])}, seen=["B"]),
            "'A' has boxes but is not among",
        ),
        # an unknown fusion
        (
            lambda: merge_boxes({}, seen=["A"], fusion="max"),  # type: ignore[arg-type]
            "fusion must be one of mean, median, wbf",
        ),
        # scores of the wrong length
        (
            lambda: merge_boxes(
                {"A": ([box(0)], ["x"])}, seen=["A"], fusion="wbf", scores={"A": [1, 2]}
            ),
            "annotator 'A': 2 scores for 1 box$",
        ),
        # a negative score
        (
            lambda: merge_boxes({"A": ([box(0)], ["x"])}, seen=["A"], scores={"A": [-1]}),
            "not negative",
        ),
        # boxes of the wrong shape
        (
            lambda: cluster_boxes({"A": ([[1, 2, 3]], ["x"])}),
            r"annotator 'A': boxes must be an \(n, 4\)",
        ),
        # a voter who did not see the image
        (lambda: merge_labels({"Z": "cat"}, ["A"]), "'Z' voted but is not among"),
        # a vote that is not a label
        (lambda: merge_labels({"A": 3}, ["A"]), "the label must be a string"),  # type: ignore[dict-item]
    ],
)
def test_bad_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(QualityInputError, match=message):
        call()  # type: ignore[operator]
