"""Perceptual-hash codes for tests of near-duplicate grouping (split, select)."""

from __future__ import annotations

import numpy as np


def far_codes(count: int, seed: int = 7, min_distance: int = 26) -> list[int]:
    """64-bit codes at least ``min_distance`` bits apart from each other."""
    rng = np.random.default_rng(seed)
    found: list[int] = []
    while len(found) < count:
        code = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
        if all(bin(code ^ other).count("1") >= min_distance for other in found):
            found.append(code)
    return found
