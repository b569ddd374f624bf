"""Partial credit between two class labels, for agreement over a class hierarchy.

Two annotators who call one object ``sedan`` and ``suv`` disagree less than two who call
it ``sedan`` and ``cat``. With a hierarchy, a matched pair of differing labels earns a
credit in [0, 1] instead of 0 (the same label earns 1); ``hierarchical_agreement`` is the
mean credit over the matched pairs. The credit function is given as a plain callable
(:meth:`pixelpipe.taxonomy.Taxonomy.credit`: the depth of the lowest common ancestor over
the deeper depth), so the label maths imports nothing else of pixelpipe.

- :class:`CreditTable` computes each pair of labels' credit once and sums the credit of
  many matched pairs given as label codes (the box tallies);
- :func:`label_credit` is the mean credit over image-level class labels: every pair of
  annotators who both gave a label to an item.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pixelpipe.quality.inputs import QualityInputError, check_annotators, ratio

Credit = Callable[[str, str], float]
"""``credit(a, b)``: how far labels ``a`` and ``b`` agree, in [0, 1]."""


class CreditTable:
    """Credits of label pairs, each asked of the credit function once.

    Args:
        credit: The credit function; the same label always earns 1 without asking it.
    """

    def __init__(self, credit: Credit) -> None:
        self.credit = credit
        self._known: dict[tuple[str, str], float] = {}

    def of(self, a: str, b: str) -> float:
        """The credit of labels ``a`` and ``b`` (symmetric: asked in sorted order).

        Raises:
            QualityInputError: When the credit function returns no number in [0, 1].
        """
        if a == b:
            return 1.0
        key = (a, b) if a <= b else (b, a)
        found = self._known.get(key)
        if found is None:
            value = self.credit(*key)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0.0 <= value <= 1.0
            ):
                raise QualityInputError(
                    [f"the credit of {key[0]!r} and {key[1]!r} must be in [0, 1], got {value!r}"]
                )
            found = self._known[key] = float(value)
        return found

    def total(
        self, codes_a: npt.NDArray[np.int64], codes_b: npt.NDArray[np.int64], labels: list[str]
    ) -> float:
        """The summed credit of matched pairs given as label codes.

        Args:
            codes_a: ``(k,)`` the first side's label code of each pair.
            codes_b: ``(k,)`` the other side's.
            labels: The label of each code.

        Returns:
            The number of same-label pairs plus the credit of each differing pair.
        """
        differ = codes_a != codes_b
        total = float(np.count_nonzero(~differ))
        if differ.any():
            kinds, times = np.unique(
                np.column_stack([codes_a[differ], codes_b[differ]]), axis=0, return_counts=True
            )
            for (a, b), count in zip(kinds.tolist(), times.tolist(), strict=True):
                total += self.of(labels[a], labels[b]) * count
        return total


def label_credit(
    ratings: Sequence[Sequence[str | None]],
    annotators: Sequence[str],
    credit: Credit,
    no_label: Collection[str] = (),
) -> dict[str, Any]:
    """Mean credit over every pair of annotators who both labelled an item.

    Args:
        ratings: One row per item, one value per annotator (``None``: did not rate it).
        annotators: The annotator names, in the order of each row's values.
        credit: The credit of two differing labels.
        no_label: Values that are no label (``(no label)``): such a pair is not compared,
            as an unmatched box is not.

    Returns:
        ``hierarchical_agreement`` (mean over all compared pairs, ``None`` when none),
        ``hierarchical_pairs_compared`` and ``hierarchical_agreement_pairs`` (``"a|b"`` ->
        the pair's mean, ``None`` when it compared nothing).

    Raises:
        QualityInputError: When a row has the wrong length, or a credit is out of [0, 1].
    """
    names = check_annotators(annotators)
    table = CreditTable(credit)
    pairs = list(itertools.combinations(range(len(names)), 2))
    sums = dict.fromkeys(pairs, 0.0)
    counts = dict.fromkeys(pairs, 0)
    problems: list[str] = []
    for index, row in enumerate(ratings):
        if len(row) != len(names):
            problems.append(f"item {index}: {len(row)} ratings for {len(names)} annotators")
            continue
        given = [
            (j, value) for j, value in enumerate(row) if value is not None and value not in no_label
        ]
        for (j, a), (k, b) in itertools.combinations(given, 2):
            sums[(j, k)] += table.of(a, b)
            counts[(j, k)] += 1
    if problems:
        raise QualityInputError(problems)
    return {
        "hierarchical_agreement": ratio(sum(sums.values()), sum(counts.values())),
        "hierarchical_pairs_compared": sum(counts.values()),
        "hierarchical_agreement_pairs": {
            f"{names[j]}|{names[k]}": ratio(sums[(j, k)], counts[(j, k)]) for j, k in pairs
        },
    }
