"""The split report, as JSON (``report.json``) and as one HTML page (``report.html``).

It gives achieved against requested ratios, per split and per class, the groups, and the
leak check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pixelpipe.htmlreport import escape, page
from stages._split.leaks import LeakReport

_DIGITS = 4


@dataclass(frozen=True)
class ClassRow:
    """One class's counts per split (original images only).

    Attributes:
        id: Category id.
        name: Category name.
        images: Images holding the class, per split.
        boxes: Boxes of the class, per split.
    """

    id: int
    name: str
    images: list[int]
    boxes: list[int]

    @property
    def total(self) -> int:
        """Images holding the class."""
        return sum(self.images)


@dataclass
class SplitReport:
    """Everything the report shows."""

    stage: str
    method: str
    seed: int
    names: list[str]
    requested: list[float]
    images: list[int]
    copies: list[int]
    classes: list[ClassRow]
    groups: int
    groups_multi: int
    largest_group: int
    largest_key: str
    joined: dict[str, int]
    pattern_unmatched: int
    hash_column: str | None
    unhashed: int
    near_distance: int | None
    leak: LeakReport
    existing: str
    kept_existing: int
    moved: list[tuple[str, str, str]] = field(default_factory=list)
    removed_copies: int = 0

    def achieved(self, counts: list[int]) -> list[float]:
        """Shares of ``counts``."""
        total = sum(counts)
        return [c / total if total else 0.0 for c in counts]

    def max_deviation(self) -> float:
        """Largest ``|achieved - requested|`` share over classes and splits."""
        worst = 0.0
        for row in self.classes:
            if row.total:
                for got, want in zip(self.achieved(row.images), self.requested, strict=True):
                    worst = max(worst, abs(got - want))
        return worst

    def max_count_error(self) -> float:
        """Largest ``|images - requested share * class images|`` over classes and splits."""
        worst = 0.0
        for row in self.classes:
            for got, want in zip(row.images, self.requested, strict=True):
                worst = max(worst, abs(got - want * row.total))
        return worst

    def to_json(self) -> dict[str, Any]:
        """The ``report.json`` content (rounded shares, no timestamps)."""

        def shares(values: list[float]) -> dict[str, float]:
            return {n: round(v, _DIGITS) for n, v in zip(self.names, values, strict=True)}

        leak = self.leak
        return {
            "stage": self.stage,
            "method": self.method,
            "seed": self.seed,
            "splits": {
                name: {
                    "requested": round(self.requested[i], _DIGITS),
                    "achieved": round(self.achieved(self.images)[i], _DIGITS),
                    "images": self.images[i],
                    "copies": self.copies[i],
                }
                for i, name in enumerate(self.names)
            },
            "classes": [
                {
                    "id": row.id,
                    "name": row.name,
                    "images": dict(zip(self.names, row.images, strict=True)),
                    "boxes": dict(zip(self.names, row.boxes, strict=True)),
                    "achieved": shares(self.achieved(row.images)),
                    "deviation": shares(
                        [
                            g - w
                            for g, w in zip(self.achieved(row.images), self.requested, strict=True)
                        ]
                        if row.total
                        else [0.0] * len(self.names)
                    ),
                }
                for row in self.classes
            ],
            "max_class_deviation": round(self.max_deviation(), _DIGITS),
            "max_class_count_error": round(self.max_count_error(), _DIGITS),
            "groups": {
                "count": self.groups,
                "with_several_images": self.groups_multi,
                "largest": self.largest_group,
                "largest_key": self.largest_key,
                "rows_joined_by": dict(sorted(self.joined.items())),
                "pattern_unmatched": self.pattern_unmatched,
                "hash_column": self.hash_column,
                "unhashed": self.unhashed,
                "near_distance": self.near_distance,
            },
            "existing": {
                "policy": self.existing,
                "kept": self.kept_existing,
                "moved": len(self.moved),
                "moved_examples": [{"id": i, "from": f, "to": t} for i, f, t in self.moved[:20]],
            },
            "copies_removed": self.removed_copies,
            "leak_check": {
                "result": leak.summary(),
                "groups_checked": dict(sorted(leak.groups_checked.items())),
                "groups_crossing": dict(sorted(leak.groups_crossing.items())),
                "group_examples": leak.group_examples,
                "distance": leak.distance,
                "hashed_images": leak.hashed,
                "pairs_within_distance": leak.pairs_within,
                "pairs_crossing": leak.pairs_crossing,
                "pair_examples": leak.pair_examples,
            },
        }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def render(report: SplitReport) -> str:
    """The HTML page."""
    leak = report.leak
    head = "".join(f"<th>{escape(n)}</th>" for n in report.names)
    achieved = report.achieved(report.images)
    summary = (
        f"<table><tr><th></th>{head}</tr>"
        + "<tr><th>requested</th>"
        + "".join(f"<td>{_pct(v)}</td>" for v in report.requested)
        + "</tr><tr><th>achieved</th>"
        + "".join(f"<td>{_pct(v)}</td>" for v in achieved)
        + "</tr><tr><th>images</th>"
        + "".join(f"<td>{v}</td>" for v in report.images)
        + "</tr><tr><th>augmented copies</th>"
        + "".join(f"<td>{v}</td>" for v in report.copies)
        + "</tr></table>"
    )
    class_rows = []
    for row in report.classes:
        shares = report.achieved(row.images)
        cells = "".join(
            f"<td>{n} img · {b} box · {_pct(s) if row.total else '-'}"
            f"{'' if not row.total else f' ({100 * (s - w):+.1f})'}</td>"
            for n, b, s, w in zip(row.images, row.boxes, shares, report.requested, strict=True)
        )
        class_rows.append(
            f"<tr><td>{row.id}</td><td>{escape(row.name)}</td><td>{row.total}</td>{cells}</tr>"
        )
    classes = (
        f"<table><tr><th>id</th><th>class</th><th>images</th>{head}</tr>"
        + "".join(class_rows)
        + "</table>"
        + f"<p class='muted'>Per split: images holding the class, its boxes, the share of the "
        f"class's images and the difference from the requested share in points. Largest "
        f"difference: {100 * report.max_deviation():.1f} points, "
        f"{report.max_count_error():.1f} images.</p>"
    )
    verdict = "clean" if leak.clean else f"LEAK: {leak.summary()}"
    checked = ", ".join(
        f"{escape(k)}: {v} checked, {leak.groups_crossing.get(k, 0)} crossing"
        for k, v in sorted(leak.groups_checked.items())
    )
    near = (
        f"near duplicates within {leak.distance} bits: {leak.pairs_within} pairs among "
        f"{leak.hashed} hashed images, {leak.pairs_crossing} across splits"
        if leak.distance is not None
        else "near duplicates: not checked"
    )
    examples = "".join(
        f"<li>{escape(str(e))}</li>" for e in leak.group_examples + leak.pair_examples
    )
    joined = ", ".join(f"{escape(k)}: {v}" for k, v in sorted(report.joined.items()))
    body = (
        f"<p>method <b>{escape(report.method)}</b>, seed {report.seed}</p>"
        f"<h2>Splits</h2>{summary}"
        f"<h2>Leak check: {escape(verdict)}</h2><p>groups ({checked})</p><p>{escape(near)}</p>"
        + (f"<ul>{examples}</ul>" if examples else "")
        + f"<h2>Groups</h2><p>{report.groups} groups, {report.groups_multi} with several "
        f"images; the largest has {report.largest_group} images "
        f"({escape(report.largest_key)}). Rows joined by: {joined or 'nothing'}. Hashes: "
        f"{escape(report.hash_column or 'none')} ({report.unhashed} images without one).</p>"
        f"<p>Existing splits: {escape(report.existing)}; {report.kept_existing} kept, "
        f"{len(report.moved)} moved to their group's split. Augmented copies removed "
        f"(parent outside the augmented splits): {report.removed_copies}.</p>"
        f"<h2>Classes</h2>{classes}"
    )
    return page(f"{report.stage}: split report", body)
