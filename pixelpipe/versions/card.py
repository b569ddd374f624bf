"""The dataset card: ``data/publish/README.md``, what a person reads first.

It says what the dataset is (name, version, digest), what is in it (counts per split and
class, a class-distribution chart), where it came from (sources, the pipeline and every
stage's params), what was thrown out on the way (removals by stage and reason) and how to
find its MLflow runs.

The card is part of the published output, which DVC caches and hashes, so it is
deterministic: no time, no absolute path of the project, no MLflow run id. A run id is new
on every run, so putting it here would change the output's bytes (and its DVC hash) on a
rerun of the same data; the card names the dataset digest instead, which every run that
made or used this data carries (tag ``pixelpipe.digest``, dataset digest in MLflow), and
the run ids are in the release tag (and, on the machine that ran the stage, in the untracked
run link ``reports/runs/<stage>.json``).

A publish step writes it with::

    write_card(ctx, inputs, out, params)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel

from pixelpipe.dataset import (
    INFO_FILE,
    Dataset,
    DatasetBuilder,
    content_digest,
    pending_digest,
)
from pixelpipe.engine.tracking import MAX_DIGEST, TAG_DIGEST

if TYPE_CHECKING:
    from pixelpipe.engine.context import StageContext

CARD_FILE = "README.md"
BAR_WIDTH = 40
_UNASSIGNED = "unassigned"


def _md(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], right: int = 0) -> list[str]:
    """A Markdown table; the last ``right`` columns are right-aligned."""
    align = ["---"] * (len(header) - right) + ["---:"] * right
    lines = ["| " + " | ".join(_md(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


def bar_chart(values: Sequence[tuple[str, int]], width: int = BAR_WIDTH) -> list[str]:
    """A text bar chart, one line per ``(label, value)``, scaled to the largest value.

    Bars use eighth blocks, so small differences still show. Deterministic.
    """
    if not values:
        return []
    top = max(v for _, v in values) or 1
    label_width = max(len(label) for label, _ in values)
    count_width = max(len(str(v)) for _, v in values)
    total = sum(v for _, v in values)
    lines = []
    for label, value in values:
        eighths = round(value * width * 8 / top)
        bar = "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]
        lines.append(
            f"{label.ljust(label_width)}  {bar.ljust(width)}  {str(value).rjust(count_width)}"
            f"  {_pct(value, total).rjust(6)}"
        )
    return lines


def _chain(inputs: Sequence[Dataset]) -> list[Dataset]:
    """Every dataset upstream of ``inputs`` (inputs included), sources first."""
    found: dict[str, Dataset] = {}
    order: list[str] = []

    def visit(dataset: Dataset) -> None:
        key = dataset.path.name
        if key in found:
            return
        found[key] = dataset
        for upstream in dataset.info.get("inputs") or {}:
            path = dataset.path.parent / upstream
            if (path / INFO_FILE).is_file():
                visit(Dataset(path))
        order.append(key)

    for dataset in inputs:
        visit(dataset)
    return [found[k] for k in order]


def _params(params: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(params, BaseModel):
        return params.model_dump(mode="json")
    return dict(params)


def _default_name(chain: Sequence[Dataset], stage: str) -> str:
    names = []
    for dataset in chain:
        if dataset.info.get("inputs"):
            continue
        source = (dataset.info.get("params") or {}).get("source")
        if isinstance(source, str) and source.strip("/"):
            names.append(PurePosixPath(source.rstrip("/").replace("\\", "/")).name)
    return " + ".join(dict.fromkeys(names)) or stage


def render_card(
    output: DatasetBuilder | Dataset,
    inputs: Sequence[Dataset],
    *,
    stage: str,
    kind: str = "publish",
    params: BaseModel | Mapping[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    output_dir: Path | None = None,
) -> str:
    """The Markdown of a dataset card.

    Args:
        output: The published dataset (the builder a publish step returns, or a written
            dataset).
        inputs: The stage's input datasets; every dataset upstream of them is read
            (``data/<stage>/dataset.json``) for the sources, params and removals.
        stage: The publishing stage's name.
        kind: Its kind.
        params: Its params.
        name: The dataset's name; defaults to the source folders' names, else ``stage``.
        version: The version, when known at publish time; usually it is not (a version is
            the git tag ``pixelpipe release`` puts on the commit holding this data).
        output_dir: The folder a builder's exports are being written to, so the digest
            shown covers them as the final one will.

    Returns:
        The card, ending with a newline; the same bytes for the same data.
    """
    if isinstance(output, Dataset):
        samples, categories = output.table, output.categories
        removed = output.removed()
        digest = output.digest
    else:
        samples = output.samples_table()
        categories = sorted(output.categories, key=lambda c: c.id)
        removed = output.removed_table()
        digest = (
            pending_digest(output_dir, output)
            if output_dir
            else content_digest(samples, categories)
        )
    chain = _chain(inputs)
    own_params = _params(params or {})
    title = name or _default_name(chain, stage)

    per_split: Counter[str] = Counter()
    split_anns: Counter[str] = Counter()
    instances: Counter[tuple[int, str]] = Counter()
    images_with: Counter[int] = Counter()
    batches = samples.select(["split", "annotations"]).to_batches(max_chunksize=4096)
    for row in (row for batch in batches for row in batch.to_pylist()):  # bounded memory
        split = row["split"] or _UNASSIGNED
        per_split[split] += 1
        anns = row["annotations"] or []
        split_anns[split] += len(anns)
        for cat in {int(a["category_id"]) for a in anns}:
            images_with[cat] += 1
        for ann in anns:
            instances[(int(ann["category_id"]), split)] += 1
    splits = sorted(per_split, key=lambda s: (s == _UNASSIGNED, s))
    total_anns = sum(split_anns.values())
    names = {c.id: c.name for c in categories}
    cat_ids = sorted(set(names) | {c for c, _ in instances})
    per_class = {c: sum(instances[(c, s)] for s in splits) for c in cat_ids}

    lines = [f"# {title}", ""]
    lines.append(
        f"<!-- Written by pixelpipe (stage `{stage}`, kind `{kind}`) on every run; "
        "do not edit by hand. -->"
    )
    lines.append("")
    summary = [
        (
            "Version",
            f"`{version}`"
            if version
            else "not released in this file: a version is the git tag `pixelpipe release` puts "
            "on the commit holding this data; `pixelpipe versions` lists them with this digest",
        ),
        ("Digest", f"`{digest}`"),
        ("Images", f"{samples.num_rows}"),
        ("Annotations", f"{total_anns}"),
        ("Classes", f"{len(categories)}"),
        ("Splits", ", ".join(f"{s} {per_split[s]}" for s in splits) or "none"),
    ]
    lines += _table(["", ""], summary)

    lines += ["", "## Splits", ""]
    lines += _table(
        ["split", "images", "annotations", "share of images"],
        [(s, per_split[s], split_anns[s], _pct(per_split[s], samples.num_rows)) for s in splits],
        right=3,
    )

    lines += ["", "## Classes", ""]
    header = ["id", "class", *(f"{s}" for s in splits), "instances", "images", "share"]
    class_rows = []
    for cat in cat_ids:
        class_rows.append(
            (
                cat,
                names.get(cat, "(not in class map)"),
                *(instances[(cat, s)] for s in splits),
                per_class[cat],
                images_with[cat],
                _pct(per_class[cat], total_anns),
            )
        )
    lines += _table(header, class_rows, right=len(splits) + 3)
    lines += ["", "Instances per split; *images* counts the images with at least one."]

    lines += ["", "## Class distribution", "", "```text"]
    lines += bar_chart([(names.get(c, str(c)), per_class[c]) for c in cat_ids])
    lines += ["```"]

    lines += ["", "## Sources", ""]
    sources = [d for d in chain if not d.info.get("inputs")]
    if sources:
        source_rows = []
        for dataset in sources:
            info = dataset.info
            p = info.get("params") or {}
            where = p.get("source", "")
            fmt = p.get("format", "")
            counts = info.get("counts") or {}
            source_rows.append(
                (
                    f"`{info.get('stage')}` ({info.get('kind')})",
                    f"`{where}`" if where else "",
                    fmt,
                    counts.get("samples", ""),
                    counts.get("removed", ""),
                )
            )
        lines += _table(["stage", "source", "format", "kept", "removed"], source_rows, right=2)
    else:
        lines.append("No source stage upstream.")

    lines += ["", "## Pipeline", ""]
    steps = [f"`{d.info.get('stage')}` ({d.info.get('kind')})" for d in chain]
    steps.append(f"`{stage}` ({kind})")
    lines.append(" → ".join(steps))
    all_params: dict[str, Any] = {
        str(d.info.get("stage")): d.info.get("params") or {} for d in chain
    }
    all_params[stage] = own_params
    lines += ["", "Params of each stage (`params.yaml`):", "", "```yaml"]
    lines += yaml.safe_dump(
        all_params, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    ).splitlines()
    lines += ["```"]

    lines += ["", "## Removed samples", ""]
    removal_rows: list[tuple[str, str, int]] = []
    for dataset in chain:
        by_reason = (dataset.info.get("counts") or {}).get("removed_by_reason") or {}
        removal_rows += [(str(dataset.info.get("stage")), r, int(n)) for r, n in by_reason.items()]
    own = Counter(removed.column("reason").to_pylist()) if removed.num_rows else Counter()
    removal_rows += [(stage, r, n) for r, n in sorted(own.items())]
    if removal_rows:
        lines += _table(["stage", "reason", "samples"], removal_rows, right=1)
        lines += [
            "",
            "Each stage's `removed.parquet` (in `data/<stage>/`) lists every removed sample "
            "with its reason and detail.",
        ]
    else:
        lines.append("No sample was removed.")

    lines += ["", "## MLflow", ""]
    lines.append(
        f"Every stage run is an MLflow run. The runs that made this data carry the tag "
        f"`{TAG_DIGEST} = {digest}` and log it as their output dataset with digest "
        f"`{digest[:MAX_DIGEST]}`; training runs that log it with "
        "`pixelpipe.lineage.log_dataset` carry the same dataset digest. Find them with:"
    )
    lines += [
        "",
        "```python",
        "import mlflow",
        "",
        "mlflow.search_runs(",
        "    search_all_experiments=True,",
        f"    filter_string=\"dataset.digest = '{digest[:MAX_DIGEST]}'\",",
        ")",
        "```",
        "",
        f"The run id of `{stage}` is in the release tag (`pixelpipe versions --json`) and, "
        f"on the machine that ran it, in `reports/runs/{stage}.json` (tracked by neither git "
        "nor DVC); it is not written here, so that a rerun on the same data gives the same "
        "bytes.",
        "",
    ]
    return "\n".join(lines)


def write_card(
    ctx: StageContext,
    inputs: Sequence[Dataset],
    output: DatasetBuilder,
    params: BaseModel | Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
) -> Path:
    """Write the card as ``README.md`` in the stage's output folder.

    Args:
        ctx: The publish step's context.
        inputs: Its input datasets.
        output: The dataset it returns.
        params: Its params.
        name: The dataset's name (see :func:`render_card`).
        version: The version, when known.

    Returns:
        The path written.
    """
    text = render_card(
        output,
        inputs,
        stage=ctx.stage,
        kind=ctx.kind,
        params=params,
        name=name,
        version=version,
        output_dir=ctx.output_dir,
    )
    path = ctx.output_dir / CARD_FILE
    path.write_text(text, encoding="utf-8")
    return path
