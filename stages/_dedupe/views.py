"""What the dedupe report shows of the decisions: chains cut into clusters, boxes, labels."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from stages._dedupe.group import Grouping
from stages._dedupe.report import Box, ChainView, ClusterView, Shot


def labels(count: int) -> str:
    """``1 label``, ``3 labels``."""
    return "1 label" if count == 1 else f"{count} labels"


def boxes(annotations: list[dict[str, Any]], names: dict[int, str]) -> list[Box]:
    """Annotation boxes with their category names, to draw on a thumbnail."""
    return [
        (tuple(a["bbox"]), names.get(a["category_id"], str(a["category_id"]))) for a in annotations
    ]


def chain_views(grouping: Grouping, table: pa.Table, limit: int) -> list[ChainView]:
    """The first ``limit`` chains cut into clusters, as the report shows them."""
    ids = table.column("id")
    images = table.column("image")
    shas = table.column("sha256")

    def shot(row: int, caption: str, css: str) -> Shot:
        image, sha = str(images[row].as_py()), str(shas[row].as_py())
        return Shot(image, sha, caption, css=css)

    shown = grouping.chains[:limit]
    removed: dict[int, list[tuple[int, str, Shot]]] = {k: [] for c in shown for k in c.kept}
    for row in grouping.members:
        kept = int(grouping.kept[row])
        if kept in removed and row != kept:
            dist, name = int(grouping.distance[row]), str(ids[row].as_py())
            removed[kept].append((dist, name, shot(row, f"{name} · d={dist}", "drop")))
    views: list[ChainView] = []
    for chain in shown:
        clusters = []
        for kept in chain.kept:
            name = str(ids[kept].as_py())
            keep = shot(kept, f"KEEP {name}", "keep")
            shots = sorted(removed[kept], key=lambda item: item[:2])
            worst = shots[-1][0] if shots else 0
            clusters.append(ClusterView(keep, [s for _, _, s in shots], worst))
        number = {kept: n for n, kept in enumerate(chain.kept, 1)}
        links = []
        for a, b, d, apart in chain.links:
            ends = sorted([(number[int(grouping.kept[row])], row) for row in (a, b)])
            (first, x), (second, y) = ends  # the earlier cluster first
            links.append((str(ids[x].as_py()), first, str(ids[y].as_py()), second, d, apart))
        views.append(ChainView(chain.samples, clusters, links))
    return views
