"""Split: named splits by ratio, group-aware, stable as the dataset grows, checked for leaks."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    PixelpipeError,
    Problem,
    StageContext,
    StageParams,
    StageResult,
    stage,
)
from pixelpipe.imaging import hamming
from stages._split import assign, codes, groups, leaks
from stages._split.report import ClassRow, SplitReport, render

GROUP_COLUMN = "split_group"
"""Manifest column: the key of the group that decided the sample's split."""
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REMOVED_REASON = "outside_augmented_splits"
DEFAULT_NEAR_DISTANCE = 10
"""Looser than dedupe's default (6) for 64-bit pHash; measured in docs/augment-split.md."""
I64 = npt.NDArray[np.int64]


class Params(StageParams):
    """Params of the ``split`` stage."""

    splits: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}
    """Split names and the share of images each gets (summing to 1), in order."""
    method: Literal["hash", "stratified"] = "hash"
    """``hash``: a group's split depends only on its key and the seed, so adding images
    never moves others (classes balance only as chance gives). ``stratified``: iterative
    stratification of groups by class, for multi-label detection data (closely balanced,
    but depends on the whole dataset: use ``existing: keep`` to grow without moves)."""
    seed: int = 0
    """Seed of the assignment: another seed gives another (equally valid) split."""
    group_by: list[str] = []
    """Manifest columns whose equal values must share a split (patient, video, store...).
    The ``group`` column always counts."""
    group_pattern: str | None = None
    """A regular expression over each sample's ``source`` path; samples with the same
    match share a split. The key is the named group ``group``, else the first group,
    else the whole match; e.g. ``'/patient_(\\d+)/'``."""
    near_distance: int | None = Field(default=DEFAULT_NEAR_DISTANCE, ge=0)
    """Images whose perceptual hashes are within this many bits share a split
    (transitively). The hash is dedupe's column when present, else a 64-bit pHash
    computed here. ``null``: no near-duplicate grouping."""
    leak_distance: int | None = Field(default=None, ge=0)
    """Distance of the leak check: no two images in different splits may be this close.
    Default: ``near_distance``."""
    hash_column: str | None = None
    """Manifest column holding the hashes (fixed-size bytes); default: the first of
    ``phash``, ``dhash``, ``ahash``, ``whash`` present, else computed."""
    existing: Literal["ignore", "keep"] = "ignore"
    """Splits already in the manifest (VOC ImageSets, YOLO folders, an earlier release):
    ``keep`` them (new images are assigned around them; a group whose members disagree
    goes where most of them are), or ``ignore`` them."""
    rename: dict[str, str] = {}
    """Existing split names to rename before keeping them, e.g. ``{valid: val}``."""
    augmented_splits: list[str] = ["train"]
    """Splits where augmented copies may stay (the ``augment`` stage's ``splits``): a copy
    whose parent lands elsewhere is removed with reason ``outside_augmented_splits``."""
    fail_on_leak: bool = True
    """Fail the stage when the leak check finds a group or a near-duplicate pair across
    splits (else the leak is only reported)."""

    @field_validator("splits")
    @classmethod
    def _ratios(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("name at least one split")
        for name, ratio in value.items():
            if not name or name.strip() != name:
                raise ValueError(f"split name {name!r} must be non-empty, without spaces around")
            if not (0.0 <= ratio <= 1.0) or math.isnan(ratio):
                raise ValueError(f"ratio of '{name}' must be from 0 to 1, got {ratio}")
        total = sum(value.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"ratios must sum to 1, they sum to {total:g}")
        return value

    @field_validator("group_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _augmented_are_splits(self) -> Params:
        unknown = [s for s in self.augmented_splits if s not in self.splits]
        if unknown and self.existing == "ignore":
            raise ValueError(
                f"augmented_splits {unknown} are not among the splits {list(self.splits)}"
            )
        return self


def _classes(table: pa.Table, known: list[int]) -> tuple[I64, I64, list[int]]:
    """Per annotation: its row and its class index; and the class ids."""
    annotations = table.column("annotations")
    flat = pc.list_flatten(annotations)
    rows = np.asarray(pc.list_parent_indices(annotations).to_numpy(zero_copy_only=False), np.int64)
    if len(flat):
        ids = np.asarray(pc.struct_field(flat, "category_id").to_numpy(zero_copy_only=False))
    else:
        ids = np.zeros(0, dtype=np.int64)
    class_ids = sorted(set(known) | set(ids.tolist()))
    index = np.searchsorted(np.array(class_ids, dtype=np.int64), ids).astype(np.int64)
    return rows, index, class_ids


def _fixed_splits(
    grouping: groups.Grouping,
    current: list[str | None],
    names: list[str],
) -> tuple[I64, list[str], list[tuple[int, str, str]]]:
    """The splits kept from the manifest.

    A group's kept split is the one most of its originals have (copies vote only when no
    original has a split); ties go to the split named first in ``splits``, then by name.

    Returns:
        Each group's kept split index (or -1), the split names (the requested ones, then
        extra ones found), and the rows moved because their group's members disagreed,
        as ``(row, from, to)``.
    """
    extra = sorted({s for s in current if s is not None and s not in names})
    all_names = names + extra
    position = {name: i for i, name in enumerate(all_names)}
    originals: list[Counter[str]] = [Counter() for _ in range(grouping.count)]
    copies: list[Counter[str]] = [Counter() for _ in range(grouping.count)]
    for row, split in enumerate(current):
        if split is not None:
            votes = copies if grouping.derived[row] else originals
            votes[int(grouping.group[row])][split] += 1
    fixed = np.full(grouping.count, -1, dtype=np.int64)
    for g in range(grouping.count):
        vote = originals[g] or copies[g]
        if vote:
            best = max(vote.items(), key=lambda kv: (kv[1], -position[kv[0]]))[0]
            fixed[g] = position[best]
    moved = [
        (row, split, all_names[fixed[int(grouping.group[row])]])
        for row, split in enumerate(current)
        if split is not None and all_names[fixed[int(grouping.group[row])]] != split
    ]
    return fixed, all_names, moved


@stage("split", params=Params)
def split(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Assign every image to a named split; groups never cross, leaks fail the stage.

    Images that must not be separated form one group: equal ``group`` values or values
    of the ``group_by`` columns, equal keys from ``group_pattern`` over the source path,
    identical files, perceptual hashes within ``near_distance`` (transitively), and a
    derived image with its parent. A group's split comes from its key and the ``seed``
    (``hash``: stable, adding images never moves others) or from iterative
    stratification by class (``stratified``: balanced per class for detection data).
    Existing source splits can be kept (``existing: keep``). Copies made by ``augment``
    whose parent lands outside ``augmented_splits`` are removed with a reason.

    The output has the ``split`` column set and a ``split_group`` column (the key of the
    group that decided it). ``report.json`` and ``report.html`` give the achieved ratios
    against the requested ones, per split and per class (images and boxes), the groups,
    and the leak check, recomputed on the output: no group across splits, no pair of
    images in different splits within ``leak_distance``. A leak fails the stage unless
    ``fail_on_leak: false``.

    ```yaml
    # pipelines/default.yaml
    stages:
      split:
        kind: split
        inputs: augment
    # params.yaml
    split:
      splits: {train: 0.8, val: 0.1, test: 0.1}
      method: hash              # or: stratified
      seed: 0
      group_by: []              # e.g. [patient_id]
      group_pattern: null       # e.g. '/videos/([^/]+)/'
      near_distance: 10         # bits of a 64-bit pHash; null: off
      existing: ignore          # or: keep (VOC ImageSets, YOLO folders, a release)
      augmented_splits: [train]
      fail_on_leak: true
    ```
    """
    (dataset,) = inputs
    table = dataset.table
    count = table.num_rows
    names = list(params.splits)
    ids: list[str] = table.column("id").to_pylist()
    parents: list[str | None] = table.column("parent").to_pylist()
    derived = np.array([p is not None for p in parents], dtype=bool)

    # Groups: every reason at once.
    joiner = groups.Joiner(count)
    a, b, missing = groups.parent_pairs(ids, parents)
    joiner.by_pairs(a, b, "parent")
    joiner.by_value(missing, "parent", explicit=False)
    joiner.by_value(table.column("group").to_pylist(), "group", explicit=True)
    user_columns = {
        name: groups.column_values(table, name, ctx.stage, "group_by") for name in params.group_by
    }
    for name, values in user_columns.items():
        joiner.by_value(values, name, explicit=True)
    pattern_keys: list[str | None] | None = None
    unmatched = 0
    if params.group_pattern is not None:
        pattern = re.compile(params.group_pattern)
        pattern_keys = groups.pattern_keys(table.column("source").to_pylist(), pattern)
        unmatched = sum(
            1 for k, d in zip(pattern_keys, derived, strict=True) if k is None and not d
        )
        joiner.by_value(pattern_keys, "pattern", explicit=True)
    joiner.by_value(table.column("sha256").to_pylist(), "identical", explicit=False)
    leak_distance = (
        params.leak_distance if params.leak_distance is not None else params.near_distance
    )
    hashes: codes.Codes | None = None
    near: hamming.SearchResult | None = None
    if params.near_distance is not None or leak_distance is not None:
        originals = np.flatnonzero(~derived).astype(np.int64)
        column = codes.hash_column(table, params.hash_column, ctx.stage)
        if column is not None:
            hashes = codes.from_column(table, column, originals, ctx.stage)
        else:
            hashes = codes.compute(table, originals, ctx)
        for key, value in (
            ("near_distance", params.near_distance),
            ("leak_distance", leak_distance),
        ):
            if value is not None and value >= hashes.bits // 2:
                raise PixelpipeError(
                    Problem(
                        f"{value} bits is at least half of the {hashes.bits}-bit hashes in "
                        f"'{hashes.column}': unrelated images match at that distance",
                        file="params.yaml",
                        key=f"{ctx.stage}.{key}",
                    )
                )
        if params.near_distance is not None:
            near = hamming.search(
                hashes.words,
                params.near_distance,
                bits=hashes.bits,
                map_chunks=ctx.executor.map_chunks,
                workers=ctx.executor.workers,
            )
            a, b = groups.near_pairs(near, hashes.rows)
            joiner.by_pairs(a, b, "near_duplicate")
    roots = groups.root_ids(ids, parents)
    grouping = joiner.finish(roots, derived)
    grouping.pattern_unmatched = unmatched
    if unmatched:
        ctx.log.warning(
            "%d images' source does not match group_pattern: each is grouped by the other "
            "reasons only",
            unmatched,
        )
    if hashes is not None and hashes.missing:
        ctx.log.warning(
            "%d images have no perceptual hash (%s): they are grouped and checked by the "
            "other reasons only",
            hashes.missing,
            hashes.column,
        )

    # Labels of each group (original images only: copies do not count toward ratios).
    ann_rows, ann_class, class_ids = _classes(table, [c.id for c in dataset.categories])
    classes = len(class_ids)
    holding = np.unique(ann_rows * max(classes, 1) + ann_class) if ann_rows.size else ann_rows
    hold_rows, hold_class = holding // max(classes, 1), holding % max(classes, 1)
    original_hold = ~derived[hold_rows]
    group_labels: list[dict[int, int]] = [{} for _ in range(grouping.count)]
    for row, c in zip(
        hold_rows[original_hold].tolist(), hold_class[original_hold].tolist(), strict=True
    ):
        label = group_labels[int(grouping.group[row])]
        label[c] = label.get(c, 0) + 1
    sizes = np.bincount(grouping.group[~derived], minlength=grouping.count).astype(np.int64)

    # Assignment.
    current = [
        params.rename.get(s, s) if s is not None else None
        for s in table.column("split").to_pylist()
    ]
    moved: list[tuple[int, str, str]] = []
    all_names = names
    fixed = np.full(grouping.count, -1, dtype=np.int64)
    if params.existing == "keep":
        fixed, all_names, moved = _fixed_splits(grouping, current, names)
    ratios = np.array([params.splits.get(n, 0.0) for n in all_names], dtype=np.float64)
    u = assign.fractions(params.seed, grouping.keys)
    chosen = fixed.copy()
    free = fixed < 0
    if params.method == "hash":
        chosen[free] = assign.by_hash(u[free], ratios)
    else:
        empty = free & (sizes == 0)  # copies of a missing parent only: by hash
        chosen[empty] = assign.by_hash(u[empty], ratios)
        chosen = assign.stratified(sizes, group_labels, u, ratios, chosen, classes)
    originals_total = int(sizes.sum())
    smallest = min((r for r in params.splits.values() if r > 0), default=1.0)
    if originals_total and sizes.max(initial=0) > smallest * originals_total / 2:
        ctx.log.warning(
            "the largest group (%s) holds %d of %d images, more than half the smallest split: "
            "if near duplicates chain unrelated images (studio shots, microscopy), lower "
            "near_distance",
            grouping.keys[int(sizes.argmax())],
            int(sizes.max()),
            originals_total,
        )
    row_split = chosen[grouping.group]
    split_names = [all_names[i] for i in row_split.tolist()]

    # Copies outside the augmented splits go; everything else stays.
    out = DatasetBuilder(dataset.categories)
    allowed = set(params.augmented_splits)
    drop = np.array(
        [d and s not in allowed for d, s in zip(derived.tolist(), split_names, strict=True)],
        dtype=bool,
    )
    sources = table.column("source").to_pylist()
    for row in np.flatnonzero(drop).tolist():
        out.remove(
            ids[row],
            REMOVED_REASON,
            f"a copy of '{roots[row]}', whose group went to '{split_names[row]}'; copies stay "
            f"only in {sorted(allowed)}",
            source=sources[row],
            split=split_names[row],
        )
    result = table.set_column(
        table.schema.get_field_index("split"), "split", pa.array(split_names, pa.string())
    )
    keys = [grouping.keys[g] for g in grouping.group.tolist()]
    if GROUP_COLUMN in result.column_names:
        result = result.drop_columns(GROUP_COLUMN)
    result = result.append_column(GROUP_COLUMN, pa.array(keys, pa.string()))
    keep = ~drop
    result = result.filter(pa.array(keep))
    out.add_table(result)

    # Leak check, recomputed on the output manifest.
    kept_split = result.column("split").to_pylist()
    report = leaks.LeakReport()
    leaks.check_groups(report, "group", result.column("group").to_pylist(), kept_split)
    for name in user_columns:
        leaks.check_groups(report, name, result.column(name).to_pylist(), kept_split)
    if params.group_pattern is not None:
        again = groups.pattern_keys(
            result.column("source").to_pylist(), re.compile(params.group_pattern)
        )
        leaks.check_groups(report, "pattern", again, kept_split)
    leaks.check_groups(report, "identical", result.column("sha256").to_pylist(), kept_split)
    leaks.check_parents(
        report, result.column("id").to_pylist(), result.column("parent").to_pylist(), kept_split
    )
    if hashes is not None and leak_distance is not None:
        check = near
        if check is None or leak_distance != params.near_distance:
            check = hamming.search(
                hashes.words,
                leak_distance,
                bits=hashes.bits,
                map_chunks=ctx.executor.map_chunks,
                workers=ctx.executor.workers,
            )
        hashed_ids = [ids[r] for r in hashes.rows.tolist()]
        position = {name: i for i, name in enumerate(all_names)}
        out_split = dict(zip(result.column("id").to_pylist(), kept_split, strict=True))
        hashed_split = np.array([position[out_split[i]] for i in hashed_ids], dtype=np.int64)
        leaks.check_near(report, check, hashed_ids, hashed_split, all_names, leak_distance)
    if not report.clean and params.fail_on_leak:
        shown = "; ".join(
            json.dumps(e, sort_keys=True)
            for e in (report.group_examples + report.pair_examples)[:5]
        )
        raise PixelpipeError(
            Problem(
                f"leak check failed: {report.summary()} (e.g. {shown}); set "
                f"`fail_on_leak: false` to write the split anyway",
                file="params.yaml",
                key=f"{ctx.stage}.fail_on_leak",
            )
        )

    # Report.
    names_of = {c.id: c.name for c in dataset.categories}
    split_rows = row_split
    width = len(all_names)
    originals_mask = ~derived
    images = np.bincount(split_rows[originals_mask], minlength=width)
    copies = np.bincount(split_rows[derived & keep], minlength=width)
    class_images = np.zeros((classes, width), dtype=np.int64)
    class_boxes = np.zeros((classes, width), dtype=np.int64)
    if hold_rows.size:
        sel = original_hold
        np.add.at(class_images, (hold_class[sel], split_rows[hold_rows[sel]]), 1)
    if ann_rows.size:
        sel = originals_mask[ann_rows]
        np.add.at(class_boxes, (ann_class[sel], split_rows[ann_rows[sel]]), 1)
    total = int(images.sum())
    rows = [
        ClassRow(
            class_ids[c],
            names_of.get(class_ids[c], f"id {class_ids[c]}"),
            class_images[c].tolist(),
            class_boxes[c].tolist(),
        )
        for c in range(classes)
    ]
    group_sizes = np.bincount(grouping.group[originals_mask], minlength=grouping.count)
    data = SplitReport(
        stage=ctx.stage,
        method=params.method,
        seed=params.seed,
        names=all_names,
        requested=ratios.tolist(),
        images=images.tolist(),
        copies=copies.tolist(),
        classes=rows,
        groups=grouping.count,
        groups_multi=int((group_sizes > 1).sum()),
        largest_group=int(group_sizes.max(initial=0)),
        largest_key=grouping.keys[int(group_sizes.argmax())] if grouping.count else "",
        joined=grouping.joined,
        pattern_unmatched=unmatched,
        hash_column=hashes.column if hashes is not None else None,
        unhashed=hashes.missing if hashes is not None else 0,
        near_distance=params.near_distance,
        leak=report,
        existing=params.existing,
        kept_existing=sum(1 for s in current if s is not None) if params.existing == "keep" else 0,
        moved=[(ids[r], f, t) for r, f, t in moved],
        removed_copies=int(drop.sum()),
    )
    (ctx.output_dir / REPORT_JSON).write_text(
        json.dumps(data.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    (ctx.output_dir / REPORT_HTML).write_text(render(data), encoding="utf-8")
    metrics: dict[str, Any] = {
        "method": params.method,
        "groups": grouping.count,
        "largest_group": data.largest_group,
        "copies_removed": int(drop.sum()),
        "existing_moved": len(moved),
        "max_class_deviation": round(data.max_deviation(), 4),
        "leak_check": "clean" if report.clean else "leak",
        "leak_groups_crossing": sum(report.groups_crossing.values()),
        "leak_pairs_crossing": report.pairs_crossing,
        "leak_distance": leak_distance,
    }
    for i, name in enumerate(all_names):
        metrics[f"images_{name}"] = int(images[i])
        metrics[f"ratio_{name}"] = round(float(images[i]) / total, 4) if total else 0.0
    return StageResult(output=out, metrics=metrics)
