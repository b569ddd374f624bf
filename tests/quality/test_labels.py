"""Agreement on image labels, checked against published worked examples and the reference
packages (krippendorff, scikit-learn, statsmodels)."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence

import krippendorff
import numpy as np
import pytest

from pixelpipe.quality.inputs import QualityInputError
from pixelpipe.quality.labels import label_agreement
from pixelpipe.quality.reliability import nominal_alpha

# The krippendorff package's doctest (Krippendorff 2011, "Computing Krippendorff's
# alpha-reliability", 3 coders x 15 units, values 1-4, None = missing): nominal 0.691358.
N = None
KRIPPENDORFF_2011 = [
    [N, N, N, N, N, 3, 4, 1, 2, 1, 1, 3, 3, N, 3],
    [1, N, 2, 1, 3, 3, 4, 3, N, N, N, N, N, N, N],
    [N, N, 2, 1, 3, 4, 4, N, 2, 1, 1, 3, 3, N, 4],
]
# The doctest's string example (4 coders x 12 units): nominal 0.743.
STRINGS = [
    ["very low", "low", "mid", "mid", "low", "very low", "high", "very low", "low", N, N, N],
    [
        "very low",
        "low",
        "mid",
        "mid",
        "low",
        "low",
        "high",
        "very low",
        "low",
        "very high",
        N,
        "mid",
    ],
    [N, "mid", "mid", "mid", "low", "mid", "high", "low", "low", "very high", "very low", N],
    [
        "very low",
        "low",
        "mid",
        "mid",
        "low",
        "high",
        "high",
        "very low",
        "low",
        "very high",
        "very low",
        N,
    ],
]
# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters,
# 5 categories, the count of raters per category; kappa 0.210, mean agreement P = 0.378.
FLEISS_1971 = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def transpose(coders: Sequence[Sequence[object]]) -> list[list[str | None]]:
    """Coders x units -> items x annotators, values as text."""
    return [
        [None if row[u] is None else str(row[u]) for row in coders] for u in range(len(coders[0]))
    ]


def fleiss_items() -> list[list[str]]:
    return [[c for c, n in zip("abcde", row, strict=True) for _ in range(n)] for row in FLEISS_1971]


def cohen_items() -> list[tuple[str, str]]:
    # Wikipedia's "Cohen's kappa" example: 50 grant proposals, A and B say yes/no.
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    return [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15


def test_krippendorff_alpha_of_the_published_example() -> None:
    report = label_agreement(transpose(KRIPPENDORFF_2011), ["A", "B", "C"])
    assert round(report["krippendorff_alpha"], 6) == 0.691358
    assert report["krippendorff_alpha_reason"] is None
    # 15 units: 12 rated by two or more coders, one by one, two by nobody
    assert report["items"] == 12
    assert "1 item has one rating only; they count in no agreement measure." in report["notes"]
    assert "2 items have no rating." in report["notes"]


def test_krippendorff_alpha_of_the_string_example() -> None:
    report = label_agreement(transpose(STRINGS), ["A", "B", "C", "D"])
    assert round(report["krippendorff_alpha"], 3) == 0.743


def test_fleiss_kappa_of_fleiss_1971() -> None:
    report = label_agreement(fleiss_items(), [f"r{i}" for i in range(14)])
    assert round(report["fleiss_kappa"], 3) == 0.210
    assert report["fleiss_kappa"] == pytest.approx(0.20993, abs=1e-5)
    assert report["fleiss_kappa_reason"] is None
    assert round(report["percent_agreement"], 3) == 0.378
    assert report["items"] == 10


def test_cohen_kappa_of_the_textbook_example() -> None:
    report = label_agreement(cohen_items(), ["A", "B"])
    assert report["cohen_kappa"] == {"A|B": pytest.approx(0.4)}
    assert report["cohen_kappa_mean"] == pytest.approx(0.4)
    assert report["percent_agreement"] == pytest.approx(0.7)
    # each annotator agrees with the other on 35 of its 50 pairs
    assert report["annotators"] == {
        "A": {"items": 50, "agreement_with_others": pytest.approx(0.7)},
        "B": {"items": 50, "agreement_with_others": pytest.approx(0.7)},
    }
    # positive specific agreement: yes 2*20 / (2*20 + 15) = 40/55, no 2*15 / (2*15 + 15) = 30/45
    assert report["per_class"]["yes"]["specific_agreement"] == pytest.approx(40 / 55)
    assert report["per_class"]["no"]["specific_agreement"] == pytest.approx(30 / 45)
    assert report["per_class"]["yes"]["count"] == 55
    # with two classes, one-vs-rest alpha is the alpha of the whole table
    assert report["per_class"]["yes"]["alpha"] == pytest.approx(report["krippendorff_alpha"])


def test_unequal_rater_counts_give_no_fleiss_kappa_and_say_why() -> None:
    report = label_agreement(transpose(KRIPPENDORFF_2011), ["A", "B", "C"])
    assert report["fleiss_kappa"] is None
    assert report["fleiss_kappa_reason"] == (
        "Fleiss' kappa needs the same number of raters on every item: "
        "10 items have 2 raters, 2 items have 3 raters"
    )


def test_missing_ratings_restrict_cohen_to_shared_items() -> None:
    ratings: list[list[str | None]] = [
        ["cat", "cat", None],
        ["dog", "dog", "dog"],
        ["cat", None, "dog"],
        ["dog", "cat", None],
        [None, "cat", "cat"],
    ]
    report = label_agreement(ratings, ["A", "B", "C"])
    # A and B share items 0, 1, 3: cat/cat, dog/dog, dog/cat
    from sklearn.metrics import cohen_kappa_score

    expected = cohen_kappa_score(["cat", "dog", "dog"], ["cat", "dog", "cat"])
    assert report["cohen_kappa"]["A|B"] == pytest.approx(expected)
    # A and C share items 1 and 2 only; B and C items 1 and 4
    assert set(report["cohen_kappa"]) == {"A|B", "A|C", "B|C"}
    assert report["annotators"]["C"]["items"] == 3


def test_undefined_cohen_kappa_is_none_with_a_note() -> None:
    ratings: list[list[str | None]] = [
        ["cat", "cat", "dog"],
        ["cat", "cat", None],
        [None, None, "dog"],
    ]
    report = label_agreement(ratings, ["A", "B", "C"])
    # A and B only ever said cat: chance agreement is 1
    assert report["cohen_kappa"]["A|B"] is None
    assert (
        "Cohen's kappa of A and B is undefined: on their 2 shared items both only used cat, "
        "so chance agreement is 1." in report["notes"]
    )
    # A and C share one item
    assert report["cohen_kappa"]["A|C"] is None
    assert any("A and C is undefined: they rated 1 item in common" in n for n in report["notes"])


@pytest.mark.parametrize(
    ("ratings", "alpha_reason", "fleiss_reason"),
    [
        # everyone said cat: no variation, alpha and Fleiss' kappa are undefined
        ([["cat", "cat"], ["cat", "cat"]], "only one value occurs", "only one label was used"),
        # nobody rated anything
        ([[None, None], [None, None]], "no item was rated", "no item has two or more ratings"),
        # every item rated once
        ([["cat", None], [None, "dog"]], "no unit has values from two", "no item has two or more"),
        # no items at all
        ([], "no item was rated", "no item has two or more ratings"),
    ],
)
def test_undefined_statistics_are_none_with_reasons(
    ratings: list[list[str | None]], alpha_reason: str, fleiss_reason: str
) -> None:
    report = label_agreement(ratings, ["A", "B"])
    assert report["krippendorff_alpha"] is None
    assert report["krippendorff_alpha_reason"].startswith(alpha_reason)
    assert report["fleiss_kappa"] is None
    assert report["fleiss_kappa_reason"].startswith(fleiss_reason)
    json.dumps(report, allow_nan=False)  # no NaN anywhere


def test_notes_name_silent_annotators_and_one_person_classes() -> None:
    ratings: list[list[str | None]] = [
        ["cat", "cat", None],
        ["dog", "cat", None],
        ["cat", "bird", None],
    ]
    report = label_agreement(ratings, ["A", "B", "C"])
    assert "Annotator C rated no item." in report["notes"]
    assert "Only A used the label dog." in report["notes"]
    assert "Only B used the label bird." in report["notes"]
    assert report["annotators"]["C"] == {"items": 0, "agreement_with_others": None}
    assert report["per_class"]["bird"]["specific_agreement"] == 0.0


def test_report_is_json_ready() -> None:
    report = label_agreement(transpose(KRIPPENDORFF_2011), ["A", "B", "C"])
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert isinstance(report["percent_agreement"], float)


@pytest.mark.parametrize(
    ("ratings", "annotators", "message"),
    [
        # an item with the wrong number of ratings
        ([["a", "b"], ["a"]], ["A", "B"], "item 1: 1 ratings for 2 annotators"),
        # a rating that is a number
        ([["a", 3]], ["A", "B"], "item 0: a rating must be a label or None, got 3"),
        # an item that is one string
        (["ab"], ["A", "B"], "item 0: expected one rating per annotator"),
        # the same annotator twice
        ([["a", "b"]], ["A", "A"], "annotator 'A' is listed more than once"),
        # a name with the pair separator
        ([["a", "b"]], ["A|x", "B"], "contains '|'"),
    ],
)
def test_bad_input_is_refused(ratings: list[object], annotators: list[str], message: str) -> None:
    with pytest.raises(QualityInputError, match=message):
        label_agreement(ratings, annotators)  # type: ignore[arg-type]


def test_every_bad_item_is_reported_at_once() -> None:
    with pytest.raises(QualityInputError) as caught:
        label_agreement([["a"], ["a", "b"], ["a", "b", "c"]], ["A", "B"])
    assert [p.split(":")[0] for p in caught.value.problems] == ["item 0", "item 2"]


def test_nominal_alpha_equals_the_krippendorff_package_on_random_data() -> None:
    rng = np.random.default_rng(11)
    compared = 0
    for _ in range(40):
        coders, units, values = rng.integers(2, 6), rng.integers(2, 40), rng.integers(2, 6)
        data = rng.integers(0, values, size=(coders, units)).astype(float)
        data[rng.random(data.shape) < 0.3] = np.nan
        counts = np.stack([(data == v).sum(axis=0) for v in range(values)], axis=1)
        if (counts.sum(axis=1) >= 2).sum() == 0 or len(np.unique(data[~np.isnan(data)])) < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # its 0/0 when alpha is undefined
            expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        ours, reason = nominal_alpha(counts)
        if math.isnan(expected):
            assert ours is None and reason
        else:
            assert ours == pytest.approx(expected, abs=1e-12)
            compared += 1
    assert compared > 25


def test_nominal_alpha_counts_repeated_units_once_with_their_multiplicity() -> None:
    counts = np.array([[2, 0], [1, 1], [2, 0], [2, 0], [0, 3], [1, 1]])
    unique = np.array([[2, 0], [1, 1], [0, 3]])
    expected, _ = nominal_alpha(counts)
    assert nominal_alpha(unique, multiplicity=[3, 2, 1])[0] == pytest.approx(expected, abs=1e-12)
