"""Uncertainty of a model's predictions, for active learning: per box, then per image.

Three measures (Settles' survey, section 3.1; modAL; scikit-activeml), on a probability
vector over ``K`` classes: *least confidence* ``1 - max p``, *margin* ``p1 - p2`` (the two
largest; smaller is more uncertain) and *entropy* ``-sum p log2 p``. :func:`uncertainty`
puts each on one scale, as Lightly's ``ScorerClassification`` does (``normalize_to_0_1``):
0 for a one-hot vector (the model is sure), 1 for the uniform vector (it knows nothing):
``(1 - max p) / (1 - 1/K)``, ``1 - (p1 - p2)`` and ``H / log2 K``.

A detector usually keeps only the top class probability ``p`` of a box (its ``score``).
Lightly (``ObjectDetectionOutput.from_scores``, lightly#338) then expands it to a vector:
``p`` for the predicted class and ``(1 - p) / (K - 1)`` for each other (:func:`expand`).
Two choices of ours, both for the case that expansion leaves undefined:

- ``K`` is at least 2: with a single class, the other outcome is "not this class" (as
  Lightly reads a one-column output as a binary problem);
- ``p`` is at least ``1/K``: a top-class probability cannot be lower, so a smaller score
  (objectness times class probability can be) counts as ``1/K``, the most uncertain.

On such an expanded vector the three measures are functions of ``p`` alone, all
decreasing, so they *order* boxes the same way; least confidence and margin even have the
same normalized value, ``K (1 - p) / (K - 1)``. They differ once full class probabilities
are given (:func:`uncertainty` takes any probability matrix). :func:`box_uncertainty`
computes the expanded measures in closed form (no ``(n, K)`` matrix) and
:func:`per_image_max` reduces boxes to images by the maximum, as Lightly's
``ScorerObjectDetection`` does (``reduce_fn_over_bounding_boxes=np.max``).

Numpy only; a bad input raises :class:`~pixelpipe.quality.inputs.QualityInputError`.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from pixelpipe.quality.inputs import QualityInputError

Measure = Literal["least_confidence", "margin", "entropy"]
MEASURES: tuple[str, ...] = get_args(Measure)
F64 = npt.NDArray[np.float64]


def classes_of(count: int) -> int:
    """The ``K`` of the expansion: the class map's size, at least 2.

    Args:
        count: Number of classes in the class map.

    Returns:
        ``max(count, 2)``.

    Raises:
        QualityInputError: When ``count`` is negative.
    """
    if count < 0:
        raise QualityInputError([f"number of classes must not be negative, got {count}"])
    return max(int(count), 2)


def check_scores(scores: npt.ArrayLike) -> F64:
    """Scores as a float array, every one a number in ``[0, 1]``.

    Args:
        scores: ``(n,)`` top class probabilities.

    Returns:
        The scores as ``float64``.

    Raises:
        QualityInputError: Naming each score (by position) that is not in ``[0, 1]``.
    """
    array = np.asarray(scores, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~((array >= 0.0) & (array <= 1.0)))  # NaN fails both
    if bad.size:
        raise QualityInputError(
            [
                f"score {float(array[i])!r} at position {int(i)} is not in [0, 1]"
                for i in bad.tolist()
            ]
        )
    return array


def expand(scores: npt.ArrayLike, classes: int) -> F64:
    """Lightly's expansion of top probabilities to probability vectors.

    Args:
        scores: ``(n,)`` top class probabilities in ``[0, 1]``.
        classes: Number of classes in the class map (``K``, taken as at least 2).

    Returns:
        ``(n, K)``: column 0 is ``max(p, 1/K)``, every other column ``(1 - p') / (K - 1)``.

    Raises:
        QualityInputError: When a score is not in ``[0, 1]``.
    """
    k = classes_of(classes)
    top = np.maximum(check_scores(scores), 1.0 / k)
    probs = np.repeat(((1.0 - top) / (k - 1))[:, None], k, axis=1)
    probs[:, 0] = top
    return probs


def _matrix(probs: npt.ArrayLike) -> F64:
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 2:
        raise QualityInputError(
            [f"probabilities must be an (n, K) matrix with K >= 2, got shape {array.shape}"]
        )
    problems: list[str] = []
    if not np.all((array >= 0.0) & (array <= 1.0)):
        problems.append("probabilities must be numbers in [0, 1]")
    sums = array.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    problems.extend(f"row {int(i)} sums to {sums[i]:.6g}, not 1" for i in off[:20].tolist())
    if problems:
        raise QualityInputError(problems)
    return array


def least_confidence(probs: npt.ArrayLike) -> F64:
    """``1 - max p`` of each row (larger: more uncertain).

    Args:
        probs: ``(n, K)`` probability vectors.

    Returns:
        ``(n,)`` values in ``[0, 1 - 1/K]``.

    Raises:
        QualityInputError: When ``probs`` is not a matrix of probability vectors.
    """
    return np.asarray(1.0 - _matrix(probs).max(axis=1), dtype=np.float64)


def margin(probs: npt.ArrayLike) -> F64:
    """``p1 - p2``, the largest minus the second largest of each row (smaller: more uncertain).

    Args:
        probs: ``(n, K)`` probability vectors.

    Returns:
        ``(n,)`` values in ``[0, 1]``.

    Raises:
        QualityInputError: When ``probs`` is not a matrix of probability vectors.
    """
    top = np.sort(_matrix(probs), axis=1)
    return np.asarray(top[:, -1] - top[:, -2], dtype=np.float64)


def entropy(probs: npt.ArrayLike) -> F64:
    """Shannon entropy of each row in bits, ``0 log 0 = 0`` (larger: more uncertain).

    Args:
        probs: ``(n, K)`` probability vectors.

    Returns:
        ``(n,)`` values in ``[0, log2 K]``.

    Raises:
        QualityInputError: When ``probs`` is not a matrix of probability vectors.
    """
    array = _matrix(probs)
    logs = np.log2(array, out=np.zeros_like(array), where=array > 0)
    return np.asarray(np.maximum(-(array * logs).sum(axis=1), 0.0), dtype=np.float64)


def check_measure(measure: str) -> Measure:
    """``measure`` when it is one of :data:`MEASURES`.

    Raises:
        QualityInputError: Naming the measures there are.
    """
    if measure not in MEASURES:
        raise QualityInputError([f"unknown measure {measure!r}; one of {', '.join(MEASURES)}"])
    return measure  # type: ignore[return-value]


def uncertainty(probs: npt.ArrayLike, measure: str) -> F64:
    """One measure of each row on Lightly's scale: 0 for one-hot, 1 for uniform.

    Args:
        probs: ``(n, K)`` probability vectors.
        measure: ``least_confidence``, ``margin`` or ``entropy``.

    Returns:
        ``(n,)`` uncertainties in ``[0, 1]`` (larger: more uncertain).

    Raises:
        QualityInputError: For an unknown measure or rows that are not probability vectors.
    """
    which = check_measure(measure)
    array = _matrix(probs)
    k = array.shape[1]
    if which == "least_confidence":
        raw = least_confidence(array) / (1.0 - 1.0 / k)
    elif which == "margin":
        raw = 1.0 - margin(array)
    else:
        raw = entropy(array) / np.log2(k)
    return np.asarray(np.clip(raw, 0.0, 1.0), dtype=np.float64)


def box_uncertainty(scores: npt.ArrayLike, classes: int, measure: str) -> F64:
    """:func:`uncertainty` of :func:`expand`, in closed form (memory does not grow with K).

    With ``p' = max(p, 1/K)``: least confidence and margin are ``K (1 - p') / (K - 1)``;
    entropy is ``(-p' log2 p' - (1 - p') log2((1 - p') / (K - 1))) / log2 K``.

    Args:
        scores: ``(n,)`` top class probabilities in ``[0, 1]``.
        classes: Number of classes in the class map (taken as at least 2).
        measure: ``least_confidence``, ``margin`` or ``entropy``.

    Returns:
        ``(n,)`` uncertainties in ``[0, 1]``.

    Raises:
        QualityInputError: For an unknown measure or a score outside ``[0, 1]``.
    """
    which = check_measure(measure)
    k = classes_of(classes)
    top = np.maximum(check_scores(scores), 1.0 / k)
    if which != "entropy":
        raw = k * (1.0 - top) / (k - 1)
    else:
        rest = 1.0 - top
        other = rest / (k - 1)
        head = top * np.log2(top)  # top >= 1/K > 0
        tail = rest * np.log2(other, out=np.zeros_like(other), where=other > 0)
        raw = -(head + tail) / np.log2(k)
    return np.asarray(np.clip(raw, 0.0, 1.0), dtype=np.float64)


def per_image_max(
    values: npt.ArrayLike, image: npt.ArrayLike, images: int, empty: float = np.nan
) -> F64:
    """The largest value of each image's boxes (Lightly's reduction over boxes).

    Args:
        values: ``(n,)`` per-box uncertainties.
        image: ``(n,)`` the image index of each box, in ``[0, images)``.
        images: Number of images.
        empty: The value of an image without boxes.

    Returns:
        ``(images,)`` maxima, ``empty`` where an image has no box.

    Raises:
        QualityInputError: When the arrays differ in length or an index is out of range.
    """
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    where = np.asarray(image, dtype=np.int64).reshape(-1)
    if vals.shape != where.shape:
        raise QualityInputError(
            [f"{vals.size} values but {where.size} image indices: one per box each"]
        )
    if where.size and (where.min() < 0 or where.max() >= images):
        raise QualityInputError([f"image indices must be in [0, {images})"])
    out = np.full(images, -np.inf, dtype=np.float64)
    np.maximum.at(out, where, vals)
    out[np.isneginf(out)] = empty
    return out
