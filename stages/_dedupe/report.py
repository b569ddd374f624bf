"""The dedupe HTML report: clusters side by side, chains cut, near misses, nearest distances.

One self-contained page (thumbnails are data URIs, no timestamps), so reruns write the
same bytes and the page opens from a CI artifact or a copied folder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pixelpipe.htmlreport import card, escape, histogram_svg, page

Box = tuple[tuple[float, float, float, float], str]
ThumbKey = tuple[str, tuple[Box, ...]]
"""A thumbnail: the image's sha256 and the boxes drawn on it."""

_HIST_WIDTH = 720
_PER_CLUSTER = 24  # thumbnails of removed copies shown per cluster
_CLUSTERS_PER_CHAIN = 12
_LINKS_PER_CHAIN = 20
_HIST_HEIGHT = 200
_STYLE = """<style>
.cluster h3{font-size:14px;margin:18px 0 4px}
.card.conflict div{color:#a00}.pair{display:inline-flex;gap:10px;margin:6px 14px 6px 0;
padding:8px;border:1px solid #eee;border-radius:6px;background:#fafafa}
.dist{font-weight:bold}td.num{text-align:right}
</style>"""


@dataclass(frozen=True)
class Shot:
    """One image shown in the report.

    Attributes:
        image: The image, as the manifest names it.
        sha256: Its content hash.
        caption: Text under the thumbnail.
        boxes: Annotation boxes to draw, with labels.
        css: ``keep``, ``drop`` or empty.
        conflict: Set when its labels disagree with the kept copy's.
    """

    image: str
    sha256: str
    caption: str
    boxes: Sequence[Box] = ()
    css: str = ""
    conflict: str | None = None


@dataclass(frozen=True)
class ClusterView:
    """A cluster: the kept sample first, then the removed ones by distance."""

    kept: Shot
    removed: Sequence[Shot]
    max_distance: int


@dataclass(frozen=True)
class ChainView:
    """Copies of copies cut into several clusters (union-find would have made one).

    Attributes:
        samples: Samples in the chain.
        clusters: Each cluster: its kept image, then its removed copies.
        links: ``(id, cluster, id, cluster, distance, kept distance)``: pairs within the
            threshold across two clusters, and how far apart those clusters' kept images
            are (clusters numbered from 1 as shown).
    """

    samples: int
    clusters: Sequence[ClusterView]
    links: Sequence[tuple[str, int, str, int, int, int]]


@dataclass
class ReportData:
    """Everything the report shows.

    Attributes:
        stage: Stage name.
        summary: Metric name -> value, shown as a table.
        threshold: ``max_distance``.
        bits: Bits per hash.
        algorithm: Hash algorithm name.
        nearest: Nearest-neighbour distance of each sampled distinct image.
        sampled_of: How many distinct hashed images the sample was drawn from.
        clusters: The clusters shown.
        clusters_total: Clusters in all.
        chains: The chains shown.
        chains_total: Chains cut in all.
        near_misses: Pairs just above the threshold: ``(a, b, distance)``.
        refused: Candidate pairs the second check refused, most agreeing keypoints
            first: ``(a, b, distance, matches, colour difference when that refused it)``.
        min_matches: The check's ``min_matches`` (0 when there was no check).
        unhashable: ``(id, error)`` of images that could not be hashed.
        thumbnails: The data URI of every thumbnail shown (:func:`shown_shots`).
    """

    stage: str
    summary: Mapping[str, object]
    threshold: int
    bits: int
    algorithm: str
    nearest: Sequence[int] = ()
    sampled_of: int = 0
    clusters: Sequence[ClusterView] = ()
    clusters_total: int = 0
    chains: Sequence[ChainView] = ()
    chains_total: int = 0
    near_misses: Sequence[tuple[Shot, Shot, int]] = ()
    refused: Sequence[tuple[Shot, Shot, int, int, float | None]] = ()
    min_matches: int = 0
    unhashable: Sequence[tuple[str, str]] = ()
    thumbnails: dict[ThumbKey, str] = field(default_factory=dict)

    def thumb(self, shot: Shot) -> str:
        """A thumbnail data URI (boxes drawn)."""
        return self.thumbnails[thumb_key(shot)]


THUMB_SIZE = 192
"""Longest side of a thumbnail, in pixels."""


def thumb_key(shot: Shot) -> ThumbKey:
    """What a shot's thumbnail depends on: the image's bytes and the boxes drawn."""
    return (shot.sha256, tuple(shot.boxes))


def shown_shots(data: ReportData) -> Iterator[Shot]:
    """Every shot :func:`render` draws, in page order (some more than once)."""
    for cluster in data.clusters:
        yield cluster.kept
        yield from cluster.removed[:_PER_CLUSTER]
    for chain in data.chains:
        for cluster in chain.clusters[:_CLUSTERS_PER_CHAIN]:
            yield cluster.kept
            yield from cluster.removed[:_PER_CLUSTER]
    for a, b, _ in data.near_misses:
        yield a
        yield b
    for a, b, *_ in data.refused:
        yield a
        yield b


def _card(data: ReportData, shot: Shot) -> str:
    html = card(data.thumb(shot), shot.caption, shot.css)
    if shot.conflict:
        html = html.replace('<div class="card">', '<div class="card conflict">', 1)
        html = html.replace("</div></div>", f"<br>&#9888; {escape(shot.conflict)}</div></div>", 1)
    return html


def _summary(data: ReportData) -> str:
    rows = "".join(
        f'<tr><th>{escape(k)}</th><td class="num">{escape(str(v))}</td></tr>'
        for k, v in data.summary.items()
    )
    return f"<table>{rows}</table>"


def _histogram(data: ReportData) -> str:
    if not data.nearest:
        return "<p>No hashed images to measure.</p>"
    cap = min(data.bits // 2, max(2 * data.threshold + 6, 32))
    counts = [0] * (cap + 1)
    for value in data.nearest:
        counts[min(max(value, 0), cap)] += 1
    labels = [str(i) for i in range(cap)] + [f"{cap}+"]
    within = sum(counts[: data.threshold + 1])
    sample = len(data.nearest)
    how = (
        "every distinct image"
        if sample == data.sampled_of
        else f"{sample} distinct images sampled evenly from {data.sampled_of}"
    )
    svg = histogram_svg(
        counts,
        labels,
        f"Distance to the nearest other image ({data.algorithm}, {data.bits} bits)",
        marker=min(data.threshold, cap),
        width=_HIST_WIDTH,
        height=_HIST_HEIGHT,
    )
    # A dashed line right of the threshold's bar (histogram_svg's geometry), labelled.
    x = 30 + (min(data.threshold, cap) + 1) * (_HIST_WIDTH - 40) / len(counts)
    line = (
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="24" y2="{_HIST_HEIGHT}" stroke="#e6194b" '
        f'stroke-width="1.5" stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="34" '
        f'font-size="11" fill="#e6194b">max_distance = {data.threshold}: duplicates to the '
        "left</text></svg>"
    )
    svg = svg[: -len("</svg>")] + line
    return (
        f"{svg}<p class=muted>Over {how} (byte-identical copies counted once). The red bar "
        f"is <code>max_distance</code> = {data.threshold}: images at or left of it have a "
        f"near-duplicate ({within} of {sample}). Duplicates pile up near 0; distinct photos "
        "form a hump far to the right. A good threshold sits in the empty valley between; "
        "look at the near misses below before raising it.</p>"
    )


def _clusters(data: ReportData) -> str:
    if not data.clusters:
        return "<p>No duplicates found.</p>"
    parts = []
    if data.clusters_total > len(data.clusters):
        parts.append(
            f"<p class=muted>Showing {len(data.clusters)} of {data.clusters_total} clusters: "
            "those with the largest distances first (the ones worth checking); every "
            "removal is listed in <code>removed.parquet</code>.</p>"
        )
    for index, cluster in enumerate(data.clusters, 1):
        size = 1 + len(cluster.removed)
        parts.append(
            f'<div class="cluster"><h3>Cluster {index}: {size} images, largest distance '
            f"{cluster.max_distance}</h3>{_cards(data, cluster)}</div>"
        )
    return "".join(parts)


def _cards(data: ReportData, cluster: ClusterView) -> str:
    cards = "".join(_card(data, s) for s in (cluster.kept, *cluster.removed[:_PER_CLUSTER]))
    hidden = len(cluster.removed) - _PER_CLUSTER
    if hidden > 0:
        cards += f"<p class=muted>... and {hidden} more copies (see removed.parquet).</p>"
    return f"<div class=row>{cards}</div>"


def _chains(data: ReportData) -> str:
    if not data.chains:
        return (
            "<p>None: in every group of copies of copies, each image is within "
            f"<code>max_distance</code> = {data.threshold} of the image kept.</p>"
        )
    parts = [
        "<p class=muted>Images linked through copies of copies whose ends are more than "
        f"<code>max_distance</code> = {data.threshold} apart. Each cluster keeps its first "
        "image (by the <code>keep</code> policy) and removes only images within the threshold "
        "of it; the others start clusters of their own. The links are the pairs within the "
        "threshold that cross two clusters.</p>"
    ]
    if data.chains_total > len(data.chains):
        parts.append(f"<p class=muted>Showing {len(data.chains)} of {data.chains_total}.</p>")
    for index, chain in enumerate(data.chains, 1):
        parts.append(
            f'<div class="cluster"><h3>Chain {index}: {chain.samples} images cut into '
            f"{len(chain.clusters)} clusters</h3>"
        )
        for number, cluster in enumerate(chain.clusters[:_CLUSTERS_PER_CHAIN], 1):
            parts.append(f"<p>Cluster {number}:</p>{_cards(data, cluster)}")
        hidden = len(chain.clusters) - _CLUSTERS_PER_CHAIN
        if hidden > 0:
            parts.append(f"<p class=muted>... and {hidden} more clusters.</p>")
        rows = "".join(
            f"<tr><td>{escape(a)}</td><td class=num>{ca}</td><td>{escape(b)}</td>"
            f"<td class=num>{cb}</td><td class=num>{d}</td><td class=num>{k}</td></tr>"
            for a, ca, b, cb, d, k in chain.links[:_LINKS_PER_CHAIN]
        )
        more = len(chain.links) - _LINKS_PER_CHAIN
        tail = f"<p class=muted>... and {more} more links.</p>" if more > 0 else ""
        parts.append(
            "<table><tr><th>image</th><th>cluster</th><th>linked to</th><th>cluster</th>"
            "<th>distance</th><th>kept images apart</th></tr>"
            f"{rows}</table>{tail}</div>"
        )
    return "".join(parts)


def _near_misses(data: ReportData) -> str:
    if not data.near_misses:
        return "<p>No sampled image has its nearest neighbour just above the threshold.</p>"
    pairs = "".join(
        f'<div class="pair">{_card(data, a)}{_card(data, b)}<div class="dist">d = {d}</div></div>'
        for a, b, d in data.near_misses
    )
    return (
        "<p class=muted>Sampled images whose nearest neighbour is a little above "
        f"<code>max_distance</code> = {data.threshold}. They are kept. If these are copies, "
        "raise the threshold; if they are different pictures, it is right.</p>" + pairs
    )


def _colours(difference: float | None) -> str:
    return "" if difference is None else f" · colours differ by {difference:.0f}"


def _refused(data: ReportData) -> str:
    if not data.min_matches:
        return ""
    head = "<h2>Candidates the check refused</h2>"
    if not data.refused:
        return head + "<p>The check refused no candidate pair.</p>"
    pairs = "".join(
        f'<div class="pair">{_card(data, a)}{_card(data, b)}'
        f'<div class="dist">d = {d} · {m} matches{_colours(c)}</div></div>'
        for a, b, d, m, c in data.refused
    )
    return (
        head + "<p class=muted>Pairs within <code>max_distance</code> whose keypoints "
        f"did not agree: fewer than <code>min_matches</code> = {data.min_matches} fit one "
        "transform, or their colours differ (one print in two colours). They are kept. "
        "Different pictures that look alike belong here; if copies do, lower "
        "<code>min_matches</code> or raise <code>max_colour_difference</code>.</p>" + pairs
    )


def _unhashable(data: ReportData) -> str:
    if not data.unhashable:
        return ""
    rows = "".join(
        f"<tr><td>{escape(i)}</td><td>{escape(e)}</td></tr>" for i, e in data.unhashable[:200]
    )
    more = len(data.unhashable) - 200
    tail = f"<p class=muted>... and {more} more.</p>" if more > 0 else ""
    return (
        f"<h2>Not hashed ({len(data.unhashable)})</h2><p class=muted>These images could not "
        "be decoded; they are kept, compared by their bytes only (the validate stage "
        "quarantines undecodable files).</p>"
        f"<table><tr><th>id</th><th>error</th></tr>{rows}</table>{tail}"
    )


def render(data: ReportData) -> str:
    """The whole page."""
    body = (
        _STYLE + "<p>Green outline: kept; red: removed as a duplicate of the green one. "
        "<i>d</i> is the Hamming distance between perceptual hashes (0 and "
        "&ldquo;identical file&rdquo; for byte-identical copies).</p>"
        + _summary(data)
        + "<h2>Nearest distances</h2>"
        + _histogram(data)
        + f"<h2>Duplicate clusters ({data.clusters_total})</h2>"
        + _clusters(data)
        + f"<h2>Chains cut into several clusters ({data.chains_total})</h2>"
        + _chains(data)
        + "<h2>Near misses</h2>"
        + _near_misses(data)
        + _refused(data)
        + _unhashable(data)
    )
    return page(f"{data.stage}: duplicates", body)
