"""The HTML report: failures grouped by rule, with thumbnails and the offending boxes drawn.

One self-contained page (thumbnails are data URIs) with no timestamps, so a rerun writes
the same bytes.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pixelpipe.htmlreport import card, escape, histogram_svg, page
from stages._validate.classes import ClassFinding
from stages._validate.findings import Finding
from stages._validate.rules import GUARDS, ORDER, RULES, summary
from stages._validate.ruleset import RuleSet

_SEVERITY_CLASS = {"error": "drop", "fix": "keep", "warn": ""}
_STYLE = """<style>
.sev{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;color:#fff}
.sev-error{background:#c0392b}.sev-warn{background:#d68910}.sev-fix{background:#2e86c1}
.sev-pass{background:#27ae60}details{margin:6px 0}summary{cursor:pointer;color:#444}
td.num{text-align:right}.fail{background:#fdecea}
</style>"""
_BLUR_EDGES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def placeholder(text: str) -> str:
    """An SVG data URI standing in for an image that is not drawn (``text`` says why)."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="192" height="128">'
        '<rect width="192" height="128" fill="#eee"/>'
        f'<text x="96" y="68" font-size="12" text-anchor="middle" fill="#a00">{escape(text)}'
        "</text></svg>"
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


@dataclass
class ReportData:
    """Everything the report shows.

    Attributes:
        stage: The stage name.
        ruleset: The rule set applied.
        checked: Samples read.
        kept: Samples kept.
        removed: Samples quarantined.
        warned: Kept samples with at least one warning.
        fixed: Kept samples with at least one fix.
        counts: Findings per rule and severity.
        groups: Per rule, the samples it reported with their findings of that rule, by id.
        thumbs: Thumbnail data URI per ``(rule, sample id)`` shown.
        classes: Instances per class name in the kept samples.
        unknown_classes: Instances per category id not in the class map.
        class_findings: The dataset rules that failed.
        stats: Measures of the decoded images (``blur``, ``mean``, ``std``), one per image.
        examples: Cards shown per rule; the rest are listed.
    """

    stage: str
    ruleset: RuleSet
    checked: int
    kept: int
    removed: int
    warned: int
    fixed: int
    counts: Mapping[str, Mapping[str, int]]
    groups: Mapping[str, Sequence[tuple[str, Sequence[Finding]]]]
    thumbs: Mapping[tuple[str, str], str]
    classes: Mapping[str, int]
    unknown_classes: Mapping[int, int]
    class_findings: Sequence[ClassFinding]
    stats: Mapping[str, Sequence[float]] = field(default_factory=dict)
    examples: int = 24


def _prose(text: str) -> str:
    """Escape ``text`` and show its ````code```` spans as code."""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", escape(text))


def _badge(severity: str) -> str:
    return f'<span class="sev sev-{severity}">{escape(severity)}</span>'


def _summary(data: ReportData) -> str:
    return (
        f"<p>Rule set <code>{escape(data.ruleset.file)}</code>: checked "
        f"<b>{data.checked}</b> samples; kept <b>{data.kept}</b> ({data.warned} with warnings, "
        f"{data.fixed} fixed), quarantined <b>{data.removed}</b> "
        f"(listed in <code>removed.parquet</code>).</p>"
    )


def _rules_table(data: ReportData) -> str:
    rows = [
        "<table><tr><th>rule</th><th>scope</th><th>severity</th><th>errors</th>"
        "<th>fixed</th><th>warnings</th><th>checks that</th></tr>"
    ]
    names = [g for g in GUARDS if data.counts.get(g)] + list(data.ruleset.rules)
    for name in names:
        counts = data.counts.get(name, {})
        rule = data.ruleset.rules.get(name)
        scope = rule.SCOPE if rule else "guard"
        severity = rule.severity if rule else "error"
        text = (
            summary(RULES[name])
            if name in RULES
            else "the image was checked within the time limit without killing its worker"
        )
        failed = any(counts.values())
        link = f'<a href="#rule-{name}">{escape(name)}</a>' if name in data.groups else name
        rows.append(
            f"<tr{' class=fail' if failed else ''}><td>{link}</td><td>{scope}</td>"
            f"<td>{_badge(severity)}</td>"
            + "".join(
                f'<td class="num">{counts.get(s, 0) or ""}</td>' for s in ("error", "fix", "warn")
            )
            + f"<td>{_prose(text)}</td></tr>"
        )
    rows.append("</table>")
    return "<h2>Rules</h2>" + "".join(rows)


def _classes(data: ReportData) -> str:
    parts = ["<h2>Classes</h2>"]
    for found in data.class_findings:
        parts.append(
            f"<p>{_badge(found.severity)} <b>{escape(found.rule)}</b>: {escape(found.message)}</p>"
        )
    checked = [r for r in data.ruleset.rules.values() if r.SCOPE == "dataset"]
    failed = {f.rule for f in data.class_findings}
    for rule in checked:
        if rule.ID not in failed:
            parts.append(f"<p>{_badge('pass')} <b>{escape(rule.ID)}</b></p>")
    if data.classes:
        names = list(data.classes)
        counts = [data.classes[n] for n in names]
        smallest = min(range(len(counts)), key=lambda i: (counts[i], names[i]))
        parts.append(
            histogram_svg(
                counts,
                names,
                "instances per class",
                marker=smallest,
                width=max(320, min(1300, 60 + 72 * len(names))),
            )
        )
    if data.unknown_classes:
        listed = ", ".join(f"#{k}: {v}" for k, v in sorted(data.unknown_classes.items()))
        parts.append(f"<p>Category ids not in the class map: {escape(listed)}</p>")
    return "".join(parts)


def _bins(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    counts = [0] * len(edges)
    for value in values:
        index = max(i for i, e in enumerate(edges) if value >= e) if value >= edges[0] else 0
        counts[index] += 1
    return counts


def _marker(edges: Sequence[float], threshold: float | None) -> int | None:
    if threshold is None:
        return None
    return max((i for i, e in enumerate(edges) if threshold >= e), default=0)


def _measures(data: ReportData) -> str:
    if not any(data.stats.values()):
        return ""
    parts = ["<h2>Image measures</h2><p class=muted>Decoded images only.</p>"]
    rules = data.ruleset.rules
    plots = (
        ("blur", _BLUR_EDGES, "Laplacian variance (sharpness)", "blur", "min_variance"),
        ("mean", tuple(range(0, 256, 16)), "mean gray level", "exposure", "min_mean"),
        ("std", tuple(range(0, 128, 8)), "gray-level spread (std)", "blank", "min_std"),
    )
    for key, edges, title, rule_id, param in plots:
        values = data.stats.get(key) or []
        if not values:
            continue
        threshold = getattr(rules.get(rule_id), param, None)
        if threshold is not None:
            title += f" ({rule_id} under {threshold:g}: red bar)"
        labels = [f"{e:g}+" for e in edges]
        parts.append(
            histogram_svg(_bins(values, edges), labels, title, marker=_marker(edges, threshold))
        )
    return "".join(parts)


def _group(data: ReportData, rule: str, entries: Sequence[tuple[str, Sequence[Finding]]]) -> str:
    counts = data.counts.get(rule, {})
    said = ", ".join(f"{n} {s}" for s in ("error", "fix", "warn") if (n := counts.get(s, 0)))
    text = summary(RULES[rule]) if rule in RULES else ""
    parts = [
        f'<h2 id="rule-{escape(rule)}">{escape(rule)}: {len(entries)} sample(s)</h2>',
        f"<p>{_prose(text)} <span class=muted>({escape(said)})</span></p><div class=row>",
    ]
    for sample_id, findings in entries[: data.examples]:
        severity = _worst(findings)
        message = "; ".join(f.message for f in findings)
        uri = data.thumbs.get((rule, sample_id)) or placeholder("no thumbnail")
        parts.append(card(uri, f"{sample_id}: [{severity}] {message}", _SEVERITY_CLASS[severity]))
    parts.append("</div>")
    rest = entries[data.examples :]
    if rest:
        listed = rest[:500]
        parts.append(
            f"<details><summary>{len(rest)} more sample(s)</summary><table>"
            + "".join(
                f"<tr><td>{escape(sid)}</td><td>{escape(_worst(fs))}</td>"
                f"<td>{escape('; '.join(f.message for f in fs))}</td></tr>"
                for sid, fs in listed
            )
            + "</table>"
            + (
                f"<p class=muted>and {len(rest) - len(listed)} more in findings.parquet</p>"
                if len(rest) > len(listed)
                else ""
            )
            + "</details>"
        )
    return "".join(parts)


def _worst(findings: Sequence[Finding]) -> str:
    severities = {f.severity for f in findings}
    return next(s for s in ("error", "fix", "warn") if s in severities)


def render(data: ReportData) -> str:
    """The report page."""
    order = sorted(data.groups, key=lambda r: (_rank(data, r), ORDER.get(r, math.inf)))
    body = [
        _STYLE,
        _summary(data),
        _rules_table(data),
        _classes(data),
        _measures(data),
    ]
    body += [_group(data, rule, data.groups[rule]) for rule in order]
    return page(f"validate: {data.stage}", "\n".join(body))


def _rank(data: ReportData, rule: str) -> int:
    """Errors first, then fixes, then warnings."""
    counts = data.counts.get(rule, {})
    return 0 if counts.get("error") else 1 if counts.get("fix") else 2
