"""The drift HTML report: every verdict, the class shares, overlaid histograms of each number.

One self-contained page (inline SVG, no script, no timestamp), so a rerun writes the same
bytes and the page opens from a CI artifact. The reference's bars are blue and the current
sample's orange, drawn over each other half transparent: where they differ shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pixelpipe.htmlreport import escape, page
from stages._drift.histograms import Histogram

REFERENCE_COLOUR = "#4363d8"
CURRENT_COLOUR = "#f58231"
_WIDTH = 640
_HEIGHT = 170
_STYLE = """<style>
.drift{color:#a00;font-weight:bold}.same{color:#3a3}td.num{text-align:right}
.charts{display:flex;flex-wrap:wrap;gap:18px}.chart{border:1px solid #eee;padding:6px}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;opacity:.6}
</style>"""
_LEGEND = (
    f'<p class="legend"><span style="background:{REFERENCE_COLOUR}"></span>reference'
    f'<span style="background:{CURRENT_COLOUR}"></span>current</p>'
)


def overlay_svg(histogram: Histogram, title: str) -> str:
    """An inline SVG of two histograms on common bins, drawn over each other.

    Args:
        histogram: The two samples' shares per bin.
        title: Caption (shown escaped).
    """
    bins = len(histogram.labels)
    top = max([*histogram.reference, *histogram.current, 0.0])
    bar = (_WIDTH - 40) / max(bins, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT + 40}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    every = max(1, math.ceil(bins / ((_WIDTH - 40) / 90)))  # a label per 90 px
    for index, label in enumerate(histogram.labels):
        x = 30 + index * bar
        for shares, colour, name in (
            (histogram.reference, REFERENCE_COLOUR, "reference"),
            (histogram.current, CURRENT_COLOUR, "current"),
        ):
            h = 0.0 if top == 0 else (_HEIGHT - 30) * shares[index] / top
            parts.append(
                f'<rect x="{x:.1f}" y="{_HEIGHT - h:.1f}" width="{max(bar - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}" fill-opacity="0.55"><title>'
                f"{escape(label)}: {name} {shares[index]:.1%}</title></rect>"
            )
        if index % every == 0:
            text = label.split(": ", 1)[-1]
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{_HEIGHT + 14}" font-size="10" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
    parts.append(f'<text x="4" y="40" font-size="10">{top:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def _verdict_rows(result: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    found = [("classes", result["classes"])]
    found += [(f"boxes.{k}", v) for k, v in result["boxes"].items()]
    found += [(f"properties.{k}", v) for k, v in result["properties"].items()]
    return found


def _verdicts(result: Mapping[str, Any]) -> str:
    rows = []
    for name, verdict in _verdict_rows(result):
        mark = (
            '<td class="drift">drift</td>' if verdict["drift"] else '<td class="same">no drift</td>'
        )
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(verdict['test'])}</td>"
            f'<td class="num">{_number(verdict["statistic"])}</td>'
            f'<td class="num">{_number(verdict["p_value"])}</td>'
            f'<td class="num">{_number(verdict["effect"])}</td>'
            f'<td class="num">{verdict["reference"]}</td>'
            f'<td class="num">{verdict["current"]}</td>{mark}</tr>'
        )
    return (
        "<table><tr><th>what</th><th>decided by</th><th>statistic</th><th>p-value</th>"
        "<th>effect</th><th>reference</th><th>current</th><th>verdict</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _classes(shares: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for name in sorted(shares):
        share = shares[name]
        change = share.get("change")
        rows.append(
            f"<tr><td>{escape(name)}</td>"
            f'<td class="num">{_percent(share.get("share_reference"))}</td>'
            f'<td class="num">{_percent(share.get("share_current"))}</td>'
            f'<td class="num">{"n/a" if change is None else f"{change * 100:+.1f} pt"}</td></tr>'
        )
    return (
        "<table><tr><th>class</th><th>reference</th><th>current</th><th>change</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render(
    title: str,
    result: Mapping[str, Any],
    histograms: Mapping[str, Histogram],
    thresholds: Mapping[str, Any],
    notes: Sequence[str] = (),
) -> str:
    """The report page.

    Args:
        title: The page's title.
        result: What ``compare()`` returned.
        histograms: The histogram of each number, by its name in ``result`` (``classes``
            for the class shares, ``boxes.size``, ``properties.brightness``...), in order.
        thresholds: The thresholds used, shown as given.
        notes: Lines to show under the verdicts (images that could not be read...).

    Returns:
        The HTML document.
    """
    drifted = list(result["drift"])
    headline = (
        f'<p class="drift">Drift in {len(drifted)} of {len(_verdict_rows(result))} tests: '
        f"{escape(', '.join(drifted))}</p>"
        if drifted
        else '<p class="same">No drift found.</p>'
    )
    rule = ", ".join(f"{escape(str(k))} {escape(str(v))}" for k, v in thresholds.items())
    body = [
        _STYLE,
        headline,
        f'<p class="muted">Thresholds: {rule}. Up to <code>large</code> values on both sides '
        "a test's p-value decides (Kolmogorov-Smirnov, chi-squared); above, the effect size "
        "(Wasserstein distance / reference std, Jensen-Shannon distance).</p>",
        "<h2>Verdicts</h2>",
        _verdicts(result),
    ]
    body += [f'<p class="muted">{escape(note)}</p>' for note in notes]
    body += ["<h2>Classes</h2>", _LEGEND]
    if "classes" in histograms:
        body.append(f'<div class="chart">{overlay_svg(histograms["classes"], "class share")}</div>')
    body.append(_classes(result["classes"]["shares"]))
    for heading, prefix in (("Boxes", "boxes."), ("Image properties", "properties.")):
        charts = [
            f'<div class="chart">{overlay_svg(h, name)}</div>'
            for name, h in histograms.items()
            if name.startswith(prefix) and h.labels
        ]
        if charts:
            body += [f"<h2>{heading}</h2>", _LEGEND, f'<div class="charts">{"".join(charts)}</div>']
    return page(title, "\n".join(body))
