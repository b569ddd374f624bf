"""Drift maths: Evidently's two regimes, by class name, NaNs dropped, compare()'s JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy.stats import chi2_contingency, ks_2samp

from pixelpipe.quality.drift import (
    MIN_STD,
    MIN_VALUES,
    DriftInputs,
    Thresholds,
    Verdict,
    class_drift,
    compare,
    numeric_drift,
)
from pixelpipe.quality.inputs import QualityInputError

VERDICT_KEYS = {"test", "statistic", "p_value", "effect", "drift", "reference", "current"}
CLASSES = ["person", "car", "cat", "dog", "bird", "boat", "chair", "cup", "bus", "kite"]


def _halves(values: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(values.size)
    half = values.size // 2
    return values[order[:half]], values[order[half:]]


def _box_sizes(count: int, seed: int) -> np.ndarray:
    """Skewed positive values, like box sizes in pixels."""
    return np.random.default_rng(seed).lognormal(mean=3.5, sigma=0.6, size=count)


# --- thresholds -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # a p-value threshold must be a probability strictly between 0 and 1
        ({"p_value": 0.0}, "p_value must be a number between 0 and 1"),
        # 1 would flag everything
        ({"p_value": 1.0}, "p_value must be a number between 0 and 1"),
        # an effect size is never negative
        ({"numeric_effect": -0.1}, "numeric_effect must be a number >= 0"),
        # NaN compares false with everything: refused
        ({"class_effect": math.nan}, "class_effect must be a number >= 0"),
        # the sample size split is a count
        ({"large": 10.5}, "large must be a whole number >= 0"),
        # a bool is not a count
        ({"large": True}, "large must be a whole number >= 0"),
    ],
)
def test_bad_thresholds_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(QualityInputError, match=message):
        Thresholds(**kwargs)


def test_every_bad_threshold_is_reported_at_once() -> None:
    with pytest.raises(QualityInputError) as error:
        Thresholds(p_value=2.0, numeric_effect=-1.0, class_effect=-1.0, large=-5)
    assert len(error.value.problems) == 4


# --- numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "test"),
    [
        # 500 values a side: at most `large`, the KS p-value decides
        (1000, "ks"),
        # 5000 values a side: the normalised Wasserstein distance decides
        (10000, "wasserstein"),
    ],
)
def test_two_random_halves_of_one_sample_do_not_drift(count: int, test: str) -> None:
    reference, current = _halves(_box_sizes(count, seed=1), seed=2)
    verdict = numeric_drift(reference, current)
    assert verdict.test == test
    assert not verdict.drift
    assert (verdict.reference, verdict.current) == (count // 2, count // 2)


@pytest.mark.parametrize("count", [400, 4000])
def test_random_halves_are_rarely_flagged(count: int) -> None:
    # the KS rule's false-positive rate is its p-value threshold (5 %); the effect
    # rule's is far lower: 40 splits flag at most a few
    flagged = sum(
        numeric_drift(*_halves(_box_sizes(count, seed=seed), seed=seed + 100)).drift
        for seed in range(40)
    )
    assert flagged <= 5


@pytest.mark.parametrize(
    ("count", "test"),
    [
        # small samples: KS finds a shift of a third of a standard deviation
        (500, "ks"),
        # large samples: the shift is an effect of about 0.33 > 0.1
        (5000, "wasserstein"),
    ],
)
def test_a_shifted_distribution_drifts(count: int, test: str) -> None:
    reference = np.random.default_rng(3).normal(0.0, 1.0, count)
    current = np.random.default_rng(4).normal(1 / 3, 1.0, count)
    verdict = numeric_drift(reference, current)
    assert verdict.test == test
    assert verdict.drift
    assert verdict.effect == pytest.approx(1 / 3, abs=0.06)
    assert verdict.p_value is not None and verdict.p_value < 1e-3


def test_in_large_samples_a_significant_but_tiny_shift_is_not_drift() -> None:
    # Evidently's reason for the effect rule: with 20000 values a side a shift of 0.05
    # standard deviations is significant, and irrelevant
    reference = np.random.default_rng(5).normal(0.0, 1.0, 20000)
    current = np.random.default_rng(6).normal(0.05, 1.0, 20000)
    verdict = numeric_drift(reference, current)
    assert verdict.p_value is not None and verdict.p_value < 0.05
    assert verdict.effect < 0.1
    assert (verdict.test, verdict.drift) == ("wasserstein", False)
    # the same data judged with a larger split: the p-value decides, and flags it
    forced = numeric_drift(reference, current, Thresholds(large=20000))
    assert (forced.test, forced.drift) == ("ks", True)


@pytest.mark.parametrize(
    ("reference", "current", "test"),
    [
        # both sides at the split: the test decides
        (1000, 1000, "ks"),
        # one side above it: the effect decides (the split looks at both sides)
        (1000, 1001, "wasserstein"),
        # the reference above it
        (1001, 10, "wasserstein"),
    ],
)
def test_the_split_between_the_rules(reference: int, current: int, test: str) -> None:
    verdict = numeric_drift(_box_sizes(reference, 7), _box_sizes(current, 8))
    assert verdict.test == test


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
def test_statistic_and_effect_are_scipys_and_evidentlys() -> None:
    reference = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    current = reference + 1.0
    verdict = numeric_drift(reference, current)
    expected = ks_2samp(reference, current)
    assert verdict.statistic == pytest.approx(expected.statistic)
    assert verdict.p_value == pytest.approx(expected.pvalue)
    # Wasserstein distance 1 over the reference's population std sqrt(2)
    assert verdict.effect == pytest.approx(1 / math.sqrt(2))


def test_a_constant_reference_is_divided_by_the_smallest_std() -> None:
    verdict = numeric_drift(np.full(20, 640.0), np.full(20, 641.0))
    assert verdict.effect == pytest.approx(1.0 / MIN_STD)
    # identical constants: no difference at all
    same = numeric_drift(np.full(20, 640.0), np.full(30, 640.0))
    assert (same.statistic, same.effect, same.drift) == (0.0, 0.0, False)


def test_nan_and_infinite_values_are_dropped() -> None:
    reference = _box_sizes(300, 9)
    current = _box_sizes(300, 10)
    with_nan = numeric_drift(
        np.concatenate([reference, [math.nan, math.inf]]), np.concatenate([[math.nan], current])
    )
    assert with_nan == numeric_drift(reference, current)
    assert (with_nan.reference, with_nan.current) == (300, 300)


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        # one value short of the minimum on the current side
        (list(range(100)), list(range(MIN_VALUES - 1))),
        # a property that is NaN everywhere (jpeg_quality of PNGs): nothing left
        ([math.nan] * 50, list(range(100))),
        # an empty reference
        ([], list(range(100))),
    ],
)
def test_too_few_values_are_not_tested(reference: list[float], current: list[float]) -> None:
    verdict = numeric_drift(reference, current)
    assert (verdict.test, verdict.drift, verdict.p_value) == ("too_few", False, None)
    assert math.isnan(verdict.statistic) and math.isnan(verdict.effect)
    assert verdict.to_json()["statistic"] is None


def test_values_that_are_not_numbers_are_refused() -> None:
    with pytest.raises(QualityInputError, match="current values must be numbers"):
        numeric_drift([1.0, 2.0], ["a", "b"])


# --- classes --------------------------------------------------------------------------


def _counts(counts: list[int], scale: int = 1) -> dict[str, int]:
    return {name: count * scale for name, count in zip(CLASSES, counts, strict=True)}


@pytest.mark.parametrize(
    ("counts", "scale", "test"),
    [
        # 960 instances, cat is a fifth of them: chi-squared on the counts decides
        ([150, 120, 200, 100, 90, 80, 70, 60, 50, 40], 1, "chi_squared"),
        # 10600 instances, cat over a quarter: the Jensen-Shannon distance decides
        ([150, 120, 300, 100, 90, 80, 70, 60, 50, 40], 10, "jensen_shannon"),
    ],
)
def test_halving_one_class_is_flagged_and_it_changes_most(
    counts: list[int], scale: int, test: str
) -> None:
    reference = _counts(counts, scale)
    current = {**reference, "cat": reference["cat"] // 2}
    verdict, shares = class_drift(reference, current)
    assert (verdict.test, verdict.drift) == (test, True)
    assert max(shares, key=lambda name: abs(shares[name]["change"])) == "cat"
    assert shares["cat"]["change"] < 0
    assert all(shares[name]["change"] > 0 for name in CLASSES if name != "cat")


def test_in_large_samples_halving_a_small_class_is_below_the_effect_threshold() -> None:
    # the effect rule's reach: a 12 % class halved moves the Jensen-Shannon distance by
    # 0.08 < 0.1, although chi-squared calls it certain
    reference = _counts([150, 120, 100, 100, 90, 80, 70, 60, 50, 40], 10)
    current = {**reference, "cat": 500}
    verdict, _ = class_drift(reference, current)
    assert verdict.p_value is not None and verdict.p_value < 1e-20
    assert verdict.effect == pytest.approx(0.082, abs=0.002)
    assert (verdict.test, verdict.drift) == ("jensen_shannon", False)


@pytest.mark.parametrize(
    ("factor", "test"),
    [
        # the same shares at 1.5 times the counts, under the split: chi-squared is 0
        (1.5, "chi_squared"),
        # the same shares at 20 times the counts: the distance is 0
        (20, "jensen_shannon"),
    ],
)
def test_the_same_shares_with_other_counts_do_not_drift(factor: float, test: str) -> None:
    reference = _counts([40, 30, 30, 20, 20, 20, 10, 10, 10, 10])
    current = {name: int(count * factor) for name, count in reference.items()}
    verdict, shares = class_drift(reference, current)
    assert (verdict.test, verdict.drift) == (test, False)
    assert verdict.statistic == pytest.approx(0.0, abs=1e-9)
    assert verdict.p_value == pytest.approx(1.0)
    assert verdict.effect == pytest.approx(0.0, abs=1e-7)
    assert all(share["change"] == pytest.approx(0.0) for share in shares.values())


def test_a_class_on_one_side_only_counts_zero_on_the_other() -> None:
    reference = {"cat": 100, "dog": 100, "gone": 50}
    current = {"cat": 100, "dog": 100, "new": 50}
    verdict, shares = class_drift(reference, current)
    assert list(shares) == ["cat", "dog", "gone", "new"]
    assert shares["gone"] == {"share_reference": 0.2, "share_current": 0.0, "change": -0.2}
    assert shares["new"] == {"share_reference": 0.0, "share_current": 0.2, "change": 0.2}
    table = np.array([[100, 100, 50, 0], [100, 100, 0, 50]])
    assert verdict.statistic == pytest.approx(chi2_contingency(table).statistic)
    assert verdict.drift


def test_jensen_shannon_distance_by_hand() -> None:
    # shares (1/2, 1/2) and (1, 0): m = (3/4, 1/4); KL(p||m) = 0.207519, KL(q||m) =
    # 0.415037 bits; the distance is the square root of their mean, 0.557923
    verdict, _ = class_drift({"a": 10, "b": 10}, {"a": 10})
    assert verdict.effect == pytest.approx(0.557923, abs=1e-6)


def test_classes_are_compared_by_name_never_by_position_or_id() -> None:
    reference = {"cat": 300, "dog": 200, "bird": 100}
    current = {"dog": 150, "bird": 200, "cat": 250}
    verdict, shares = class_drift(reference, current)
    # the same classes listed in another order give the same result
    reordered, reordered_shares = class_drift(
        dict(reversed(list(reference.items()))), dict(sorted(current.items()))
    )
    assert reordered == verdict
    assert reordered_shares == shares
    assert list(shares) == ["bird", "cat", "dog"]
    # what one side calls class 1 the other calls class 3: ids are not accepted at all
    with pytest.raises(QualityInputError, match=r"compared by name .* never by id"):
        class_drift({1: 300, 2: 200}, {"cat": 250})  # type: ignore[dict-item]


def test_one_class_on_both_sides_is_the_same_mix() -> None:
    verdict, shares = class_drift({"cat": 10}, {"cat": 500})
    assert (verdict.statistic, verdict.p_value, verdict.effect, verdict.drift) == (
        0.0,
        1.0,
        0.0,
        False,
    )
    assert shares == {"cat": {"share_reference": 1.0, "share_current": 1.0, "change": 0.0}}


def test_bad_counts_are_all_reported() -> None:
    with pytest.raises(QualityInputError) as error:
        class_drift({"cat": -1, "dog": 2.5, "owl": True}, {"cat": 3})  # type: ignore[dict-item]
    assert error.value.problems == [
        "reference class 'cat': count must be a whole number >= 0",
        "reference class 'dog': count must be a whole number >= 0",
        "reference class 'owl': count must be a whole number >= 0",
    ]


def test_too_few_instances_are_not_tested_but_shares_are_given() -> None:
    verdict, shares = class_drift({"cat": 2, "dog": 2}, {"cat": 100})
    assert (verdict.test, verdict.drift, verdict.reference, verdict.current) == (
        "too_few",
        False,
        4,
        100,
    )
    assert shares["dog"]["share_current"] == 0.0
    # a side with no instances at all has no shares
    _, empty = class_drift({}, {"cat": 100})
    assert math.isnan(empty["cat"]["share_reference"])


# --- compare --------------------------------------------------------------------------


def _inputs(seed: int, images: int, cat: int, darker: float = 1.0) -> DriftInputs:
    rng = np.random.default_rng(seed)
    boxes = int(images * 3)
    return DriftInputs(
        classes={"cat": cat, "dog": 400, "person": 600},
        boxes_per_image=rng.poisson(3.0, images).astype(np.float64),
        box_size=rng.lognormal(3.5, 0.6, boxes),
        box_aspect=rng.lognormal(0.0, 0.3, boxes),
        properties={
            "width": np.full(images, 640.0),
            "brightness": rng.beta(5, 5, images) * darker,
            "jpeg_quality": np.full(images, math.nan),
        },
    )


def test_compare_flags_exactly_what_changed_as_json() -> None:
    reference = _inputs(seed=11, images=400, cat=400)
    current = _inputs(seed=12, images=400, cat=200, darker=0.6)
    result = compare(reference, current)
    assert list(result) == ["classes", "boxes", "properties", "drift"]
    assert result["drift"] == ["classes", "properties.brightness"]
    assert set(result["classes"]) == VERDICT_KEYS | {"shares"}
    assert result["classes"]["shares"]["cat"]["change"] == pytest.approx(200 / 1200 - 400 / 1400)
    assert list(result["boxes"]) == ["per_image", "size", "aspect"]
    assert list(result["properties"]) == ["width", "brightness", "jpeg_quality"]
    for verdict in [*result["boxes"].values(), *result["properties"].values()]:
        assert set(verdict) == VERDICT_KEYS
    assert result["properties"]["jpeg_quality"]["test"] == "too_few"
    assert result["properties"]["jpeg_quality"]["effect"] is None
    # strict JSON: no NaN anywhere
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_compare_of_a_dataset_with_itself_flags_nothing() -> None:
    reference = _inputs(seed=13, images=300, cat=400)
    result = compare(reference, reference)
    assert result["drift"] == []
    assert result["classes"]["effect"] == 0.0


def test_compare_of_a_property_on_one_side_only_is_too_few() -> None:
    reference = DriftInputs(properties={"width": np.full(20, 640.0)})
    current = DriftInputs(properties={"blur": np.ones(20), "width": np.full(20, 480.0)})
    result = compare(reference, current)
    assert list(result["properties"]) == ["width", "blur"]
    assert result["properties"]["blur"]["test"] == "too_few"
    assert result["drift"] == ["properties.width"]
    # no boxes and no classes on either side: nothing to say, nothing flagged
    assert result["boxes"]["size"]["test"] == "too_few"
    assert result["classes"]["test"] == "too_few"
    assert result["classes"]["shares"] == {}


def test_verdict_json_keeps_the_contract_keys_in_order() -> None:
    verdict = Verdict("ks", 0.5, 0.01, 0.7, True, 10, 12)
    assert verdict.to_json() == {
        "test": "ks",
        "statistic": 0.5,
        "p_value": 0.01,
        "effect": 0.7,
        "drift": True,
        "reference": 10,
        "current": 12,
    }
