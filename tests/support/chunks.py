"""Chunk functions for executor tests, importable by worker processes (forkserver, Dask)."""

from __future__ import annotations

from pixelpipe.errors import PixelpipeError, Problem


def refuse_two(chunk: list[int]) -> list[int]:
    """Double each item; item 2 is a user mistake with a file, line and key."""
    for item in chunk:
        if item == 2:
            raise PixelpipeError(Problem("refused 2", file="data/x.json", line=3, key="items[2]"))
    return [2 * item for item in chunk]
