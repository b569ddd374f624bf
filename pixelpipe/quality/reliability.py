"""Krippendorff's nominal alpha from value counts, in memory that does not grow with the units.

``krippendorff.alpha`` builds a ``(units, values, values)`` array on the way to the
coincidence matrix: 3.5 GB for a million boxes and 21 values. The coincidence matrix is a
sum over units and only depends on each unit's value counts, so identical units are
counted once with a multiplicity and the sum takes ``(distinct units, values)`` memory.
The formula is Krippendorff's (2011, "Computing Krippendorff's alpha-reliability"), the
one ``krippendorff.alpha(..., level_of_measurement="nominal")`` implements; the tests
check both agree on the package's published examples and on random data.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def nominal_alpha(
    value_counts: npt.ArrayLike, multiplicity: npt.ArrayLike | None = None
) -> tuple[float | None, str | None]:
    """Krippendorff's alpha for nominal values.

    Args:
        value_counts: ``(units, values)`` how many coders gave each value to each unit.
        multiplicity: ``(units,)`` how many times each row occurs (1 when ``None``).

    Returns:
        ``(alpha, None)``, or ``(None, reason)`` when alpha is undefined: no unit has two
        values, or the values that are pairable within units are all the same.
    """
    counts = np.asarray(value_counts, dtype=np.int64)
    if counts.ndim != 2:
        counts = counts.reshape(0, 1)
    weights = (
        np.ones(counts.shape[0], dtype=np.int64)
        if multiplicity is None
        else np.asarray(multiplicity, dtype=np.int64).reshape(-1)
    )
    coders = counts.sum(axis=1)
    pairable = coders >= 2
    if not pairable.any():
        return None, "no unit has values from two or more annotators"
    if int((counts[weights > 0].sum(axis=0) > 0).sum()) < 2:
        return None, "only one value occurs, so there is no variation to agree on"
    rows, inverse = np.unique(counts[pairable], axis=0, return_inverse=True)
    times = np.bincount(inverse.reshape(-1), weights=weights[pairable], minlength=rows.shape[0])
    share = times / (rows.sum(axis=1) - 1)
    weighted = rows * share[:, None]
    # o_ck = sum over units of n_uc * (n_uk - [c == k]) / (m_u - 1)
    coincidences = weighted.T @ rows - np.diag(weighted.sum(axis=0))
    n_v = coincidences.sum(axis=0)
    total = float(n_v.sum())
    observed = float(coincidences.sum() - np.trace(coincidences))
    expected = (total * total - float((n_v * n_v).sum())) / (total - 1)
    if expected <= 0:
        return None, "only one value occurs on items with two or more annotators"
    return 1.0 - observed / expected, None
