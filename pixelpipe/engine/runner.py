"""Runs one stage: inputs in, params checked, step called, outputs written atomically.

The output is written into ``data/.<stage>.tmp-<pid>`` and renamed into ``data/<stage>``
only when complete, so a stage killed at any moment leaves the previous output or none,
never half of one. The runner checks that nothing was lost: every input sample is in the
output or in ``removed.parquet``, and every new sample names its parent.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine import tracking
from pixelpipe.engine.compile import DATA_DIR, REPORTS_DIR, plot_file
from pixelpipe.engine.context import StageContext
from pixelpipe.engine.executor import make_executor
from pixelpipe.engine.itemcache import ItemCache, code_version
from pixelpipe.engine.loader import DEFAULT_PIPELINE, PARAMS_FILE, PlannedStage, load_pipeline
from pixelpipe.engine.stage import StageResult
from pixelpipe.engine.workspace import clean_leftovers
from pixelpipe.errors import PixelpipeError


def swap_into_place(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` with renames only; never leaves half a directory."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_accounting(planned: PlannedStage, inputs: list[Dataset], result: StageResult) -> None:
    """Every sample read is kept or removed; every new sample is derived from a parent.

    A kind's reference inputs (:attr:`~pixelpipe.engine.stage.StageKind.references`, the
    last ones) are only read: their samples are not counted.

    Raises:
        PixelpipeError: Naming the samples the stage lost or invented.
    """
    out = result.output.samples_table()
    removed = result.output.removed_table()
    out_ids = out.column("id").to_pylist()
    removed_ids = removed.column("id").to_pylist()
    name = planned.name
    if planned.kind.is_source:
        expected = result.expected
        if expected is not None and expected != len(out_ids) + len(removed_ids):
            raise PixelpipeError(
                f"stage '{name}': found {expected} items but kept {len(out_ids)} and removed "
                f"{len(removed_ids)}; every item must be kept or removed with a reason"
            )
        both = set(out_ids) & set(removed_ids)
        if both:
            raise PixelpipeError(f"stage '{name}': ids both kept and removed: {sorted(both)[:5]}")
        return
    seen: Counter[str] = Counter()
    for dataset in inputs[: len(inputs) - planned.kind.references]:
        seen.update(dataset.table.column("id").to_pylist())
    accounted = Counter(out_ids) + Counter(removed_ids)
    lost = sorted((seen - accounted).elements())
    if lost:
        raise PixelpipeError(
            f"stage '{name}': {len(lost)} input samples neither kept nor removed "
            f"(first: {', '.join(lost[:5])}); in = out + removed must hold"
        )
    extra = accounted - seen
    parents = dict(zip(out_ids, out.column("parent").to_pylist(), strict=True))
    orphans = sorted(i for i in extra if parents.get(i) is None)
    if orphans:
        raise PixelpipeError(
            f"stage '{name}': {len(orphans)} samples neither read nor derived from a parent "
            f"(first: {', '.join(orphans[:5])})"
        )


def split_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Numbers (for ``reports/<stage>.json``) apart from everything else (for ``dataset.json``).

    Nested mappings keep their shape on both sides; a mapping with no numbers is left out of
    the first, one with only numbers out of the second. Booleans are not numbers here.
    """
    numbers: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            inner_numbers, inner_notes = split_metrics(value)
            if inner_numbers or not value:
                numbers[key] = inner_numbers
            if inner_notes:
                notes[key] = inner_notes
        elif isinstance(value, int | float) and not isinstance(value, bool):
            numbers[key] = value
        else:
            notes[key] = value
    return numbers, notes


def check_plots(planned: PlannedStage, result: StageResult) -> dict[str, list[dict[str, Any]]]:
    """The rows of every plot the kind declares, in name order.

    Raises:
        PixelpipeError: When the step returned rows for an undeclared plot or none for a
            declared one (a bug in the stage).
    """
    declared, returned = set(planned.kind.plots), set(result.plots)
    if declared != returned:
        raise PixelpipeError(
            f"stage '{planned.name}' ({planned.spec.kind}): plots declared "
            f"{sorted(declared)} but returned {sorted(returned)}"
        )
    return {name: result.plots[name] for name in sorted(declared)}


def run_stage(
    root: Path,
    name: str,
    pipeline_file: str = DEFAULT_PIPELINE,
    executor: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run the stage ``name`` of the pipeline and write its output and metrics.

    Args:
        root: The project root.
        name: The stage name.
        pipeline_file: Pipeline file, relative to ``root``.
        executor: Executor spec (see :func:`pixelpipe.engine.executor.make_executor`).
        workers: Worker count.

    Returns:
        The stage's metrics with the counts: the numbers among them are written to
        ``reports/<stage>.json``, the rest (names, digests) to ``dataset.json``.
    """
    pipeline = load_pipeline(root, pipeline_file)
    planned = pipeline.stage(name)
    mlflow_run = tracking.StageRun(pipeline, planned)  # the MLflow run of this stage
    log = logging.getLogger(f"pixelpipe.{name}")
    data_dir = root / DATA_DIR
    for leftover in clean_leftovers(data_dir):  # of every stage: see engine.workspace
        log.info("%s", leftover)
    inputs = [Dataset(data_dir / source) for source in planned.spec.inputs]
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pool = make_executor(executor, workers)
    cache = ItemCache(root, code_version(planned.kind.step.__module__))
    try:
        ctx = StageContext(
            stage=name,
            kind=planned.spec.kind,
            root=root,
            output_dir=tmp,
            final_dir=f"{DATA_DIR}/{name}",
            configs={k: root / v for k, v in planned.spec.configs.items()},
            seed=int(getattr(planned.params, "seed", 0)),
            executor=pool,
            log=log,
            cache=cache,
        )
        log.info("running %s (%s) with %d worker(s)", name, planned.spec.kind, pool.workers)
        try:
            result = planned.kind.step(inputs, planned.params, ctx)
        except PixelpipeError as exc:
            raise _in_params_file(exc, pipeline.params_file) from None
        check_accounting(planned, inputs, result)
        plots = check_plots(planned, result)
        numbers, notes = split_metrics(result.metrics)
        info = write_dataset(
            tmp,
            result.output,
            stage=name,
            kind=planned.spec.kind,
            params=planned.params.model_dump(mode="json"),
            inputs={
                source: ds.digest for source, ds in zip(planned.spec.inputs, inputs, strict=True)
            },
            notes=notes,
        )
        swap_into_place(tmp, data_dir / name)
    finally:
        pool.close()
        cache.close()
        shutil.rmtree(tmp, ignore_errors=True)
    for namespace, stats in sorted(cache.stats.items()):
        log.info(
            "%s: %s: %d reused from the item cache, %d computed",
            name,
            namespace,
            stats.hits,
            stats.computed,
        )
    counts = info["counts"]
    report = {**numbers, **counts}
    mlflow_run.log(inputs, info, report)  # run id -> reports/runs/ (untracked); raises if it fails
    write_json_atomic(root / REPORTS_DIR / f"{name}.json", report)
    for plot, rows in plots.items():
        write_json_atomic(root / plot_file(name, plot), rows)
    reasons = ", ".join(f"{k}: {v}" for k, v in counts["removed_by_reason"].items())
    log.info(
        "%s: %d samples, %d removed%s -> %s/%s (%s)",
        name,
        counts["samples"],
        counts["removed"],
        f" ({reasons})" if reasons else "",
        DATA_DIR,
        name,
        info["digest"][:19],
    )
    return {**result.metrics, **report, "digest": info["digest"]}


def _in_params_file(error: PixelpipeError, params_file: str) -> PixelpipeError:
    """A step's problems with its params, pointed at the pipeline's own params file.

    Steps name ``params.yaml`` (they do not know the pipeline); a pipeline with a
    ``params:`` key keeps its values elsewhere.
    """
    if params_file == PARAMS_FILE:
        return error
    return PixelpipeError(
        [replace(p, file=params_file) if p.file == PARAMS_FILE else p for p in error.problems]
    )
