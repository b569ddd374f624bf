"""Dataset rules: instances per class, imbalance, classes that never occur."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pixelpipe import Category
from stages._validate.rules import Imbalance, MinInstances, Rule, UnusedClasses


@dataclass(frozen=True)
class ClassFinding:
    """A dataset rule that failed.

    Attributes:
        rule: The rule id.
        severity: ``error`` (the stage fails) or ``warn``.
        message: A sentence for people.
        classes: The class names concerned.
    """

    rule: str
    severity: str
    message: str
    classes: tuple[str, ...]


def _list(names: Sequence[str], counts: Mapping[str, int]) -> str:
    shown = [f"'{n}' ({counts[n]})" for n in names[:20]]
    more = f" and {len(names) - 20} more" if len(names) > 20 else ""
    return ", ".join(shown) + more


def check_classes(
    rules: Mapping[str, Rule], categories: Sequence[Category], instances: Mapping[int, int]
) -> list[ClassFinding]:
    """Apply the dataset rules to the instance count of every class in the class map.

    Args:
        rules: The rule set's rules by id (rules of other scopes are ignored).
        categories: The class map.
        instances: Annotations per category id in the kept samples.

    Returns:
        One finding per failed rule, in catalogue order.
    """
    counts = {c.name: instances.get(c.id, 0) for c in sorted(categories, key=lambda c: c.id)}
    found: list[ClassFinding] = []
    minimum = rules.get(MinInstances.ID)
    if isinstance(minimum, MinInstances):
        floor = 1 if UnusedClasses.ID in rules else 0
        few = [n for n, k in counts.items() if floor <= k < minimum.min_count]
        if few:
            found.append(
                ClassFinding(
                    minimum.ID,
                    minimum.severity,
                    f"{len(few)} class(es) have fewer than {minimum.min_count} instances: "
                    + _list(few, counts),
                    tuple(few),
                )
            )
    imbalance = rules.get(Imbalance.ID)
    occurring = {n: k for n, k in counts.items() if k > 0}
    if isinstance(imbalance, Imbalance) and len(occurring) >= 2:
        largest = max(occurring, key=lambda n: (occurring[n], n))
        smallest = min(occurring, key=lambda n: (occurring[n], n))
        ratio = occurring[largest] / occurring[smallest]
        if ratio > imbalance.max_ratio:
            found.append(
                ClassFinding(
                    imbalance.ID,
                    imbalance.severity,
                    f"'{largest}' has {occurring[largest]} instances, {ratio:.1f} times the "
                    f"{occurring[smallest]} of '{smallest}' (max_ratio {imbalance.max_ratio:g})",
                    (largest, smallest),
                )
            )
    unused = rules.get(UnusedClasses.ID)
    if isinstance(unused, UnusedClasses):
        never = [n for n, k in counts.items() if k == 0]
        if never:
            found.append(
                ClassFinding(
                    unused.ID,
                    unused.severity,
                    f"{len(never)} class(es) of the class map never occur: "
                    + ", ".join(f"'{n}'" for n in never[:20])
                    + (f" and {len(never) - 20} more" if len(never) > 20 else ""),
                    tuple(never),
                )
            )
    return found
