"""Confidence bands, the audit draw, and what a reviewer changed."""

from __future__ import annotations

import pytest

from pixelpipe.quality.routing import audited, bands, changes


@pytest.mark.parametrize(
    ("score", "label", "expected"),
    [
        # exactly the accept threshold is accepted
        (0.9, "cat", "accept"),
        # just below it goes to review
        (0.8999, "cat", "review"),
        # exactly the review threshold is reviewed
        (0.7, "cat", "review"),
        # below review: discarded
        (0.69, "cat", "discard"),
        # a score of 0.0 is a score (Label Studio's converter drops it)
        (0.0, "cat", "discard"),
        # a class with its own thresholds: 0.92 is below person's 0.95
        (0.92, "person", "review"),
        # and 0.75 below person's review threshold 0.8
        (0.75, "person", "discard"),
    ],
)
def test_bands(score: float, label: str, expected: str) -> None:
    assert bands([score], [label], 0.9, 0.7, {"person": (0.95, 0.8)}) == [expected]


def test_the_audit_draws_its_share_and_an_image_keeps_its_draw() -> None:
    ids = [f"img{i:05d}.jpg" for i in range(20000)]
    drawn = [i for i in ids if audited(i, 0, 0.05)]
    assert 0.045 < len(drawn) / len(ids) < 0.055
    # adding images never changes an earlier image's draw; another seed draws others
    assert [i for i in ids[:1000] if audited(i, 0, 0.05)] == [d for d in drawn if d in ids[:1000]]
    assert drawn != [i for i in ids if audited(i, 1, 0.05)]
    assert not any(audited(i, 0, 0.0) for i in ids[:100])
    assert all(audited(i, 0, 1.0) for i in ids[:100])


def test_changes_name_what_the_reviewer_did() -> None:
    sent = (
        [[0, 0, 10, 10], [50, 50, 10, 10], [100, 0, 20, 20], [0, 100, 30, 30]],
        ["cat", "dog", "cat", "cat"],
    )
    back = (
        [
            [0, 0, 10, 10.0000000001],  # kept: within a float's rounding of percent <-> px
            [51, 50, 10, 10],  # moved by a pixel
            [100, 0, 20, 20],  # relabelled
            [200, 200, 5, 5],  # added
        ],
        ["cat", "dog", "dog", "cat"],
    )
    assert changes(sent, back) == {
        "unchanged": 1,
        "moved": 1,
        "relabelled": 1,
        "deleted": 1,  # the box at (0, 100) is gone
        "added": 1,
    }


def test_no_box_sent_and_none_back_is_no_change() -> None:
    assert set(changes(([], []), ([], [])).values()) == {0}
