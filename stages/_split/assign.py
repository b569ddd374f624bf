"""Which split each group goes to: by hash (stable), or stratified by class (balanced).

``hash``: a group's split is a function of its key and the seed only. The key is hashed
(SHA-256, with the seed) to a number ``u`` in ``[0, 1)`` and the split is the one whose
slice of the cumulative ratios holds ``u``. Nothing else in the dataset takes part, so
adding or removing images never moves another group; per-class balance is only what
chance gives (binomial around the ratios).

``stratified``: iterative stratification (Sechidis, Tsoumakas and Vlahavas, ECML PKDD
2011) over groups instead of images, for multi-label data such as detection (an image
holds several classes). Each class needs ``ratio * images holding it`` images in each
split. The class with the fewest groups left is placed first: its groups, largest first
(ties by ``u``), each go to the split that most lacks that class (then the one that
most lacks images). Groups without labels fill the splits that most lack images. Groups
whose split is fixed (kept source splits) count as already placed. The result balances
every class closely but depends on the whole dataset: keep earlier splits
(``existing: keep``) to grow a dataset without moving anything.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pixelpipe import derive_seed

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
PASSES = 20
"""Most passes of the local search that follows stratification."""


def fractions(seed: int, keys: list[str]) -> F64:
    """Each key's number in ``[0, 1)``, from SHA-256 of (seed, "split", key)."""
    return np.array([derive_seed(seed, "split", key) / 2.0**64 for key in keys], dtype=np.float64)


def by_hash(u: F64, ratios: F64) -> I64:
    """The split index of each ``u``: the slice of the cumulative ratios it falls in."""
    edges = np.cumsum(ratios)
    last = int(np.flatnonzero(ratios > 0)[-1])
    edges[last:] = 1.0  # float rounding never leaves a gap, nor opens a 0-ratio split
    index = np.searchsorted(edges, u, side="right")
    return np.minimum(index, last).astype(np.int64)


def stratified(
    sizes: I64,
    labels: list[dict[int, int]],
    u: F64,
    ratios: F64,
    fixed: I64,
    classes: int,
) -> I64:
    """Iterative stratification of groups.

    Args:
        sizes: Images per group (originals; copies do not count).
        labels: Per group, ``{class index: images of the group holding it}``.
        u: Per group, its hash number (tie-breaker).
        ratios: Requested ratio per split.
        fixed: Per group, its fixed split index, or -1 when it is free.
        classes: Number of classes.

    Returns:
        The split index of each group (fixed groups keep theirs).
    """
    splits = ratios.size
    total_class = np.zeros(classes, dtype=np.float64)
    for label in labels:
        for c, n in label.items():
            total_class[c] += n
    want_class = ratios[:, None] * total_class[None, :]
    want_size = ratios * float(sizes.sum())
    result = fixed.copy()
    open_splits = ratios > 0
    for g in np.flatnonzero(fixed >= 0).tolist():
        s = int(fixed[g])
        if s < splits:
            want_size[s] -= sizes[g]
            for c, n in labels[g].items():
                want_class[s, c] -= n
    free = np.flatnonzero(fixed < 0)
    holders: list[list[int]] = [[] for _ in range(classes)]
    for g in free.tolist():
        for c in labels[g]:
            holders[c].append(g)
    left = np.array([len(h) for h in holders], dtype=np.int64)
    done = np.zeros(sizes.size, dtype=bool)
    done[fixed >= 0] = True
    order_key = (-sizes.astype(np.float64), u)

    def place(g: int, c: int | None) -> None:
        if c is None:
            score = np.where(open_splits, want_size, -np.inf)
            s = int(np.argmax(score))
        else:
            need = np.where(open_splits, want_class[:, c], -np.inf)
            best = np.flatnonzero(need == need.max())
            s = int(best[np.argmax(want_size[best])])
        result[g] = s
        done[g] = True
        want_size[s] -= sizes[g]
        for k, n in labels[g].items():
            want_class[s, k] -= n
            left[k] -= 1

    while True:
        alive = np.flatnonzero(left > 0)
        if not alive.size:
            break
        c = int(alive[np.argmin(left[alive])])
        members = [g for g in holders[c] if not done[g]]
        members.sort(key=lambda g: (order_key[0][g], order_key[1][g]))
        for g in members:
            place(g, c)
    rest = [g for g in free.tolist() if not done[g]]
    rest.sort(key=lambda g: (order_key[0][g], order_key[1][g]))
    for g in rest:
        place(g, None)
    movable = [g for g in free.tolist() if sizes[g] > 0]
    movable.sort(key=lambda g: u[g])
    return refine(result, sizes, labels, ratios, movable, total_class)


def refine(
    result: I64,
    sizes: I64,
    labels: list[dict[int, int]],
    ratios: F64,
    movable: list[int],
    total_class: F64,
) -> I64:
    """Local search after stratification: move single groups while that lowers the error.

    The error is the sum, over classes and splits, of the squared difference between the
    images of the class in the split and the requested share of the class's images, plus
    the same for the split sizes. A move is taken when it lowers the error; passes over the
    groups (in ``u`` order) repeat until none does (at most :data:`PASSES`).

    Args:
        result: Each group's split; changed in place and returned.
        sizes: Images per group.
        labels: Per group, ``{class index: images holding it}``.
        ratios: Requested ratio per split.
        movable: The groups that may move, in the order they are tried.
        total_class: Images holding each class.
    """
    splits = ratios.size
    target_class = ratios[:, None] * total_class[None, :]
    target_size = ratios * float(sizes.sum())
    have_class = np.zeros_like(target_class)
    have_size = np.zeros(splits, dtype=np.float64)
    for g in range(sizes.size):
        s = int(result[g])
        if 0 <= s < splits:
            have_size[s] += sizes[g]
            for c, n in labels[g].items():
                have_class[s, c] += n
    open_splits = [s for s in range(splits) if ratios[s] > 0]
    for _ in range(PASSES):
        moves = 0
        for g in movable:
            a = int(result[g])
            if a >= splits:
                continue
            cls = np.fromiter(labels[g].keys(), dtype=np.int64, count=len(labels[g]))
            cnt = np.fromiter(labels[g].values(), dtype=np.float64, count=len(labels[g]))
            m = float(sizes[g])
            off_a = have_class[a, cls] - target_class[a, cls]
            best, gain = a, -1e-9
            for b in open_splits:
                if b == a:
                    continue
                off_b = have_class[b, cls] - target_class[b, cls]
                delta = float((2 * cnt * (off_b - off_a) + 2 * cnt**2).sum())
                size_off = (have_size[b] - target_size[b]) - (have_size[a] - target_size[a])
                delta += 2 * m * size_off + 2 * m * m
                if delta < gain:
                    best, gain = b, delta
            if best != a:
                result[g] = best
                have_class[a, cls] -= cnt
                have_class[best, cls] += cnt
                have_size[a] -= m
                have_size[best] += m
                moves += 1
        if not moves:
            break
    return result
