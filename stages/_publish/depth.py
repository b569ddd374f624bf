"""Publish at a depth of the class hierarchy: ``class_depth: 1`` turns sedans into vehicles.

The hierarchy is the taxonomy file the ``taxonomy`` param names, else the class map's own
parents (COCO's ``supercategory``, :func:`pixelpipe.taxonomy.from_categories`). At depth
``d`` every class becomes its ancestor at depth ``d`` (a shallower class stays itself; a
synonym becomes the class it names). The class map is rebuilt before anything is exported,
so the manifest publish writes, ``class_map.json`` and every export agree:

- a class that stays (under its own name) keeps its id; a class the class map knows only
  by a synonym keeps that entry's id;
- an ancestor the class map does not have gets a new id, after the largest id of the
  input class map, in name order (ids are never reused for another class);
- each class's parent is the taxonomy's, so the parents above depth ``d`` stay; a root keeps
  a parent equal to its own name (COCO's ``person`` under ``person``);
- every annotation (boxes and whole-image labels) is re-pointed to its new id, in Arrow
  arrays, one chunk of the manifest at a time.

A depth larger than the tree is the tree. A taxonomy file that lacks a class of the class
map is an error naming every such class (the ``validate`` stage's rules say which images
use it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pixelpipe import (
    Category,
    Dataset,
    PixelpipeError,
    Problem,
    StageContext,
    did_you_mean,
)
from pixelpipe.dataset import CATEGORIES_FILE
from pixelpipe.taxonomy import Taxonomy, from_categories, load


@dataclass(frozen=True)
class ClassMap:
    """A class map at one depth of the hierarchy.

    Attributes:
        categories: The class map at the depth, in id order.
        ids: Input class-map id -> output id.
        depth: The depth applied (the tree's own when ``class_depth`` is deeper).
        merged: Output class -> the input classes it holds, for each class that holds
            another (or was renamed from a synonym).
    """

    categories: list[Category]
    ids: dict[int, int]
    depth: int
    merged: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Flattened:
    """A manifest and its class map at one depth of the hierarchy.

    Attributes:
        table: The manifest, every annotation pointing at the new class map.
        classes: The class map and where each input id went.
    """

    table: pa.Table
    classes: ClassMap


def hierarchy(path: str, root: Path, categories: Sequence[Category], source: str) -> Taxonomy:
    """The taxonomy to flatten with: the file at ``path``, else the class map's parents.

    Args:
        path: The ``taxonomy`` param (relative to ``root``); empty for the class map's.
        root: The project root.
        categories: The class map.
        source: The class map's file, for messages.

    Returns:
        The taxonomy.

    Raises:
        PixelpipeError: From :func:`pixelpipe.taxonomy.load`, with every problem of the
            file, or when the class map's parents form a cycle.
    """
    if not path:
        return from_categories(categories, source)
    file = Path(path).expanduser()
    return load(file if file.is_absolute() else root / file, path)


def class_map(categories: Sequence[Category], tree: Taxonomy, depth: int) -> ClassMap:
    """The class map at ``depth`` and where each input id goes.

    Args:
        categories: The input class map.
        tree: The hierarchy; it must know every class of ``categories``.
        depth: The depth wanted, 1 or more.

    Returns:
        The new class map, the id mapping, the depth applied and the merged classes.

    Raises:
        PixelpipeError: Naming every class ``tree`` does not know.
    """
    unknown = [c for c in categories if tree.canonical(c.name) is None]
    if unknown:
        raise PixelpipeError(
            [
                Problem(
                    f"class '{c.name}' (id {c.id}) of the class map is not in the taxonomy"
                    + did_you_mean(c.name, tree.names()),
                    file=tree.source or None,
                )
                for c in unknown
            ]
        )
    applied = min(depth, max(tree.levels(), 1))
    target = {c.id: tree.at_depth(_canonical(tree, c.name), applied) for c in categories}
    by_name = {c.name: c for c in categories}
    by_canonical: dict[str, Category] = {}
    for c in sorted(categories, key=lambda c: (c.name != _canonical(tree, c.name), c.id)):
        by_canonical.setdefault(_canonical(tree, c.name), c)
    next_id = max((c.id for c in categories), default=0) + 1
    out: dict[str, Category] = {}
    for name in sorted(set(target.values())):
        kept = by_name.get(name) or by_canonical.get(name)
        if kept is not None:
            out[name] = Category(kept.id, name, _parent(tree, name, by_name.get(name)))
        else:
            out[name] = Category(next_id, name, _parent(tree, name, None))
            next_id += 1
    merged: dict[str, list[str]] = {}
    for c in sorted(categories, key=lambda c: c.name):
        if target[c.id] != c.name:
            merged.setdefault(target[c.id], []).append(c.name)
    for name, members in merged.items():
        if name in by_name:
            members.insert(0, name)
    return ClassMap(
        categories=sorted(out.values(), key=lambda c: c.id),
        ids={c.id: out[target[c.id]].id for c in categories},
        depth=applied,
        merged=merged,
    )


def _canonical(tree: Taxonomy, name: str) -> str:
    found = tree.canonical(name)
    return name if found is None else found


def _parent(tree: Taxonomy, name: str, entry: Category | None) -> str | None:
    """The taxonomy's parent; for a root, a parent equal to its own name is kept."""
    line = tree.ancestors(name)
    if len(line) >= 2:
        return line[-2]
    if entry is not None and entry.parent == name:
        return name
    return None


def repoint(table: pa.Table, ids: Mapping[int, int]) -> pa.Table:
    """``table`` with every annotation's ``category_id`` mapped through ``ids``.

    Ids that ``ids`` lacks stay as they are (the export refuses them, naming them).

    Args:
        table: A manifest.
        ids: Old id -> new id.

    Returns:
        The manifest with its ``annotations`` column rewritten; every other column as it was.
    """
    if not ids or "annotations" not in table.column_names:
        return table
    old = np.array(sorted(ids), dtype=np.int64)
    new = np.array([ids[i] for i in old.tolist()], dtype=np.int64)
    column = table.column("annotations")
    chunks = [_repoint_chunk(chunk, old, new) for chunk in column.chunks]
    rewritten = pa.chunked_array(chunks, type=column.type)
    return table.set_column(table.column_names.index("annotations"), "annotations", rewritten)


def _repoint_chunk(chunk: pa.ListArray, old: np.ndarray, new: np.ndarray) -> pa.ListArray:
    offsets = chunk.offsets.to_numpy()  # into the unsliced values, even for a slice
    start = int(offsets[0]) if offsets.size else 0
    values = chunk.values.slice(start, int(offsets[-1]) - start if offsets.size else 0)
    ids = pc.fill_null(values.field("category_id"), -1).to_numpy(zero_copy_only=False)
    at = np.clip(np.searchsorted(old, ids), 0, max(old.size - 1, 0))
    mapped = np.where(old[at] == ids, new[at], ids)
    fields = [values.type.field(i) for i in range(values.type.num_fields)]
    arrays = [
        pa.array(mapped, type=pa.int64()) if f.name == "category_id" else values.field(f.name)
        for f in fields
    ]
    struct = pa.StructArray.from_arrays(
        arrays, fields=fields, mask=values.is_null() if values.null_count else None
    )
    return pa.ListArray.from_arrays(
        pa.array(offsets - start, type=pa.int32()),
        struct,
        type=chunk.type,
        mask=chunk.is_null() if chunk.null_count else None,
    )


def flatten(dataset: Dataset, depth: int, path: str, ctx: StageContext) -> Flattened:
    """The manifest and class map at ``depth``, logged; what publish exports.

    Args:
        dataset: The input dataset.
        depth: ``class_depth``, 1 or more.
        path: The ``taxonomy`` param; empty for the class map's own parents.
        ctx: The stage context (project root, log).

    Returns:
        The flattened manifest and class map.

    Raises:
        PixelpipeError: For a bad taxonomy file, or one that lacks a class of the class map.
    """
    categories = dataset.categories
    tree = hierarchy(path, ctx.root, categories, _shown(dataset.path / CATEGORIES_FILE, ctx.root))
    done = class_map(categories, tree, depth)
    where = path or "the class map's parents"
    ctx.log.info(
        "%s: class depth %d of %d (%s): %d classes -> %d",
        ctx.stage,
        done.depth,
        tree.levels(),
        where,
        len(categories),
        len(done.categories),
    )
    for name, members in sorted(done.merged.items()):
        ctx.log.info("%s: %s <- %s", ctx.stage, name, ", ".join(members))
    return Flattened(repoint(dataset.table, done.ids), done)


def _shown(path: Path, root: Path) -> str:
    """A path relative to the project when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
