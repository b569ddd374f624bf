"""Compare the published datasets of two versions, revisions or the workspace (:func:`diff`).

Images added, removed and changed, annotation changes, split moves, the class distribution
and class map, exported files added, removed and changed, and removals by stage and reason.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelpipe.dataset import CATEGORIES_FILE, FILES_FILE, INFO_FILE, SAMPLES_FILE
from pixelpipe.engine.compile import DATA_DIR
from pixelpipe.errors import PixelpipeError
from pixelpipe.versions.target import Target, resolve


@dataclass
class Snapshot:
    """The published dataset of one state, as :func:`diff` compares it.

    Attributes:
        target: Where it was read.
        stage: Its stage.
        info: Its ``dataset.json``.
        categories: Its class map (``id`` -> name).
        rows: ``id`` -> (sha256, split, annotations as sorted canonical JSON).
        removals: Removed samples by (stage, reason), over every stage upstream.
        files: The exported files (``files.parquet``): path -> sha256.
    """

    target: Target
    stage: str
    info: dict[str, Any]
    categories: dict[int, str]
    rows: dict[str, tuple[str, str, tuple[str, ...]]]
    removals: dict[tuple[str, str], int]
    files: dict[str, str]

    def instances(self) -> Counter[int]:
        """Annotation count per category id."""
        counts: Counter[int] = Counter()
        for _, _, anns in self.rows.values():
            for ann in anns:
                counts[int(json.loads(ann)["category_id"])] += 1
        return counts


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def snapshot(root: Path, name: str) -> Snapshot:
    """Read the published dataset of a version, revision or the workspace."""
    import pyarrow.parquet as pq

    target = resolve(root, name)
    stage = target.stage
    folder = f"{DATA_DIR}/{stage}"
    with target.open(f"{folder}/{SAMPLES_FILE}") as stream:
        table = pq.read_table(stream, columns=["id", "sha256", "split", "annotations"])
    with target.open(f"{folder}/{CATEGORIES_FILE}") as stream:
        categories = {int(c["id"]): str(c["name"]) for c in json.loads(stream.read())}
    with target.open(f"{folder}/{INFO_FILE}") as stream:
        info = json.loads(stream.read())
    files: dict[str, str] = {}
    if info.get("files"):
        with target.open(f"{folder}/{FILES_FILE}") as stream:
            listed = pq.read_table(stream, columns=["path", "sha256"])
        files = dict(
            zip(listed.column("path").to_pylist(), listed.column("sha256").to_pylist(), strict=True)
        )
    rows: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for batch in table.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            anns = tuple(sorted(_canonical(a) for a in row["annotations"] or []))
            rows[row["id"]] = (row["sha256"], row["split"] or "unassigned", anns)
    removals: dict[tuple[str, str], int] = {}
    seen: set[str] = set()
    pending = [(stage, info)]
    while pending:
        current, current_info = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for reason, count in (
            current_info.get("counts", {}).get("removed_by_reason") or {}
        ).items():
            removals[(current, reason)] = int(count)
        for upstream in current_info.get("inputs") or {}:
            try:
                with target.open(f"{DATA_DIR}/{upstream}/{INFO_FILE}") as stream:
                    pending.append((upstream, json.loads(stream.read())))
            except (PixelpipeError, OSError):
                continue
    return Snapshot(target, stage, info, categories, rows, removals, files)


def compare(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """What changed from ``a`` to ``b``.

    Images added, removed and changed (by content), annotation changes, split moves,
    class distribution and class map, exported files added, removed and changed (by
    content), removals by stage and reason.

    Returns:
        A JSON-ready dict; id lists are sorted.
    """
    ids_a, ids_b = set(a.rows), set(b.rows)
    both = sorted(ids_a & ids_b)
    changed = [i for i in both if a.rows[i][0] != b.rows[i][0]]
    relabelled = [i for i in both if a.rows[i][2] != b.rows[i][2]]
    moved = [
        {"id": i, "from": a.rows[i][1], "to": b.rows[i][1]}
        for i in both
        if a.rows[i][1] != b.rows[i][1]
    ]
    added_instances = removed_instances = 0
    for i in relabelled:
        before, after = Counter(a.rows[i][2]), Counter(b.rows[i][2])
        added_instances += sum((after - before).values())
        removed_instances += sum((before - after).values())
    for i in ids_b - ids_a:
        added_instances += len(b.rows[i][2])
    for i in ids_a - ids_b:
        removed_instances += len(a.rows[i][2])
    count_a, count_b = a.instances(), b.instances()
    total_a, total_b = sum(count_a.values()), sum(count_b.values())
    names = {**a.categories, **b.categories}
    classes = []
    for cat in sorted(set(count_a) | set(count_b) | set(names)):
        na, nb = count_a.get(cat, 0), count_b.get(cat, 0)
        share_a = na / total_a if total_a else 0.0
        share_b = nb / total_b if total_b else 0.0
        classes.append(
            {
                "id": cat,
                "name": names.get(cat, "(not in class map)"),
                "a": na,
                "b": nb,
                "delta": nb - na,
                "share_a": round(share_a, 6),
                "share_b": round(share_b, 6),
                "share_delta": round(share_b - share_a, 6),
            }
        )
    splits_a = Counter(r[1] for r in a.rows.values())
    splits_b = Counter(r[1] for r in b.rows.values())
    removals = [
        {
            "stage": stage,
            "reason": reason,
            "a": a.removals.get((stage, reason), 0),
            "b": b.removals.get((stage, reason), 0),
        }
        for stage, reason in sorted(set(a.removals) | set(b.removals))
    ]

    def side(snap: Snapshot) -> dict[str, Any]:
        return {
            "name": snap.target.label,
            "version": snap.target.version.name if snap.target.version else None,
            "commit": snap.target.commit,
            "stage": snap.stage,
            "digest": snap.info.get("digest"),
            "samples": len(snap.rows),
            "annotations": sum(len(r[2]) for r in snap.rows.values()),
        }

    return {
        "a": side(a),
        "b": side(b),
        "identical": a.info.get("digest") == b.info.get("digest"),
        "images": {
            "added": sorted(ids_b - ids_a),
            "removed": sorted(ids_a - ids_b),
            "changed": changed,
        },
        "annotations": {
            "images_changed": relabelled,
            "instances_added": added_instances,
            "instances_removed": removed_instances,
        },
        "splits": {
            "a": dict(sorted(splits_a.items())),
            "b": dict(sorted(splits_b.items())),
            "moved": moved,
        },
        "classes": classes,
        "categories": {
            "added": sorted(
                ({"id": k, "name": v} for k, v in b.categories.items() if k not in a.categories),
                key=lambda c: c["id"],
            ),
            "removed": sorted(
                ({"id": k, "name": v} for k, v in a.categories.items() if k not in b.categories),
                key=lambda c: c["id"],
            ),
            "renamed": [
                {"id": k, "from": a.categories[k], "to": v}
                for k, v in sorted(b.categories.items())
                if k in a.categories and a.categories[k] != v
            ],
        },
        "files": {
            "added": sorted(set(b.files) - set(a.files)),
            "removed": sorted(set(a.files) - set(b.files)),
            "changed": sorted(p for p in set(a.files) & set(b.files) if a.files[p] != b.files[p]),
        },
        "removed_by_reason": removals,
    }


def diff(root: Path, a: str, b: str) -> dict[str, Any]:
    """Compare the published datasets of two versions (or revisions, or ``workspace``).

    Raises:
        PixelpipeError: On an unknown version or data that cannot be fetched.
    """
    resolve(root, a)
    resolve(root, b)  # both names are checked before any data is read
    return compare(snapshot(root, a), snapshot(root, b))
