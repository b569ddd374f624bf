"""Validate: check images and labels against a YAML rule set; quarantine, fix or warn."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
from pydantic import Field

from pixelpipe import (
    Annotation,
    Dataset,
    DatasetBuilder,
    Dependency,
    PixelpipeError,
    Plot,
    Problem,
    StageContext,
    StageParams,
    StageResult,
    stage,
)
from pixelpipe.dataset import write_parquet
from pixelpipe.taxonomy import check as check_taxonomy
from pixelpipe.taxonomy import load as load_taxonomy
from stages._validate.checking import Converted, ImageWork
from stages._validate.classes import check_classes
from stages._validate.findings import Box, Finding
from stages._validate.images import ImageConfig, ImageReport
from stages._validate.labels import check_labels
from stages._validate.report import ReportData, placeholder, render
from stages._validate.rules import CRASH, ORDER, TAXONOMY_RULES, TIMEOUT, DeclaredSize
from stages._validate.ruleset import RuleSet, load_ruleset
from stages._validate.tasks import ThumbTask
from stages._validate.taxonomy import ClassPlan, level_counts, plan_classes
from stages._validate.workers import release

WARNINGS_COLUMN = "validate_warnings"
"""Manifest column: ids of the rules that warned about a kept sample."""
FIXES_COLUMN = "validate_fixes"
"""Manifest column: one ``rule: what changed`` line per fix applied to a kept sample."""
REPORT_FILE = "report.html"
FINDINGS_FILE = "findings.parquet"
FINDINGS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("annotation", pa.int64()),
    ]
)
_NOT_DRAWN = (TIMEOUT, CRASH, "max_pixels")


class Params(StageParams):
    """Params of the ``validate`` stage (the rules themselves live in the rule-set file)."""

    time_limit: float = Field(default=60.0, gt=0)
    """Seconds one image's check may take before its worker is killed (reason ``timeout``)."""
    memory_limit_mb: int = Field(default=4096, ge=0)
    """MiB of address space a checking worker may add to its start-up size; 0: no limit."""
    report_examples: int = Field(default=24, ge=0)
    """Thumbnails per rule in ``report.html``; further samples are listed without one."""
    thumbnail_size: int = Field(default=192, ge=32, le=1024)
    """Longest side of report thumbnails, in pixels."""
    taxonomy: Annotated[str, Dependency(check=check_taxonomy)] = ""
    """A class hierarchy (``configs/taxonomy/<name>.yaml``) for the rules ``unknown_class``,
    ``renamed_class`` and ``not_leaf``, the class map's parents and the metrics per level;
    empty: none (those rules are off)."""


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _write_findings(path: Path, rows: list[dict[str, Any]]) -> None:
    write_parquet(pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA), path)


def _output_schema(table: pa.Table) -> pa.Schema:
    fields = [f for f in table.schema if f.name not in (WARNINGS_COLUMN, FIXES_COLUMN)]
    return pa.schema(
        [
            *fields,
            pa.field(WARNINGS_COLUMN, pa.list_(pa.string())),
            pa.field(FIXES_COLUMN, pa.list_(pa.string())),
        ]
    )


def _visible(
    boxes: tuple[tuple[Box, str], ...], pixels_per_dot: float
) -> tuple[tuple[Box, str], ...]:
    """The boxes, each tiny one (under 6 thumbnail pixels) ringed by a 24-pixel square."""
    out: list[tuple[Box, str]] = []
    for (x, y, w, h), label in boxes:
        if max(w, h) / pixels_per_dot < 6 and all(math.isfinite(v) for v in (x, y, w, h)):
            side = 24 * pixels_per_dot
            out.append(((x + w / 2 - side / 2, y + h / 2 - side / 2, side, side), label))
            label = ""
        out.append(((x, y, w, h), label))
    return tuple(out)


def _box_label(finding: Finding) -> tuple[tuple[Box, str], ...]:
    return tuple(
        (box, finding.labels[i] if i < len(finding.labels) else "")
        for i, box in enumerate(finding.boxes)
    )


@stage(
    "validate",
    params=Params,
    configs={"rules": "the validation rule set, e.g. configs/validation/default.yaml"},
    config_checks={"rules": load_ruleset},
    plots={"findings": Plot(x="findings", y="rule", title="findings per rule")},
)
def validate(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
    """Check images and labels against a rule set; quarantine errors, apply fixes, report.

    The rule set (``configs/validation/*.yaml``, see ``docs/validate.md``) names image
    rules (decode, size, colour mode, blur...), label rules (boxes inside the image,
    polygons, RLE, duplicates...) and dataset rules (instances per class...), each with
    severity ``error`` (quarantine the sample: ``removed.parquet`` gets the rule id as
    reason), ``warn`` (keep it, list the rule in ``validate_warnings``) or ``fix`` (apply
    the rule's fix, recorded in ``validate_fixes``). A dataset rule with severity
    ``error`` fails the stage. With a ``taxonomy`` (``configs/taxonomy/*.yaml``, see
    ``docs/taxonomy.md``), the rules ``unknown_class``, ``renamed_class`` (fix: rename a
    synonym to its class, merging two classes into one) and ``not_leaf`` check the class
    names, every class takes its parent from the taxonomy, and the metrics count the
    instances per level (``taxonomy.level_1.vehicle``). Each image is checked on the
    executor's workers, in a process of the worker's own with a time and memory limit: a
    file that hangs or crashes its decoder is quarantined as ``timeout`` or ``crash``. An
    image checked by an earlier run with the same image rules is not read again (the
    per-item cache).
    Writes ``findings.parquet`` (every finding) and ``report.html`` (failures grouped by
    rule, with thumbnails and the offending boxes drawn) into the output.

    ```yaml
    # pipelines/default.yaml
    stages:
      validate:
        kind: validate
        inputs: dedupe
        configs:
          rules: configs/validation/default.yaml
    # params.yaml
    validate:
      time_limit: 60.0        # seconds per image before its worker is killed
      memory_limit_mb: 4096   # per checking worker; 0 for no limit
      report_examples: 24     # thumbnails per rule in report.html
      thumbnail_size: 192
      taxonomy: ""            # e.g. configs/taxonomy/demo.yaml
    ```
    """
    (dataset,) = inputs
    rules_path = ctx.configs["rules"]
    ruleset = load_ruleset(rules_path, _shown(rules_path, ctx.root))
    plan = None
    if params.taxonomy:  # a bad file stops the stage before any image is read
        file = Path(params.taxonomy).expanduser()
        taxonomy = load_taxonomy(file if file.is_absolute() else ctx.root / file, params.taxonomy)
        plan = plan_classes(taxonomy, dataset.categories, ruleset.rules)
    else:
        ruleset = ruleset.without(TAXONOMY_RULES)
    rows = dataset.table.to_pylist()
    image_rules = {rule.ID: rule for rule in ruleset.scoped("image")}
    opens_files = bool(image_rules) or DeclaredSize.ID in ruleset.rules
    work = ImageWork(
        ctx,
        ImageConfig(image_rules, params.thumbnail_size),
        time_limit=params.time_limit,
        memory_limit_mb=params.memory_limit_mb,
    )
    try:
        reports, placed = work.check(rows) if opens_files else (None, {})
        return _decide(ctx, params, work, dataset, ruleset, plan, rows, reports, placed)
    finally:
        release()  # the guarded process of this process, when the executor ran work here


def _decide(
    ctx: StageContext,
    params: Params,
    work: ImageWork,
    dataset: Dataset,
    ruleset: RuleSet,
    plan: ClassPlan | None,
    rows: list[dict[str, Any]],
    reports: list[ImageReport] | None,
    placed: dict[Converted, str],
) -> StageResult:
    """Apply the label and dataset rules, build the output, write the report."""
    table = dataset.table
    categories = plan.categories if plan is not None else dataset.categories
    tally = _Tally(ruleset, {c.id: c.name for c in categories}, placed, plan)
    out = DatasetBuilder(categories)
    for index, row in enumerate(rows):
        report = reports[index] if reports is not None else ImageReport()
        errors = tally.add(row, report, opened=reports is not None)
        if errors:
            failed = sorted({f.rule for f in errors}, key=ORDER.__getitem__)
            first = next(f for f in errors if f.rule == failed[0])
            also = f" (also failed: {', '.join(failed[1:])})" if len(failed) > 1 else ""
            out.remove(
                row["id"], failed[0], first.message + also, source=row["source"], rules=failed
            )
    if tally.kept:
        out.add_table(pa.Table.from_pylist(tally.kept, schema=_output_schema(table)))
    _drop_unused_conversions(ctx, tally.converted)

    class_findings = check_classes(ruleset.rules, categories, tally.instances)
    for found in class_findings:
        tally.counts.setdefault(found.rule, Counter())[found.severity] += len(found.classes)
        log = ctx.log.error if found.severity == "error" else ctx.log.warning
        log("%s: %s", found.rule, found.message)
    failures = [f for f in class_findings if f.severity == "error"]
    if failures:
        raise PixelpipeError(
            [
                Problem(
                    f"dataset rule failed: {f.message}",
                    file=ruleset.file,
                    line=ruleset.lines.get(f.rule),
                    key=f"rules.{f.rule}",
                )
                for f in failures
            ]
        )

    entries = {
        rule: sorted(tally.groups[rule].items())
        for rule in sorted(tally.groups, key=ORDER.__getitem__)
    }
    _write_findings(ctx.output_dir / FINDINGS_FILE, tally.finding_rows)
    summary = ReportData(
        stage=ctx.stage,
        ruleset=ruleset,
        checked=len(rows),
        kept=len(tally.kept),
        removed=len(rows) - len(tally.kept),
        warned=tally.warned,
        fixed=tally.fixed,
        counts={r: dict(sorted(c.items())) for r, c in tally.counts.items()},
        groups=entries,
        thumbs=_thumbnails(params, work, rows, entries, tally.not_drawn),
        classes=tally.class_counts(),
        unknown_classes=tally.unknown_classes(),
        class_findings=class_findings,
        stats=tally.stats,
        examples=params.report_examples,
    )
    (ctx.output_dir / REPORT_FILE).write_text(render(summary), encoding="utf-8")
    ctx.log.info(
        "%s: %d checked, %d kept (%d with warnings, %d fixed), %d quarantined; report: %s",
        ruleset.file,
        summary.checked,
        summary.kept,
        summary.warned,
        summary.fixed,
        summary.removed,
        f"{ctx.final_dir}/{REPORT_FILE}",
    )
    metrics, findings = _metrics(summary)
    if plan is not None:
        metrics["taxonomy_file"] = plan.taxonomy.source
        metrics["taxonomy"] = level_counts(plan.taxonomy, summary.classes)
    return StageResult(output=out, metrics=metrics, plots={"findings": findings})


def _metrics(summary: ReportData) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``reports/validate.json`` (totals, the class distribution) and the findings plot.

    The plot has a row per rule and severity, every rule of the rule set included (zero
    findings too), in the rule order of ``docs/validate.md``.
    """
    rules = summary.ruleset.rules
    per_rule = {
        rule: dict(summary.counts.get(rule, {})) or {rules[rule].severity: 0}
        for rule in sorted({*summary.counts, *rules}, key=ORDER.__getitem__)
        if summary.counts.get(rule) or rule in rules
    }
    metrics: dict[str, Any] = {
        "rule_set": summary.ruleset.file,
        "checked": summary.checked,
        "kept": summary.kept,
        "quarantined": summary.removed,
        "warned": summary.warned,
        "fixed": summary.fixed,
        "classes": dict(summary.classes),
    }
    if summary.unknown_classes:
        metrics["unknown_classes"] = {str(k): v for k, v in summary.unknown_classes.items()}
    findings = [
        {"rule": rule, "severity": severity, "findings": count}
        for rule, counts in per_rule.items()
        for severity, count in sorted(counts.items())
    ]
    return metrics, findings


class _Tally:
    """What the stage found and decided, sample by sample.

    Args:
        ruleset: The rule set.
        categories: The output class map, id -> name.
        placed: Manifest path of each colour-converted copy in the output.
        plan: What the taxonomy rules do to each class, when there is a taxonomy.
    """

    def __init__(
        self,
        ruleset: RuleSet,
        categories: dict[int, str],
        placed: dict[Converted, str],
        plan: ClassPlan | None,
    ) -> None:
        self.ruleset = ruleset
        self.categories = categories
        self.placed = placed
        self.plan = plan
        self.counts: dict[str, Counter[str]] = {name: Counter() for name in ruleset.rules}
        self.groups: dict[str, dict[str, list[Finding]]] = {}
        self.finding_rows: list[dict[str, Any]] = []
        self.kept: list[dict[str, Any]] = []
        self.converted: set[str] = set()
        self.not_drawn: set[str] = set()
        self.instances: Counter[int] = Counter()
        self.stats: dict[str, list[float]] = {"blur": [], "mean": [], "std": []}
        self.warned = 0
        self.fixed = 0

    def add(self, row: dict[str, Any], report: ImageReport, opened: bool) -> list[Finding]:
        """Apply the label rules to one sample and record everything found.

        Returns:
            The sample's ``error`` findings; when there are none, the sample (fixed as
            needed) has been added to :attr:`kept`.
        """
        actual = None
        if report.width is not None and report.height is not None:
            actual = (report.width, report.height)
        annotations = [Annotation.from_row(a) for a in row["annotations"] or []]
        named: list[Finding] = []
        if self.plan is not None:  # the taxonomy rules, first: they re-point merged classes
            annotations, named = self.plan.check(annotations)
        labels = check_labels(
            self.ruleset.rules,
            annotations,
            declared=(row["width"], row["height"]),
            actual=actual,
            categories=self.categories,
        )
        findings = sorted(report.findings + named + labels.findings, key=lambda f: ORDER[f.rule])
        for key, value in report.stats.items():
            self.stats[key].append(value)
        if (opened and actual is None) or any(f.rule in _NOT_DRAWN for f in findings):
            self.not_drawn.add(row["id"])  # never opened again, not even for a thumbnail
        for finding in findings:
            self.counts.setdefault(finding.rule, Counter())[finding.severity] += 1
            self.groups.setdefault(finding.rule, {}).setdefault(row["id"], []).append(finding)
            self.finding_rows.append(
                {
                    "id": row["id"],
                    "rule": finding.rule,
                    "severity": finding.severity,
                    "message": finding.message,
                    "annotation": finding.annotation,
                }
            )
        errors = [f for f in findings if f.severity == "error"]
        if errors:
            return errors
        fixes = [f for f in findings if f.severity == "fix"]
        warnings = sorted({f.rule for f in findings if f.severity == "warn"}, key=ORDER.__getitem__)
        self.warned += bool(warnings)
        self.fixed += bool(fixes)
        new = dict(row)
        new[WARNINGS_COLUMN] = warnings
        new[FIXES_COLUMN] = [f"{f.rule}: {f.message}" for f in fixes]
        if any(self.ruleset.rules[f.rule].SCOPE == "label" for f in fixes):
            new["annotations"] = [a.to_row() for a in labels.annotations]
            new["width"], new["height"] = labels.width, labels.height
        if report.converted is not None:
            new["image"], new["sha256"] = self.placed[report.converted], report.converted[0]
            self.converted.add(new["image"])
        self.instances.update(a.category_id for a in labels.annotations)
        self.kept.append(new)
        return []

    def class_counts(self) -> dict[str, int]:
        """Instances per class of the class map in the kept samples (0 included)."""
        return {name: self.instances.get(cid, 0) for cid, name in sorted(self.categories.items())}

    def unknown_classes(self) -> dict[int, int]:
        """Instances per category id that is not in the class map."""
        return {c: n for c, n in sorted(self.instances.items()) if c not in self.categories}


def _drop_unused_conversions(ctx: StageContext, kept: set[str]) -> None:
    """Delete converted images of samples that were quarantined after all."""
    folder = ctx.output_dir / "images"
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if (
            path.is_file()
            and f"{ctx.final_dir}/{path.relative_to(ctx.output_dir).as_posix()}" not in kept
        ):
            path.unlink()
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def _thumbnails(
    params: Params,
    work: ImageWork,
    rows: list[dict[str, Any]],
    entries: dict[str, list[tuple[str, list[Finding]]]],
    not_drawn: set[str],
) -> dict[tuple[str, str], str]:
    """Thumbnails of the first samples of each rule, drawn by guarded workers."""
    row_of = {row["id"]: row for row in rows}
    thumbs: dict[tuple[str, str], str] = {}
    keys: list[tuple[str, str]] = []
    tasks: list[ThumbTask] = []
    for rule, samples in entries.items():
        for sample_id, findings in samples[: params.report_examples]:
            if sample_id in not_drawn:
                reason = next((f.rule for f in findings if f.rule in _NOT_DRAWN), None)
                thumbs[(rule, sample_id)] = placeholder(f"not drawn: {reason or 'unreadable'}")
                continue
            scale = max(row_of[sample_id]["width"], row_of[sample_id]["height"], 1)
            boxes = tuple(
                b for f in findings for b in _visible(_box_label(f), scale / params.thumbnail_size)
            )
            row = row_of[sample_id]
            keys.append((rule, sample_id))
            tasks.append(ThumbTask(row["sha256"], row["image"], boxes))
    thumbs.update(zip(keys, work.thumbnails(tasks), strict=True))
    return thumbs
