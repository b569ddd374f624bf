"""Drift: did the class mix, the boxes or the images change against a reference dataset?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from pixelpipe import (
    Dataset,
    DatasetBuilder,
    PixelpipeError,
    Plot,
    Problem,
    StageContext,
    StageParams,
    StageResult,
    stage,
)
from pixelpipe.imaging.properties import PROPERTIES
from pixelpipe.quality.drift import DriftInputs, Thresholds, compare
from pixelpipe.quality.inputs import QualityInputError
from stages._drift.histograms import DATASETS, Histogram, class_rows, histogram, rows
from stages._drift.inputs import drift_inputs
from stages._drift.properties import measure
from stages._drift.report import render

REPORT_JSON = "drift.json"
"""What ``compare()`` returned, as ``pixelpipe diff A B --stats --json FILE`` writes it."""
REPORT_HTML = "report.html"
BOX_PLOTS = {"per_image": "boxes_per_image", "size": "box_size", "aspect": "box_aspect"}
"""The plot of each box test (``compare()["boxes"]`` key -> plot name)."""
PLOTS = {
    "classes": Plot(x="share", y="class_dataset", title="class shares, reference and current"),
    "boxes_per_image": Plot(x="share", y="bin_dataset", title="boxes per image"),
    "box_size": Plot(x="share", y="bin_dataset", title="box size, sqrt(w*h) in pixels"),
    "box_aspect": Plot(x="share", y="bin_dataset", title="box aspect, w/h"),
    **{
        f"property_{name}": Plot(x="share", y="bin_dataset", title=f"image {name}")
        for name in PROPERTIES
    },
}


class Params(StageParams):
    """Params of the ``drift`` stage."""

    p_value: float = Field(default=0.05, gt=0.0, lt=1.0)
    """Up to ``large`` values on both sides, a test drifts when its p-value is below this
    (Kolmogorov-Smirnov for numbers, chi-squared for the class mix)."""
    numeric_effect: float = Field(default=0.1, ge=0.0)
    """Above ``large`` values, a number drifts when the Wasserstein distance divided by the
    reference's standard deviation is at least this."""
    class_effect: float = Field(default=0.1, ge=0.0, le=1.0)
    """Above ``large`` instances, the class mix drifts when the Jensen-Shannon distance
    (base 2) of the class shares is at least this."""
    large: int = Field(default=1000, ge=0)
    """The sample size above which the effect size decides instead of the p-value
    (Evidently's default)."""
    properties: bool = True
    """Compare image properties (width, height, aspect, brightness, RMS contrast, mean R/G/B,
    blur, JPEG quality), each image measured once and cached by its sha256."""
    fail_on_drift: bool = False
    """Fail the stage (and so CI) when anything drifted, naming what."""

    def thresholds(self) -> Thresholds:
        """The thresholds these params give."""
        return Thresholds(
            p_value=self.p_value,
            numeric_effect=self.numeric_effect,
            class_effect=self.class_effect,
            large=self.large,
        )


@stage("drift", params=Params, inputs=2, plots=PLOTS, references=1)
def drift(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Compare a dataset with a reference; the dataset passes through unchanged.

    The first input is the dataset to check, the second the reference. Tested, each with
    its statistic, p-value, effect size and a plain verdict: the class mix by class *name*
    (chi-squared on the counts; Jensen-Shannon distance of the shares), boxes per image,
    box size ``sqrt(w*h)`` and box aspect ``w/h`` (Kolmogorov-Smirnov; Wasserstein distance
    over the reference's standard deviation), and with ``properties`` each image property
    of ``pixelpipe.imaging.properties`` (the same tests). Up to ``large`` values on both
    sides the p-value decides, above it the effect size (Evidently's defaults). Image
    properties are measured once per distinct image (sha256) through the item cache, which
    ``pixelpipe diff A B --stats`` shares. Writes ``drift.json`` (the verdicts, as
    ``pixelpipe diff --stats --json``) and ``report.html`` (the verdicts, class shares and
    overlaid histograms); metrics: per test its statistic, p-value, effect and ``drift``
    (0/1), and ``drifted``; plots: the class shares and a histogram per number, reference
    and current on common bins. ``fail_on_drift`` makes any drift fail the stage.

    ```yaml
    # pipelines/default.yaml
    stages:
      drift:
        kind: drift
        inputs: [split, reference]    # the dataset to check, then the reference
    # params
    drift:
      p_value: 0.05
      numeric_effect: 0.1
      class_effect: 0.1
      large: 1000
      properties: true                # image properties (cached per image by sha256)
      fail_on_drift: false            # true: the stage fails (CI) naming what drifted
    ```
    """
    current, reference = inputs
    notes: list[str] = []
    values: list[dict[str, np.ndarray]] = [{}, {}]
    if params.properties:
        measured = measure(
            [reference.table, current.table],
            [_project_of(reference), _project_of(current)],
            DATASETS,
            ctx,
        )
        values = measured.values
        if measured.failed:
            shown = "; ".join(f"{side} {sid}: {why}" for side, sid, why in measured.errors)
            notes.append(
                f"{measured.failed} image(s) could not be read; their properties are left "
                f"out (first: {shown})"
            )
            ctx.log.warning("%s: %s", ctx.stage, notes[-1])
    ref = drift_inputs(reference.table, reference.categories, values[0])
    cur = drift_inputs(current.table, current.categories, values[1])
    try:
        result = compare(ref, cur, params.thresholds())
    except QualityInputError as exc:  # the manifests are checked when written: a bug
        raise PixelpipeError(f"{ctx.stage}: cannot compare the datasets: {exc}") from None
    found = histograms(ref, cur, result)
    (ctx.output_dir / REPORT_JSON).write_text(
        json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    thresholds = params.model_dump(include={"p_value", "numeric_effect", "class_effect", "large"})
    (ctx.output_dir / REPORT_HTML).write_text(
        render(f"Drift: {ctx.stage}", result, found, thresholds, notes), encoding="utf-8"
    )
    ctx.log.info(
        "%s: %s", ctx.stage, f"drift in {', '.join(result['drift'])}" if result["drift"] else "none"
    )
    if params.fail_on_drift and result["drift"]:
        raise PixelpipeError(
            Problem(
                f"drift against the reference in {summary(result)}",
                file="params.yaml",
                key=f"{ctx.stage}.fail_on_drift",
            )
        )
    out = DatasetBuilder(current.categories)
    out.add_table(current.table)
    return StageResult(output=out, metrics=metrics_of(result), plots=plots_of(found))


def _project_of(dataset: Dataset) -> Path:
    """The project a dataset's image paths are relative to (``<root>/data/<stage>``)."""
    return dataset.path.resolve().parent.parent


def summary(result: dict[str, Any]) -> str:
    """What drifted, one item per test with its rule: ``classes (chi_squared p=0.0012)``."""
    parts = []
    for name in result["drift"]:
        group, _, key = name.partition(".")
        verdict = result[group] if not key else result[group][key]
        value = (
            f"p={verdict['p_value']:.2g}"
            if verdict["test"] in ("ks", "chi_squared")
            else f"effect={verdict['effect']:.3g}"
        )
        parts.append(f"{name} ({verdict['test']} {value})")
    return ", ".join(parts)


def histograms(ref: DriftInputs, cur: DriftInputs, result: dict[str, Any]) -> dict[str, Histogram]:
    """The histogram of the class shares and of every number compared, by test name."""
    shares = result["classes"]["shares"]
    names = sorted(shares)
    found = {
        "classes": Histogram(
            names,
            [shares[n]["share_reference"] or 0.0 for n in names],
            [shares[n]["share_current"] or 0.0 for n in names],
            (result["classes"]["reference"], result["classes"]["current"]),
        ),
        "boxes.per_image": histogram(ref.boxes_per_image, cur.boxes_per_image),
        "boxes.size": histogram(ref.box_size, cur.box_size),
        "boxes.aspect": histogram(ref.box_aspect, cur.box_aspect),
    }
    empty = np.zeros(0)
    for name in result["properties"]:
        found[f"properties.{name}"] = histogram(
            ref.properties.get(name, empty), cur.properties.get(name, empty)
        )
    return found


def plots_of(found: dict[str, Histogram]) -> dict[str, list[dict[str, Any]]]:
    """The rows of every declared plot (none for a number that was not compared)."""
    plots: dict[str, list[dict[str, Any]]] = {name: [] for name in PLOTS}
    classes = found["classes"]
    plots["classes"] = class_rows(
        {
            name: {"share_reference": r, "share_current": c}
            for name, r, c in zip(classes.labels, classes.reference, classes.current, strict=True)
        }
    )
    for key, plot in BOX_PLOTS.items():
        plots[plot] = rows(found[f"boxes.{key}"])
    for name in PROPERTIES:
        if f"properties.{name}" in found:
            plots[f"property_{name}"] = rows(found[f"properties.{name}"])
    return plots


def metrics_of(result: dict[str, Any]) -> dict[str, Any]:
    """Numbers only: per test its statistic, p-value, effect and drift (0/1); ``drifted``."""

    def numbers(verdict: dict[str, Any]) -> dict[str, Any]:
        out = {k: verdict[k] for k in ("statistic", "p_value", "effect") if verdict[k] is not None}
        out["drift"] = int(bool(verdict["drift"]))
        return out

    return {
        "drifted": len(result["drift"]),
        "classes": numbers(result["classes"]),
        "boxes": {key: numbers(verdict) for key, verdict in result["boxes"].items()},
        "properties": {key: numbers(verdict) for key, verdict in result["properties"].items()},
    }
