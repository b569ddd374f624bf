"""The leak check: recomputed from the output, independently of how splits were chosen.

Two questions, each answered from scratch on the split manifest:

- does any group cross splits? Groups are checked one reason at a time: equal ``group``
  values, equal values of each user group column, equal pattern keys, equal file bytes
  (sha256), and a derived image against its parent;
- is any pair of images in different splits within the near-duplicate distance? Every
  pair within the distance is found by the Hamming index. When a near-duplicate cluster
  has members in two splits, some pair of it within the distance crosses (a connected
  cluster painted in two colours has an edge between them), so counting crossing pairs
  over the clusters' pairs is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pixelpipe.imaging import hamming
from stages._split.groups import text

I64 = npt.NDArray[np.int64]
EXAMPLES = 20


@dataclass
class LeakReport:
    """What the leak check found.

    Attributes:
        groups_checked: Groups with two or more members, per reason.
        groups_crossing: Groups whose members are in more than one split, per reason.
        group_examples: A few crossing groups: reason, key and the splits of its members.
        distance: The near-duplicate distance checked (``None``: not checked).
        hashed: Images with a hash that took part.
        pairs_within: Pairs of images within the distance.
        pairs_crossing: Those pairs whose images are in different splits.
        pair_examples: A few crossing pairs: both ids, their splits and their distance.
    """

    groups_checked: dict[str, int] = field(default_factory=dict)
    groups_crossing: dict[str, int] = field(default_factory=dict)
    group_examples: list[dict[str, Any]] = field(default_factory=list)
    distance: int | None = None
    hashed: int = 0
    pairs_within: int = 0
    pairs_crossing: int = 0
    pair_examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No group crosses splits and no near-duplicate pair does."""
        return not sum(self.groups_crossing.values()) and not self.pairs_crossing

    def summary(self) -> str:
        """One line for people."""
        if self.clean:
            return "clean"
        parts = [
            f"{n} {reason} groups cross splits" for reason, n in self.groups_crossing.items() if n
        ]
        if self.pairs_crossing:
            parts.append(
                f"{self.pairs_crossing} near-duplicate pairs (distance <= {self.distance}) "
                "are in different splits"
            )
        return "; ".join(parts)


def check_groups(
    report: LeakReport, reason: str, values: Iterable[Any], splits: Sequence[str | None]
) -> None:
    """Count groups of equal non-null ``values`` whose rows are in several splits."""
    members: dict[str, set[str | None]] = {}
    sizes: dict[str, int] = {}
    for value, split in zip(values, splits, strict=True):
        if value is None:
            continue
        key = text(value)
        members.setdefault(key, set()).add(split)
        sizes[key] = sizes.get(key, 0) + 1
    crossing = sorted(k for k, found in members.items() if len(found) > 1)
    report.groups_checked[reason] = report.groups_checked.get(reason, 0) + sum(
        1 for n in sizes.values() if n > 1
    )
    report.groups_crossing[reason] = report.groups_crossing.get(reason, 0) + len(crossing)
    for key in crossing[: max(0, EXAMPLES - len(report.group_examples))]:
        found = sorted(members[key], key=lambda s: (s is None, s or ""))
        report.group_examples.append({"reason": reason, "key": key, "splits": found})


def check_parents(
    report: LeakReport,
    ids: Sequence[str],
    parents: Sequence[str | None],
    splits: Sequence[str | None],
) -> None:
    """Count derived images whose split differs from their parent's (when it is present)."""
    split_of = dict(zip(ids, splits, strict=True))
    checked = crossing = 0
    for sample_id, parent, split in zip(ids, parents, splits, strict=True):
        if parent is None or parent not in split_of:
            continue
        checked += 1
        if split_of[parent] != split:
            crossing += 1
            if len(report.group_examples) < EXAMPLES:
                report.group_examples.append(
                    {"reason": "parent", "key": sample_id, "splits": [split_of[parent], split]}
                )
    report.groups_checked["parent"] = checked
    report.groups_crossing["parent"] = crossing


def check_near(
    report: LeakReport,
    result: hamming.SearchResult,
    ids: Sequence[str],
    split_index: I64,
    split_names: Sequence[str | None],
    distance: int,
) -> None:
    """Count pairs within ``distance`` whose images are in different splits.

    Args:
        report: Filled in place.
        result: The Hamming search over the hashed images (items in ``ids`` order).
        ids: The hashed images' ids.
        split_index: Each hashed image's split, as an index into ``split_names``.
        split_names: The split names.
        distance: The distance the search used.
    """
    report.distance = distance
    report.hashed = len(ids)
    if not len(ids):
        return
    inverse = result.inverse
    codes = int(inverse.max()) + 1
    width = len(split_names)
    per_code = np.zeros((codes, width), dtype=np.int64)
    np.add.at(per_code, (inverse, split_index), 1)
    totals = per_code.sum(axis=1)
    within_same = (totals * (totals - 1) // 2).sum()
    cross_same = ((totals**2 - (per_code**2).sum(axis=1)) // 2).sum()
    pairs = result.unique_pairs
    between = int((totals[pairs.i] * totals[pairs.j]).sum()) if len(pairs) else 0
    cross_between = 0
    if len(pairs):
        dots = (per_code[pairs.i] * per_code[pairs.j]).sum(axis=1)
        cross = totals[pairs.i] * totals[pairs.j] - dots
        cross_between = int(cross.sum())
    report.pairs_within = int(within_same) + between
    report.pairs_crossing = int(cross_same) + cross_between
    if not report.pairs_crossing:
        return
    # A few examples, taken from the crossing pairs themselves.
    for a, b, d in zip(*_crossing_examples(result, split_index), strict=True):
        report.pair_examples.append(
            {
                "a": ids[a],
                "b": ids[b],
                "splits": [split_names[split_index[a]], split_names[split_index[b]]],
                "distance": int(d),
            }
        )


def _crossing_examples(result: hamming.SearchResult, split_index: I64) -> tuple[I64, I64, I64]:
    """Up to :data:`EXAMPLES` crossing item pairs (expanding only what is needed)."""
    members: dict[int, list[int]] = {}
    for item, code in enumerate(result.inverse.tolist()):
        members.setdefault(code, []).append(item)
    found: list[tuple[int, int, int]] = []

    def first_cross(left: list[int], right: list[int], dist: int) -> None:
        # One crossing pair per pair of codes: the first member of each split found.
        for x in left:
            for y in right:
                if x != y and split_index[x] != split_index[y]:
                    found.append((min(x, y), max(x, y), dist))
                    return

    for group in members.values():  # identical codes in different splits
        if len(found) >= EXAMPLES:
            break
        if len({int(split_index[x]) for x in group}) > 1:
            first_cross(group, group, 0)
    pairs = result.unique_pairs
    for i, j, d in zip(pairs.i.tolist(), pairs.j.tolist(), pairs.distance.tolist(), strict=True):
        if len(found) >= EXAMPLES:
            break
        splits_i = {int(split_index[x]) for x in members[i]}
        splits_j = {int(split_index[x]) for x in members[j]}
        if splits_i != splits_j or len(splits_i) > 1:
            first_cross(members[i], members[j], d)
    return (
        np.array([f[0] for f in found], dtype=np.int64),
        np.array([f[1] for f in found], dtype=np.int64),
        np.array([f[2] for f in found], dtype=np.int64),
    )
