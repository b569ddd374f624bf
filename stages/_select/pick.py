"""The batch: candidates in order of uncertainty, one per group, class quotas, a budget.

Candidates are ranked by uncertainty (largest first); ties go by a seeded hash of the
sample id (:func:`pixelpipe.derive_seed`), then by the id itself, so the order depends on
nothing but each image's own values and the seed. Walking down the ranking, a candidate is
taken unless an image of its group was taken already (diversity) or its class's quota is
full; the walk stops when ``budget`` images are taken. A candidate skipped for its quota
does not use up its group: another member may still be taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pixelpipe import derive_seed

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Picked:
    """What the walk down the ranking took and passed over.

    Attributes:
        chosen: Positions (into the candidate arrays) of the images taken, in rank order.
        same_group: Candidates passed over because an image of their group was taken first.
        over_quota: Candidates passed over because their class's quota was full.
    """

    chosen: I64
    same_group: int
    over_quota: int


def ranking(uncertainty: F64, ids: Sequence[str], seed: int) -> I64:
    """Positions of the candidates, most uncertain first, ties by a seeded hash of the id.

    Args:
        uncertainty: Per candidate, its uncertainty (no NaN).
        ids: Per candidate, its sample id.
        seed: The stage seed.

    Returns:
        A permutation of ``range(len(ids))``.
    """
    tie = np.array([derive_seed(seed, "select", i) for i in ids], dtype=np.uint64)
    names = np.array(ids, dtype=str)
    return np.lexsort((names, tie, -np.asarray(uncertainty, dtype=np.float64))).astype(np.int64)


def pick(
    order: I64,
    group: I64,
    top_class: I64,
    quotas: Mapping[int, int],
    budget: int,
) -> Picked:
    """Walk down ``order`` and take images within the group, quota and budget limits.

    Args:
        order: The ranking (:func:`ranking`).
        group: Per candidate, its group (one image per group at most).
        top_class: Per candidate, its class for the quotas (any value without a quota is
            limited by the budget alone).
        quotas: Most images per class.
        budget: Most images in all.

    Returns:
        The images taken and what was passed over on the way.
    """
    taken_groups: set[int] = set()
    per_class: dict[int, int] = {}
    chosen: list[int] = []
    same_group = over_quota = 0
    groups = group.tolist()
    classes = top_class.tolist()
    for position in order.tolist():
        if len(chosen) >= budget:
            break
        g, c = groups[position], classes[position]
        if g in taken_groups:
            same_group += 1
            continue
        limit = quotas.get(c)
        if limit is not None and per_class.get(c, 0) >= limit:
            over_quota += 1
            continue
        chosen.append(position)
        taken_groups.add(g)
        per_class[c] = per_class.get(c, 0) + 1
    return Picked(np.array(chosen, dtype=np.int64), same_group, over_quota)
