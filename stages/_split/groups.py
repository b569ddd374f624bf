"""Groups: samples that must land in one split, joined by every reason at once.

Rows are joined (union-find) when they share a ``group`` value, a value of a user group
column, a key taken from the source path by a pattern, the same file bytes (sha256), a
near-duplicate cluster (perceptual hashes within a distance, transitively), or a line of
descent (a derived image joins its parent, and copies of one missing parent join each
other). Each resulting group gets a *key* from which its split is computed:

- the smallest explicit key of its members (``group=...``, ``<column>=...``,
  ``pattern=...``), when any member has one: a user's group keeps its key whatever joins it;
- otherwise the smallest *root id* of its members: a sample's own id, or for a derived
  image the id of its oldest ancestor. Copies never change their group's key, so changing
  augmentation never moves an original.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pixelpipe import PixelpipeError, Problem, did_you_mean
from pixelpipe.imaging import hamming

I64 = npt.NDArray[np.int64]


@dataclass
class Grouping:
    """Which group each row is in.

    Attributes:
        group: Per row, its group index (groups numbered by their first row).
        keys: Per group, its key.
        roots: Per row, its root id (its own id, or its oldest ancestor's).
        derived: Per row, whether it has a parent.
        joined: How many rows each reason joined to another row (for the report).
        pattern_unmatched: Rows whose source the group pattern did not match.
    """

    group: I64
    keys: list[str]
    roots: list[str]
    derived: npt.NDArray[np.bool_]
    joined: dict[str, int] = field(default_factory=dict)
    pattern_unmatched: int = 0

    @property
    def count(self) -> int:
        """Number of groups."""
        return len(self.keys)


def text(value: Any) -> str:
    """A manifest value as a group key component (JSON for non-strings)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def pattern_keys(sources: Iterable[str | None], pattern: re.Pattern[str]) -> list[str | None]:
    """The group key a pattern takes from each source path.

    The key is the named group ``group``, else the first group, else the whole match;
    ``None`` where the pattern does not match.
    """
    keys: list[str | None] = []
    for source in sources:
        found = pattern.search(source or "")
        if found is None:
            keys.append(None)
        elif "group" in pattern.groupindex:
            keys.append(found.group("group"))
        elif pattern.groups:
            keys.append(found.group(1))
        else:
            keys.append(found.group(0))
    return keys


def root_ids(ids: list[str], parents: list[str | None]) -> list[str]:
    """Each row's root: its own id, or its oldest ancestor reachable through ``parent``.

    When the chain leaves the dataset, the root is the first missing ancestor's id.
    """
    parent_of = {i: p for i, p in zip(ids, parents, strict=True) if p is not None}
    roots: list[str] = []
    for sample_id in ids:
        current, seen = sample_id, {sample_id}
        while current in parent_of:
            nxt = parent_of[current]
            if nxt in seen:  # a cycle (a broken manifest): stop where it closes
                break
            seen.add(nxt)
            current = nxt
        roots.append(current)
    return roots


class Joiner:
    """Joins rows by shared values and records explicit keys.

    Args:
        size: Number of rows.
    """

    def __init__(self, size: int) -> None:
        self.forest = hamming.UnionFind(size)
        self.explicit: list[str | None] = [None] * size
        self.joined: dict[str, int] = {}

    def by_value(self, values: Iterable[Any], reason: str, explicit: bool) -> None:
        """Join rows with equal non-null ``values``.

        With ``explicit``, each such row also gets the key ``<reason>=<value>``.
        """
        first: dict[str, int] = {}
        joined = 0
        for row, value in enumerate(values):
            if value is None:
                continue
            key = text(value)
            if explicit:
                name = f"{reason}={key}"
                current = self.explicit[row]
                self.explicit[row] = name if current is None else min(current, name)
            anchor = first.setdefault(key, row)
            if anchor != row:
                self.forest.union(anchor, row)
                joined += 1
        self.joined[reason] = self.joined.get(reason, 0) + joined

    def by_pairs(self, a: I64, b: I64, reason: str) -> None:
        """Join rows pairwise."""
        self.forest.union_pairs(a, b)
        self.joined[reason] = self.joined.get(reason, 0) + int(a.size)

    def finish(self, roots: list[str], derived: npt.NDArray[np.bool_]) -> Grouping:
        """Number the groups by first row and give each its key."""
        labels = self.forest.labels()
        _, first_rows, inverse = np.unique(labels, return_index=True, return_inverse=True)
        order = np.argsort(first_rows, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        group = rank[np.asarray(inverse).reshape(-1)].astype(np.int64)
        explicit: list[str | None] = [None] * int(order.size)
        rooted: list[str | None] = [None] * int(order.size)
        for row, g in enumerate(group.tolist()):
            mark = self.explicit[row]
            if mark is not None:
                best = explicit[g]
                explicit[g] = mark if best is None else min(best, mark)
            candidate = roots[row]
            best_root = rooted[g]
            rooted[g] = candidate if best_root is None else min(best_root, candidate)
        keys = [e if e is not None else f"id={r}" for e, r in zip(explicit, rooted, strict=True)]
        return Grouping(group, keys, roots, derived, dict(self.joined))


def near_pairs(result: hamming.SearchResult, rows: I64) -> tuple[I64, I64]:
    """Row pairs joining each hashed row to its near-duplicate cluster's first row."""
    if not rows.size:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    label = result.clusters()
    linked = label != np.arange(label.size)
    return rows[linked], rows[label[linked]]


def parent_pairs(ids: list[str], parents: list[str | None]) -> tuple[I64, I64, list[str | None]]:
    """Pairs of rows joining each derived row to its parent's row.

    Also, per row whose parent is not in the dataset, the missing parent's id (so copies
    of one missing parent can be joined to each other).
    """
    row_of = {sample_id: row for row, sample_id in enumerate(ids)}
    a: list[int] = []
    b: list[int] = []
    missing: list[str | None] = [None] * len(ids)
    for row, parent in enumerate(parents):
        if parent is None:
            continue
        other = row_of.get(parent)
        if other is None:
            missing[row] = parent
        else:
            a.append(row)
            b.append(other)
    return np.array(a, dtype=np.int64), np.array(b, dtype=np.int64), missing


def column_values(table: pa.Table, name: str, stage: str, key: str) -> list[Any]:
    """A manifest column a param names, as Python values (lists and structs included).

    Raises:
        PixelpipeError: When the manifest has no such column, naming the param ``key``.
    """
    if name not in table.column_names:
        raise PixelpipeError(
            Problem(
                f"no column '{name}' in the input manifest of stage '{stage}'"
                + (
                    did_you_mean(name, table.column_names)
                    or f"; columns: {', '.join(table.column_names)}"
                ),
                file="params.yaml",
                key=f"{stage}.{key}",
            )
        )
    return list(table.column(name).to_pylist())
