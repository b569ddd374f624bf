"""Which samples are copies of which: clusters around the sample the keep policy keeps.

Samples are reduced to *nodes* before clustering: the samples of one file (same sha256)
are one node, and so are the files of one hash (distance 0); an unhashed file is a node of
its own. The search's pairs join nodes into connected components, and
:func:`pixelpipe.imaging.clusters.star_clusters` cuts each component into clusters around
the node holding the sample the keep policy prefers, so every removed sample is within
``max_distance`` of the sample kept for it. A component cut into several clusters is a
*chain* (copies of copies that union-find would have merged); the report shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pixelpipe.imaging import hamming
from pixelpipe.imaging.clusters import Stars, star_clusters, star_clusters_on_edges
from stages._dedupe.decide import KeepPolicy, Member, keep_order

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Chain:
    """A connected component that was cut into several clusters.

    Attributes:
        samples: Samples in the component.
        kept: The kept row of each of its clusters, in keep-policy order.
        links: ``(row, row, distance, kept distance)``: the pairs within the threshold
            that join two of its clusters (rows are the preferred sample of each side's
            image), with the distance between the two clusters' kept images (above the
            threshold, which is why they are two clusters), nearest first.
    """

    samples: int
    kept: list[int]
    links: list[tuple[int, int, int, int]]


@dataclass(frozen=True)
class Grouping:
    """The clusters of a manifest.

    Attributes:
        kept: For each row, the row kept for it (its own index when it is kept).
        distance: For each row, the hash distance of its image to the kept row's image
            (0 for the same file or the same hash); never above the threshold.
        rank: For each row, its place in keep-policy order (lower is kept first).
        members: The rows in clusters of two or more samples, by row.
        chains: The components cut into several clusters, largest first.
        largest_component: Samples in the largest connected component (what union-find
            would have made the largest cluster).
        matches: With verified edges, for each row the verification figure of its pair
            with the kept row (-1 for kept rows and copies of the same file or hash).
        cosine: With edges from a features column, for each row the cosine distance of
            its pair with the kept row (NaN where there is none).
    """

    kept: I64
    distance: I64
    rank: I64
    members: dict[int, Member]
    chains: list[Chain]
    largest_component: int
    matches: I64 | None = None
    cosine: npt.NDArray[np.float64] | None = None


@dataclass(frozen=True)
class Edges:
    """Verified pairs of distinct files: the only links clusters may use.

    Attributes:
        i: One file of each pair.
        j: The other file.
        distance: Their hash distance.
        matches: The verification's figure (inliers) of the pair.
        cosine: The pair's cosine distance, when it came from a features column.
    """

    i: I64
    j: I64
    distance: I64
    matches: I64
    cosine: npt.NDArray[np.float64] | None = None


def members(table: pa.Table, rows: list[int]) -> list[Member]:
    """What the keep policy and the report need of some rows of the manifest."""
    columns = ["id", "source", "width", "height", "annotations"]
    part = table.select(columns).take(pa.array(rows, type=pa.int64()))  # one take, never per row
    counts = pc.fill_null(pc.list_value_length(part.column("annotations")), 0).to_pylist()
    return [
        Member(row, i, s, w, h, n)
        for row, i, s, w, h, n in zip(
            rows,
            part.column("id").to_pylist(),
            part.column("source").to_pylist(),
            part.column("width").to_pylist(),
            part.column("height").to_pylist(),
            counts,
            strict=True,
        )
    ]


def _first_of_runs(keys: I64) -> npt.NDArray[np.bool_]:
    first = np.ones(keys.size, dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return first


def group(
    table: pa.Table,
    file_of_row: I64,
    hashed: I64,
    words: npt.NDArray[np.uint64],
    found: hamming.SearchResult | None,
    threshold: int,
    policy: KeepPolicy,
    edges: Edges | None = None,
) -> Grouping:
    """Cluster the manifest's rows around the rows the keep policy keeps.

    Args:
        table: The input manifest.
        file_of_row: For each row, its distinct file (by sha256).
        hashed: The files that were hashed; ``words`` and ``found`` follow this order.
        words: Their codes, ``(hashed, orientations, words)`` uint64.
        found: The search over ``words`` (``None`` when nothing was searched).
        threshold: ``max_distance``.
        policy: The keep policy.
        edges: Verified pairs of files: when given, a sample joins a kept sample only
            through one of them (or by sharing its file or hash), not by distance.
    """
    rows = int(file_of_row.size)
    files = int(file_of_row.max(initial=-1)) + 1
    inverse = found.inverse if found is not None else np.zeros(0, dtype=np.int64)
    codes_count = int(inverse.max(initial=-1)) + 1
    node_of_file = np.full(files, -1, dtype=np.int64)
    node_of_file[hashed] = inverse
    unhashed = np.flatnonzero(node_of_file < 0)
    node_of_file[unhashed] = codes_count + np.arange(unhashed.size)
    nodes = codes_count + int(unhashed.size)
    codes = np.zeros((nodes, *words.shape[1:]), dtype=np.uint64)
    _, first_of_code = np.unique(inverse, return_index=True)
    codes[:codes_count] = words[first_of_code]
    pairs = found.unique_pairs if found is not None else hamming.Pairs.empty()
    if edges is not None:
        ends = node_of_file[edges.i], node_of_file[edges.j]
        apart = ends[0] != ends[1]
        pairs = hamming.Pairs.build(ends[0][apart], ends[1][apart], edges.distance[apart])
    node_of_row = node_of_file[file_of_row]

    # Keep-policy ranks, computed only for rows that share a node or a pair.
    candidate = np.bincount(node_of_row, minlength=nodes) > 1
    candidate[pairs.i] = True
    candidate[pairs.j] = True
    candidate_rows = np.flatnonzero(candidate[node_of_row])
    ordered = sorted(members(table, candidate_rows.tolist()), key=lambda m: keep_order(m, policy))
    rank = rows + np.arange(rows, dtype=np.int64)  # rows alone in their node: never compared
    rank[np.array([m.index for m in ordered], dtype=np.int64)] = np.arange(len(ordered))
    priority = np.full(nodes, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(priority, node_of_row, rank)

    if edges is None:
        stars = star_clusters(codes, pairs.i, pairs.j, threshold, priority)
    else:
        stars = star_clusters_on_edges(nodes, pairs.i, pairs.j, pairs.distance, priority)
    by_node = np.lexsort((rank, node_of_row))  # each node's rows, preferred first
    first = by_node[_first_of_runs(node_of_row[by_node])]
    best_row = np.zeros(nodes, dtype=np.int64)
    best_row[node_of_row[first]] = first
    kept = best_row[stars.centre[node_of_row]]
    distance = stars.distance[node_of_row]

    in_cluster = np.flatnonzero(np.bincount(kept, minlength=rows)[kept] > 1)
    clustered = set(in_cluster.tolist())
    chosen = {m.index: m for m in ordered if m.index in clustered}
    component_rows = np.bincount(stars.component[node_of_row], minlength=nodes)
    chains = _chains(codes, stars, pairs, best_row, rank, component_rows)
    largest = int(component_rows.max(initial=0))
    if edges is None:
        return Grouping(kept, distance, rank, chosen, chains, largest)
    matches = _per_row(edges, edges.matches, node_of_file, node_of_row, kept, -1)
    cosine = (
        None
        if edges.cosine is None
        else _per_row(edges, edges.cosine, node_of_file, node_of_row, kept)
    )
    return Grouping(kept, distance, rank, chosen, chains, largest, matches.astype(np.int64), cosine)


def _per_row(
    edges: Edges,
    figures: np.ndarray,
    node_of_file: I64,
    node_of_row: I64,
    kept: I64,
    missing: float = np.nan,
) -> npt.NDArray[np.float64]:
    """For each row, an edge's figure for the pair it forms with its kept row's node."""
    nodes = int(node_of_file.max(initial=-1)) + 1
    a, b = node_of_file[edges.i], node_of_file[edges.j]
    keys = np.minimum(a, b) * nodes + np.maximum(a, b)
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], np.asarray(figures, dtype=np.float64)[order]
    mine, theirs = node_of_row, node_of_row[kept]
    wanted = np.minimum(mine, theirs) * nodes + np.maximum(mine, theirs)
    out = np.full(node_of_row.size, missing, dtype=np.float64)
    if keys.size:
        at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
        found = (keys[at] == wanted) & (mine != theirs)
        out[found] = values[at[found]]
    return out


def _chains(
    codes: npt.NDArray[np.uint64],
    stars: Stars,
    pairs: hamming.Pairs,
    best_row: I64,
    rank: I64,
    component_rows: I64,
) -> list[Chain]:
    """The components cut into several clusters, with the pairs that join their clusters."""
    split = stars.split_components()
    if not split.size:
        return []
    is_split = np.zeros(stars.centre.size, dtype=bool)
    is_split[split] = True
    is_centre = stars.centre == np.arange(stars.centre.size)
    kept: dict[int, list[int]] = {c: [] for c in split.tolist()}
    for node in np.flatnonzero(is_centre & is_split[stars.component]).tolist():
        kept[int(stars.component[node])].append(int(best_row[node]))
    links: dict[int, list[tuple[int, int, int, int]]] = {c: [] for c in split.tolist()}
    crossing = np.flatnonzero(
        is_split[stars.component[pairs.i]] & (stars.centre[pairs.i] != stars.centre[pairs.j])
    )
    a, b = pairs.i[crossing], pairs.j[crossing]
    apart = hamming.pair_distances(codes, stars.centre[a], stars.centre[b])
    for x, y, d, k in zip(
        a.tolist(), b.tolist(), pairs.distance[crossing].tolist(), apart.tolist(), strict=True
    ):
        links[int(stars.component[x])].append((int(best_row[x]), int(best_row[y]), d, k))
    chains = [
        Chain(
            int(component_rows[c]),
            sorted(kept[c], key=lambda r: int(rank[r])),
            sorted(links[c], key=lambda link: (link[2], int(rank[link[0]]), int(rank[link[1]]))),
        )
        for c in split.tolist()
    ]
    chains.sort(key=lambda chain: (-chain.samples, int(rank[chain.kept[0]])))
    return chains
