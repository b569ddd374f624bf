"""Histograms of a reference and a current sample on common bins, for the plots and the report.

Both samples share one set of bins, so their bars overlay: whole numbers over a short range
(boxes per image, the same few widths) get one bin per value; anything else gets
:data:`BINS` equal bins between the 1st and 99th percentiles of both samples together, the
values beyond counted in the end bins (one thin box of aspect 50 does not squash every
other bar into one). Each bar is the share of its sample's values, so samples of different
sizes compare. Bin labels start with the bin's number (``03: 0.4-0.5``): DVC's templates
sort a nominal axis by name, and this keeps the bins in order.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

BINS = 20
"""Bins of a histogram of continuous values."""
TAILS = (1.0, 99.0)
"""The percentiles (of both samples together) between which the bins lie."""
DATASETS = ("reference", "current")
"""The values of the ``dataset`` field of every plot row, in row order."""


@dataclass(frozen=True)
class Histogram:
    """Two samples' shares on common bins.

    Attributes:
        labels: One label per bin, numbered.
        reference: The reference's share of values in each bin.
        current: The current sample's share in each bin.
        counts: Finite values of each sample (``reference``, ``current``).
    """

    labels: list[str]
    reference: list[float]
    current: list[float]
    counts: tuple[int, int]


def _text(value: float) -> str:
    return f"{value:.3g}"


def _edges(pooled: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The bin edges over ``pooled`` (finite, not empty) and each bin's label, unnumbered."""
    low, high = float(pooled.min()), float(pooled.max())
    if np.all(pooled == np.round(pooled)) and high - low < BINS:
        values = np.arange(low, high + 1.0)
        return np.append(values - 0.5, high + 0.5), [_text(v) for v in values]
    low, high = (float(v) for v in np.percentile(pooled, TAILS))
    if high <= low:
        return np.array([low - 0.5, low + 0.5]), [_text(low)]
    edges = np.linspace(low, high, BINS + 1)
    return edges, [f"{_text(a)}-{_text(b)}" for a, b in itertools.pairwise(edges)]


def _shares(values: np.ndarray, edges: np.ndarray) -> list[float]:
    if not values.size:
        return [0.0] * (len(edges) - 1)
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return [round(float(c) / values.size, 6) for c in counts]


def histogram(reference: np.ndarray, current: np.ndarray) -> Histogram:
    """Both samples' shares on common bins.

    Args:
        reference: The reference's values (NaN and infinite values are left out).
        current: The current sample's values.

    Returns:
        The histogram; no bins when neither sample has a finite value.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    pooled = np.concatenate([ref, cur])
    if not pooled.size:
        return Histogram([], [], [], (0, 0))
    edges, texts = _edges(pooled)
    width = len(str(len(texts) - 1))
    labels = [f"{i:0{max(width, 2)}d}: {t}" for i, t in enumerate(texts)]
    return Histogram(labels, _shares(ref, edges), _shares(cur, edges), (ref.size, cur.size))


def rows(found: Histogram) -> list[dict[str, Any]]:
    """The plot rows of a histogram: per bin, the reference's row then the current's.

    Each row: ``bin``, ``dataset`` (``reference`` or ``current``), ``share``, and
    ``bin_dataset`` (``"03: 0.4-0.5 / current"``, the plot's axis).
    """
    out = []
    for index, label in enumerate(found.labels):
        for dataset, shares in zip(DATASETS, (found.reference, found.current), strict=True):
            out.append(
                {
                    "bin": label,
                    "dataset": dataset,
                    "share": shares[index],
                    "bin_dataset": f"{label} / {dataset}",
                }
            )
    return out


def class_rows(shares: Mapping[str, Mapping[str, float | None]]) -> list[dict[str, Any]]:
    """The plot rows of the class shares: per class (by name), the reference then the current.

    Args:
        shares: ``compare()["classes"]["shares"]``: name -> ``share_reference``,
            ``share_current`` (``None`` when a side has no instance).
    """
    out = []
    for name in sorted(shares):
        for dataset in DATASETS:
            value = shares[name].get(f"share_{dataset}")
            out.append(
                {
                    "class": name,
                    "dataset": dataset,
                    "share": round(float(value), 6) if value is not None else 0.0,
                    "class_dataset": f"{name} / {dataset}",
                }
            )
    return out
