"""The taxonomy rules of ``validate``: the class map's names against a taxonomy file.

With a taxonomy (``configs/taxonomy/*.yaml``, read by :mod:`pixelpipe.taxonomy`), each class
of the input class map is a class of the taxonomy, a synonym of one, or unknown to it.
:func:`plan_classes` decides once, per class map, what the rules ``unknown_class``,
``renamed_class`` and ``not_leaf`` say of each category id, and builds the output class
map: every known class gets its parent from the taxonomy (COCO's ``supercategory``), and
under ``renamed_class: fix`` a synonym is renamed to its class, the classes that name one
class merging into one. :meth:`ClassPlan.check` applies the plan to one sample's
annotations (re-pointing merged ones) before the label rules run, so the label rules see
one class where there were two. :func:`level_counts` rolls the instances up the tree for
the metrics (``taxonomy.level_1.vehicle``...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pixelpipe import Annotation, Category, did_you_mean
from pixelpipe.taxonomy import Taxonomy
from stages._validate.findings import Finding
from stages._validate.rules import NotLeaf, RenamedClass, Rule, UnknownClass


@dataclass(frozen=True)
class ClassPlan:
    """What the taxonomy rules decided for each class of the class map.

    Attributes:
        taxonomy: The taxonomy.
        categories: The output class map: input order, parents from the taxonomy,
            synonyms renamed and merged under ``renamed_class: fix``.
        labels: The input class map, id -> name (what findings call an annotation's class).
        verdicts: For each input category id a rule fires on: the rule and a sentence.
        target: For each input category id, its id in the output class map (differs
            only for a class merged into another).
    """

    taxonomy: Taxonomy
    categories: list[Category]
    labels: Mapping[int, str]
    verdicts: Mapping[int, list[tuple[Rule, str]]]
    target: Mapping[int, int]

    def check(self, annotations: list[Annotation]) -> tuple[list[Annotation], list[Finding]]:
        """Apply the plan to one sample's annotations.

        Args:
            annotations: The sample's annotations, in manifest order.

        Returns:
            The annotations (re-pointed to the class they merge into), and one finding
            per rule and annotation it fires on.
        """
        findings: list[Finding] = []
        out: list[Annotation] = []
        for index, ann in enumerate(annotations):
            label = self.labels.get(ann.category_id, f"#{ann.category_id}")
            for rule, message in self.verdicts.get(ann.category_id, []):
                findings.append(
                    Finding(
                        rule.ID,
                        rule.severity,
                        f"annotation {index} ({label}): {message}",
                        (ann.bbox,),
                        (label,),
                        index,
                    )
                )
            target = self.target.get(ann.category_id, ann.category_id)
            out.append(ann if target == ann.category_id else replace(ann, category_id=target))
        return out, findings


def plan_classes(
    taxonomy: Taxonomy, categories: Sequence[Category], rules: Mapping[str, Rule]
) -> ClassPlan:
    """Decide, for each class of the class map, what the taxonomy rules say and do.

    Args:
        taxonomy: The taxonomy.
        categories: The input class map.
        rules: The rule set's rules by id (only the taxonomy rules are read).

    Returns:
        The plan: the output class map, the verdicts and the merges.
    """
    unknown = rules.get(UnknownClass.ID)
    renamed = rules.get(RenamedClass.ID)
    not_leaf = rules.get(NotLeaf.ID)
    fixing = renamed is not None and renamed.severity == "fix"
    # Under the fix, the classes naming one class merge into the class itself (its
    # lowest id when named twice), else into the lowest id among them.
    keeper: dict[str, Category] = {}
    for category in sorted(categories, key=lambda c: (c.name != taxonomy.canonical(c.name), c.id)):
        canonical = taxonomy.canonical(category.name)
        if fixing and canonical is not None:
            keeper.setdefault(canonical, category)
    verdicts: dict[int, list[tuple[Rule, str]]] = {}
    target: dict[int, int] = {}
    output: list[Category] = []
    where = f" {taxonomy.source}" if taxonomy.source else ""
    for category in categories:
        name = category.name
        canonical = taxonomy.canonical(name)
        found: list[tuple[Rule, str]] = []
        if canonical is None:
            output.append(category)
            if unknown is not None:
                hint = did_you_mean(name, taxonomy.names())
                found.append((unknown, f"class '{name}' is not in the taxonomy{where}{hint}"))
        else:
            parent = taxonomy.classes[canonical].parent
            kept = keeper.get(canonical, category)
            if name == canonical or not fixing:
                output.append(Category(category.id, name, parent))
            elif kept.id == category.id:
                output.append(Category(category.id, canonical, parent))
            if renamed is not None and name != canonical:
                message = f"class '{name}' is a synonym of '{canonical}' in the taxonomy{where}"
                if fixing and kept.id != category.id:
                    target[category.id] = kept.id
                    message += f"; merged into '{canonical}' (id {kept.id})"
                elif fixing:
                    message += f"; renamed to '{canonical}'"
                found.append((renamed, message))
            below = taxonomy.children(canonical)
            if not_leaf is not None and taxonomy.leaf_only and below:
                subclasses = ", ".join(f"'{c}'" for c in below[:10])
                more = f" and {len(below) - 10} more" if len(below) > 10 else ""
                found.append(
                    (
                        not_leaf,
                        f"class '{canonical}' has subclasses ({subclasses}{more}); the "
                        "taxonomy asks for the most specific class (leaf_only)",
                    )
                )
        if found:
            verdicts[category.id] = found
    labels = {c.id: c.name for c in categories}
    return ClassPlan(taxonomy, output, labels, verdicts, target)


def level_counts(taxonomy: Taxonomy, instances: Mapping[str, int]) -> dict[str, Any]:
    """Instances rolled up the taxonomy, one mapping per depth, for the metrics.

    ``level_N`` counts each instance under its class's ancestor at depth N (the class
    itself when it is shallower, as flattening to depth N would label it). Its keys are
    the classes at depth N, the leaves above it and any shallower class labelled
    directly, in taxonomy order, zeros included (so versions compare key by key).
    ``unknown`` counts the instances of classes the taxonomy does not know.

    Args:
        taxonomy: The taxonomy.
        instances: Instances per class name of the class map.

    Returns:
        ``{"level_1": {name: n}, ..., "unknown": n}``.
    """
    known = {n: k for n, k in instances.items() if taxonomy.canonical(n) is not None}
    out: dict[str, Any] = {}
    for depth in range(1, taxonomy.levels() + 1):
        counts: Counter[str] = Counter()
        for name, count in known.items():
            counts[taxonomy.at_depth(name, depth)] += count
        out[f"level_{depth}"] = {
            name: counts[name]
            for name in taxonomy.classes
            if taxonomy.depth(name) == depth
            or (taxonomy.depth(name) < depth and taxonomy.is_leaf(name))
            or counts[name]
        }
    out["unknown"] = sum(k for n, k in instances.items() if n not in known)
    return out
