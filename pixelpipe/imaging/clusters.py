"""Duplicate clusters around a centre: every member is within the threshold of it.

Union-find over the pairs within a threshold (:meth:`hamming.SearchResult.clusters`) joins
copies of copies: ``A ~ B`` and ``B ~ C`` put ``A`` and ``C`` in one cluster however far
apart they are, so keeping ``A`` and removing the rest would remove ``C`` as a copy of an
image it does not resemble. :func:`star_clusters` cuts each connected component into
*stars* instead: it repeatedly takes the remaining item that comes first in a priority
order (the one a caller would keep) as a centre and gives it every remaining item of the
component within the threshold of it, measured again (:func:`hamming.pair_distances`, with
orientations when the codes have them). So

- every item is within the threshold of its centre (the rule a removal must satisfy);
- two centres of one component are more than the threshold apart (else the later one
  would have joined the earlier one);
- an item joins the first centre, in priority order, that is within the threshold of it;
- a component whose first item is within the threshold of all others (a clique, and any
  component of exact copies) stays one cluster: the same as union-find;
- the result depends on the codes, the pairs and the priorities only, never on the order
  of the items or on how the pairs were found.

The work is vectorised by rounds: each round takes the next centre of every unfinished
component at once and measures all their remaining items against it, so a component of
thousands costs numpy work proportional to its size times the clusters it splits into,
with one Python step per round, not per item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pixelpipe.imaging.hamming import pair_distances
from pixelpipe.imaging.mih import I64

__all__ = ["Stars", "components", "star_clusters", "star_clusters_on_edges"]


@dataclass(frozen=True)
class Stars:
    """Clusters around centres, over items ``0..n-1``.

    Attributes:
        centre: For each item, the centre of its cluster (a centre is its own).
        distance: For each item, its distance to its centre (0 for a centre).
        component: For each item, its connected component under the pairs: the smallest
            item in it.
    """

    centre: I64
    distance: I64
    component: I64

    def sizes(self) -> I64:
        """For each item, the number of items in its cluster."""
        return np.asarray(np.bincount(self.centre, minlength=self.centre.size)[self.centre])

    def split_components(self) -> I64:
        """Components that became more than one cluster (chains cut), sorted."""
        centres = np.flatnonzero(self.centre == np.arange(self.centre.size))
        per_component = np.bincount(self.component[centres], minlength=self.centre.size)
        return np.flatnonzero(per_component > 1).astype(np.int64)


def components(count: int, i: np.ndarray, j: np.ndarray) -> I64:
    """Connected components of items ``0..count-1`` joined by pairs ``(i, j)``.

    The same labels as :class:`hamming.UnionFind` (each item's label is the smallest item
    of its component), computed with whole-array steps instead of one Python step per
    pair: each round hooks every root to the smallest root it is paired with, then
    points every item straight at its root; rounds repeat until no pair joins two roots
    (a few rounds: each one at least halves the roots of any chain).
    """
    a, b = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    label = np.arange(count, dtype=np.int64)
    while True:
        left, right = label[a], label[b]
        apart = left != right
        if not apart.any():
            return label
        low, high = np.minimum(left, right)[apart], np.maximum(left, right)[apart]
        np.minimum.at(label, high, low)  # roots only: after compressing, labels are roots
        while True:
            hop = label[label]
            if np.array_equal(hop, label):
                break
            label = hop
        a, b = a[apart], b[apart]  # pairs already inside one component stay so


def star_clusters(
    codes: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    threshold: int,
    priority: np.ndarray,
) -> Stars:
    """Cut the connected components of candidate pairs into clusters around centres.

    Args:
        codes: ``(n, words)`` or ``(n, orientations, words)`` uint64 codes of the items
            (as :func:`hamming.search` takes them).
        i: One item of each candidate pair (a pair joins two items' components).
        j: The other item of each pair.
        threshold: Largest distance from a member to its centre (inclusive).
        priority: For each item, a number: lower comes first as a centre. Ties go to the
            lower item index, so give distinct priorities for a result that does not
            depend on the order of the items.

    Returns:
        Each item's centre, its distance to it and its component.
    """

    def link(active: I64, heads: I64) -> tuple[npt.NDArray[np.bool_], I64]:
        measured = pair_distances(codes, active, heads)
        return measured <= threshold, measured  # a head is at 0 from itself

    return _rounds(int(np.asarray(codes).shape[0]), i, j, priority, link)


Link = Callable[[I64, I64], tuple[npt.NDArray[np.bool_], I64]]
"""``(items, their heads) -> (joins its head, figure)``: one round's test of each item."""


def _rounds(count: int, i: np.ndarray, j: np.ndarray, priority: np.ndarray, link: Link) -> Stars:
    """Stars built by rounds, over the components of the pairs ``(i, j)``.

    Each round takes the next centre (head) of every unfinished component and gives it the
    items ``link`` accepts; a head always joins itself, so each round ends one.
    """
    rank = np.empty(count, dtype=np.int64)
    rank[np.lexsort((np.arange(count), np.asarray(priority)))] = np.arange(count)
    component = components(count, i, j)
    centre = np.arange(count, dtype=np.int64)
    distance = np.zeros(count, dtype=np.int64)
    sizes = np.bincount(component, minlength=count)
    active = np.flatnonzero(sizes[component] > 1)
    # Each component's items in priority order; assignment keeps that order.
    active = active[np.lexsort((rank[active], component[active]))]
    while active.size:
        owner = component[active]
        first = np.ones(active.size, dtype=bool)
        first[1:] = owner[1:] != owner[:-1]
        heads = active[first][np.cumsum(first) - 1]
        joined, measured = link(active, heads)
        itself = active == heads
        joined = joined | itself
        centre[active[joined]] = heads[joined]
        distance[active[joined]] = np.where(itself, 0, measured)[joined]
        active = active[~joined]
    return Stars(centre, distance, component)


def star_clusters_on_edges(
    count: int,
    i: np.ndarray,
    j: np.ndarray,
    weight: np.ndarray,
    priority: np.ndarray,
) -> Stars:
    """:func:`star_clusters` where "within the threshold" is an explicit set of edges.

    For a decision that is not a distance (a verified pair of images): an item joins a
    centre only if the pair (item, centre) is one of the edges, so every member is linked
    to its centre directly, never through a chain. The same rounds, properties and
    determinism as :func:`star_clusters`.

    Args:
        count: Number of items.
        i: One item of each edge.
        j: The other item.
        weight: Each edge's figure (its distance), reported for members.
        priority: For each item, lower comes first as a centre (ties: lower index).

    Returns:
        Each item's centre, its edge's weight to it (0 for a centre) and its component.
    """
    a, b = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    keys = np.minimum(a, b) * count + np.maximum(a, b)
    order = np.argsort(keys, kind="stable")
    keys, weights = keys[order], np.asarray(weight, dtype=np.int64)[order]

    def link(active: I64, heads: I64) -> tuple[npt.NDArray[np.bool_], I64]:
        if not keys.size:
            return np.zeros(active.size, dtype=bool), np.zeros(active.size, dtype=np.int64)
        wanted = np.minimum(active, heads) * count + np.maximum(active, heads)
        at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
        return keys[at] == wanted, weights[at]

    return _rounds(count, a, b, priority, link)
