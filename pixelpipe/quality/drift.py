"""Drift between two datasets: did the class mix, the boxes or the images change?

Pure statistics on plain values (scipy does the tests), used by the ``drift`` stage and by
``pixelpipe diff A B --stats``. Each comparison gives a :class:`Verdict` that always
carries both a hypothesis test's statistic and p-value *and* an effect size; which of
the two decides follows Evidently's default drift logic (``_get_default_stattest`` in
``evidently/legacy/calculations/stattests/registry.py``, release notes of v0.1.50.dev0):

- **Small samples** (neither side has more than ``Thresholds.large`` values, 1000 as in
  Evidently): the test decides, drift when its p-value is below ``Thresholds.p_value``
  (0.05). Numbers: the two-sample Kolmogorov-Smirnov test (:func:`scipy.stats.ks_2samp`,
  ``test="ks"``). Classes: the chi-squared test of the 2 x k contingency table of counts
  (:func:`scipy.stats.chi2_contingency`, with scipy's default Yates correction when there
  are only two classes; ``test="chi_squared"``).
- **Large samples**: any difference becomes significant, so the size of the difference
  decides. Numbers: the Wasserstein distance (:func:`scipy.stats.wasserstein_distance`)
  divided by the reference's standard deviation (``numpy.std``, at least 0.001 as in
  Evidently's ``_wasserstein_distance_norm``), drift when ``>= numeric_effect`` (0.1;
  ``test="wasserstein"``). Classes: the Jensen-Shannon distance of the two class shares
  (:func:`scipy.spatial.distance.jensenshannon`), drift when ``>= class_effect`` (0.1;
  ``test="jensen_shannon"``).

Where this differs from Evidently, on purpose: the split looks at both sides (Evidently
looks at the reference only); classes use a contingency table (Evidently fits the
current counts to the reference's shares with ``chisquare``); the Jensen-Shannon distance
is in base 2 so it lies in [0, 1] (Evidently uses the natural log, up to 0.83); numbers
are never treated as classes (Evidently does so for 5 distinct values or fewer).

Classes are compared by **name**: the union of both sides' names, a class absent on one
side counting 0 there, sorted by name; class ids never enter (Datumaro's label-shift test
ranks ids as if they were ordered numbers, which they are not). Values that are not
finite numbers (the NaN ``jpeg_quality`` of a PNG) are dropped; with fewer than
:data:`MIN_VALUES` on either side nothing is tested and the verdict is ``too_few``.

How large is large, in practice: halving one class of ten equal ones moves the
Jensen-Shannon distance by 0.076 only, under 0.1; chi-squared flags it easily at a few
hundred instances. A bad input raises :class:`~pixelpipe.quality.inputs.QualityInputError`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from pixelpipe.quality.inputs import QualityInputError, number, raise_problems

MIN_VALUES = 5
"""Fewest values (or class instances) on each side for a test to say anything."""
MIN_STD = 0.001
"""The smallest reference standard deviation the Wasserstein distance is divided by."""
TESTS = ("ks", "wasserstein", "chi_squared", "jensen_shannon", "too_few")
"""The values of :attr:`Verdict.test`: the rule that decided."""
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Thresholds:
    """When a difference counts as drift.

    Attributes:
        p_value: For samples of at most ``large`` values: drift when the test's p-value
            is below this.
        numeric_effect: For larger samples of numbers: drift when the Wasserstein
            distance divided by the reference's standard deviation is at least this.
        class_effect: For larger samples of classes: drift when the Jensen-Shannon
            distance (base 2, in [0, 1]) of the class shares is at least this.
        large: The sample size above which the effect decides instead of the test
            (Evidently's 1000).
    """

    p_value: float = 0.05
    numeric_effect: float = 0.1
    class_effect: float = 0.1
    large: int = 1000

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _real(self.p_value) or not 0 < self.p_value < 1:
            problems.append(f"p_value must be a number between 0 and 1, got {self.p_value!r}")
        for name in ("numeric_effect", "class_effect"):
            value = getattr(self, name)
            if not _real(value) or not 0 <= value < math.inf:
                problems.append(f"{name} must be a number >= 0, got {value!r}")
        if isinstance(self.large, bool) or not isinstance(self.large, int) or self.large < 0:
            problems.append(f"large must be a whole number >= 0, got {self.large!r}")
        raise_problems(problems)


def _real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Verdict:
    """One comparison of a reference with a current sample.

    Attributes:
        test: The rule that decided (:data:`TESTS`): ``ks`` or ``chi_squared`` (the
            p-value, small samples), ``wasserstein`` or ``jensen_shannon`` (the effect,
            large samples), ``too_few`` (nothing tested).
        statistic: The test's statistic, whichever rule decided: Kolmogorov-Smirnov D for
            numbers, chi-squared for classes (NaN when ``too_few``).
        p_value: The test's p-value, whichever rule decided (``None`` when ``too_few``).
        effect: The effect size, whichever rule decided: Wasserstein distance / reference
            std for numbers, Jensen-Shannon distance for classes (NaN when ``too_few``).
        drift: The verdict.
        reference: Values (or instances) of the reference that were compared.
        current: Values (or instances) of the current sample that were compared.
    """

    test: str
    statistic: float
    p_value: float | None
    effect: float
    drift: bool
    reference: int
    current: int

    def to_json(self) -> dict[str, Any]:
        """The verdict as JSON values (an undefined number is ``null``)."""
        return {
            "test": self.test,
            "statistic": number(self.statistic),
            "p_value": number(self.p_value),
            "effect": number(self.effect),
            "drift": bool(self.drift),
            "reference": int(self.reference),
            "current": int(self.current),
        }


def _too_few(reference: int, current: int) -> Verdict:
    return Verdict("too_few", math.nan, None, math.nan, False, reference, current)


def _values(values: npt.ArrayLike, side: str) -> F64:
    """The finite numbers of ``values`` as a flat float array."""
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise QualityInputError([f"{side} values must be numbers"]) from None
    return array[np.isfinite(array)]


def numeric_drift(
    reference: npt.ArrayLike, current: npt.ArrayLike, thresholds: Thresholds = Thresholds()
) -> Verdict:
    """Did a number's distribution change (box size, brightness, ...)?

    Args:
        reference: The reference's values (NaN and infinite values are dropped).
        current: The current sample's values (likewise).
        thresholds: When a difference is drift.

    Returns:
        Kolmogorov-Smirnov D and p-value, and the Wasserstein distance divided by the
        reference's standard deviation; ``ks`` decides up to ``thresholds.large``
        values on both sides, ``wasserstein`` above; ``too_few`` under :data:`MIN_VALUES`.

    Raises:
        QualityInputError: When the values are not numbers.
    """
    ref, cur = _values(reference, "reference"), _values(current, "current")
    if ref.size < MIN_VALUES or cur.size < MIN_VALUES:
        return _too_few(ref.size, cur.size)
    with warnings.catch_warnings():  # "exact calculation unsuccessful": scipy falls back
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ks_2samp(ref, cur)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    effect = float(wasserstein_distance(ref, cur)) / max(float(np.std(ref)), MIN_STD)
    sizes = int(ref.size), int(cur.size)
    if max(sizes) <= thresholds.large:
        return Verdict("ks", statistic, p_value, effect, p_value < thresholds.p_value, *sizes)
    drift = effect >= thresholds.numeric_effect
    return Verdict("wasserstein", statistic, p_value, effect, drift, *sizes)


def _counts(counts: Mapping[str, int], side: str) -> dict[str, int]:
    """Check a ``{class name: instances}`` mapping; every problem reported at once."""
    if not isinstance(counts, Mapping):
        raise QualityInputError([f"{side} classes must be a mapping of class name to count"])
    problems: list[str] = []
    checked: dict[str, int] = {}
    for name, count in counts.items():
        if not isinstance(name, str):
            problems.append(
                f"{side} class {name!r}: classes are compared by name (a string), never by id"
            )
        elif isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            problems.append(f"{side} class {name!r}: count must be a whole number >= 0")
        else:
            checked[name] = int(count)
    raise_problems(problems)
    return checked


def class_drift(
    reference: Mapping[str, int], current: Mapping[str, int], thresholds: Thresholds = Thresholds()
) -> tuple[Verdict, dict[str, dict[str, float]]]:
    """Did the class mix change?

    Args:
        reference: Instances per class name in the reference.
        current: Instances per class name in the current sample. A class missing on one
            side counts 0 there.
        thresholds: When a difference is drift.

    Returns:
        ``(verdict, shares)``: chi-squared and its p-value on the 2 x k table of counts,
        and the Jensen-Shannon distance (base 2) of the shares; ``chi_squared`` decides
        up to ``thresholds.large`` instances on both sides, ``jensen_shannon`` above,
        ``too_few`` under :data:`MIN_VALUES`. ``shares`` maps every class name (sorted)
        to ``share_reference``, ``share_current`` (its fraction of the side's instances,
        NaN when the side has none) and ``change`` (current minus reference).

    Raises:
        QualityInputError: When a key is not a name or a count not a whole number >= 0.
    """
    ref_counts, cur_counts = _counts(reference, "reference"), _counts(current, "current")
    names = sorted(set(ref_counts) | set(cur_counts))
    ref = np.array([ref_counts.get(name, 0) for name in names], dtype=np.float64)
    cur = np.array([cur_counts.get(name, 0) for name in names], dtype=np.float64)
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    ref_share = ref / n_ref if n_ref else np.full(len(names), math.nan)
    cur_share = cur / n_cur if n_cur else np.full(len(names), math.nan)
    shares = {
        name: {
            "share_reference": float(ref_share[i]),
            "share_current": float(cur_share[i]),
            "change": float(cur_share[i] - ref_share[i]),
        }
        for i, name in enumerate(names)
    }
    if n_ref < MIN_VALUES or n_cur < MIN_VALUES:
        return _too_few(n_ref, n_cur), shares
    seen = (ref + cur) > 0  # a class with no instance on either side says nothing
    if seen.sum() < 2:  # one class on both sides: the mixes are identical
        statistic, p_value = 0.0, 1.0
    else:
        result = chi2_contingency(np.stack([ref[seen], cur[seen]]))
        statistic, p_value = float(result.statistic), float(result.pvalue)
    effect = float(jensenshannon(ref_share, cur_share, base=2))
    if not math.isfinite(effect):  # rounding below 0 inside the square root: the same mix
        effect = 0.0
    if max(n_ref, n_cur) <= thresholds.large:
        verdict = Verdict(
            "chi_squared", statistic, p_value, effect, p_value < thresholds.p_value, n_ref, n_cur
        )
    else:
        drift = effect >= thresholds.class_effect
        verdict = Verdict("jensen_shannon", statistic, p_value, effect, drift, n_ref, n_cur)
    return verdict, shares


@dataclass
class DriftInputs:
    """What one dataset contributes to a comparison.

    Attributes:
        classes: Instances (annotations) per class name.
        boxes_per_image: Boxes on each image (0 for an image without any).
        box_size: Each box's ``sqrt(w * h)`` in pixels.
        box_aspect: Each box's ``w / h``.
        properties: Image property name -> one value per image (NaN where undefined),
            usually :data:`pixelpipe.imaging.properties.PROPERTIES`.
    """

    classes: dict[str, int] = field(default_factory=dict)
    boxes_per_image: np.ndarray = field(default_factory=lambda: np.zeros(0))
    box_size: np.ndarray = field(default_factory=lambda: np.zeros(0))
    box_aspect: np.ndarray = field(default_factory=lambda: np.zeros(0))
    properties: dict[str, np.ndarray] = field(default_factory=dict)


BOXES = ("per_image", "size", "aspect")
"""The keys of ``compare()["boxes"]``."""


def compare(
    reference: DriftInputs, current: DriftInputs, thresholds: Thresholds = Thresholds()
) -> dict[str, Any]:
    """Compare a dataset with its reference on classes, boxes and image properties.

    Args:
        reference: The reference dataset's values.
        current: The current dataset's values.
        thresholds: When a difference is drift.

    Returns:
        JSON values: ``{"classes": {**verdict, "shares": {name: {"share_reference",
        "share_current", "change"}}}, "boxes": {"per_image": verdict, "size": verdict,
        "aspect": verdict}, "properties": {name: verdict}, "drift": [...]}`` where each
        verdict is :meth:`Verdict.to_json` and ``drift`` lists what drifted, in that
        order (``"classes"``, ``"boxes.size"``, ``"properties.brightness"``...).
        Properties come in the reference's order, then those only the current has (a
        property missing on one side is ``too_few``).

    Raises:
        QualityInputError: When a value is not a number or a class count is bad.
    """
    verdict, shares = class_drift(reference.classes, current.classes, thresholds)
    classes = {
        **verdict.to_json(),
        "shares": {
            name: {key: number(value) for key, value in share.items()}
            for name, share in shares.items()
        },
    }
    boxes = {
        "per_image": numeric_drift(reference.boxes_per_image, current.boxes_per_image, thresholds),
        "size": numeric_drift(reference.box_size, current.box_size, thresholds),
        "aspect": numeric_drift(reference.box_aspect, current.box_aspect, thresholds),
    }
    names = list(reference.properties)
    names += [name for name in current.properties if name not in reference.properties]
    empty = np.zeros(0)
    properties = {
        name: numeric_drift(
            reference.properties.get(name, empty), current.properties.get(name, empty), thresholds
        )
        for name in names
    }
    drifted = ["classes"] if verdict.drift else []
    drifted += [f"boxes.{key}" for key in BOXES if boxes[key].drift]
    drifted += [f"properties.{name}" for name in names if properties[name].drift]
    return {
        "classes": classes,
        "boxes": {key: boxes[key].to_json() for key in BOXES},
        "properties": {name: properties[name].to_json() for name in names},
        "drift": drifted,
    }
