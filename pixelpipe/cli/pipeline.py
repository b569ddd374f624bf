"""``pixelpipe compile|run|stages|show``: the pipeline, its stages and their outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pixelpipe.cli.console import PipelineOption, clean_data, out, project_root, wide
from pixelpipe.errors import PixelpipeError

app = typer.Typer()


@app.command()
def compile(
    pipeline: PipelineOption = "pipelines/default.yaml",
    check: Annotated[bool, typer.Option(help="Fail when dvc.yaml is not current.")] = False,
) -> None:
    """Validate the pipeline and params, and write dvc.yaml."""
    from pixelpipe.engine.compile import compile_pipeline
    from pixelpipe.engine.loader import load_pipeline

    loaded = load_pipeline(project_root(), pipeline)
    changed = compile_pipeline(loaded, check=check)
    if check:
        out.print(f"dvc.yaml is current with {pipeline}")
    else:
        out.print(f"{'wrote' if changed else 'unchanged:'} dvc.yaml ({len(loaded.stages)} stages)")


@app.command()
def run(
    stage: Annotated[str, typer.Argument(help="Stage name in the pipeline.")],
    pipeline: PipelineOption = "pipelines/default.yaml",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [default: PIXELPIPE_WORKERS or CPUs].")
    ] = None,
    executor: Annotated[
        str | None, typer.Option(help="local, dask, or dask://HOST:PORT [PIXELPIPE_EXECUTOR].")
    ] = None,
) -> None:
    """Run one stage (this is what dvc.yaml calls)."""
    from pixelpipe.engine.runner import run_stage

    run_stage(project_root(), stage, pipeline, executor=executor, workers=workers)


@app.command()
def stages(
    kind: Annotated[str | None, typer.Argument(help="A stage kind to describe.")] = None,
    schema: Annotated[bool, typer.Option(help="Print the params JSON schema.")] = False,
    markdown: Annotated[bool, typer.Option(help="Print the reference as Markdown.")] = False,
) -> None:
    """List the stage kinds and their params, or describe one."""
    from pixelpipe.engine.registry import builtin_names, ensure_on_path, resolve
    from pixelpipe.project.reference import markdown as reference
    from pixelpipe.project.reference import param_rows

    ensure_on_path(str(project_root()))
    if markdown:
        print(reference(), end="")
        return
    if schema:
        if kind is None:
            raise PixelpipeError("--schema needs a KIND: `pixelpipe stages dedupe --schema`")
        out.print_json(json.dumps(resolve(kind).params.model_json_schema()))
        return
    for name in [kind] if kind else builtin_names():
        found = resolve(name)
        table = Table(title=f"[bold]{name}[/]: {found.summary}", title_justify="left")
        for column in ("param", "type", "default", "description"):
            table.add_column(column, overflow="fold")
        for row in param_rows(found):
            table.add_row(*row)
        wide.print(table)
        if kind:
            out.print(found.doc)


@app.command()
def show(path: Annotated[Path, typer.Argument(help="A dataset folder, e.g. data/ingest.")]) -> None:
    """Summarize a dataset: counts, classes, digest, removals; clean up after killed runs."""
    import pyarrow.compute as pc
    from rich.markup import escape

    from pixelpipe.dataset import Dataset

    for leftover in clean_data(announce=False):
        out.print(escape(str(leftover)))
    dataset = Dataset(path)
    info = dataset.info
    counts = info["counts"]
    out.print(f"[bold]{path}[/]  stage {info['stage']} ({info['kind']})  {info['digest']}")
    out.print(
        f"samples {counts['samples']}  annotations {counts['annotations']}  "
        f"removed {counts['removed']}  splits {counts['splits']}"
    )
    per_class: dict[int, int] = {}
    flat = pc.list_flatten(dataset.table.column("annotations"))
    if len(flat):
        for cat in pc.struct_field(flat, "category_id").to_pylist():
            per_class[cat] = per_class.get(cat, 0) + 1
    table = Table("id", "class", "instances", title="classes", title_justify="left")
    for category in dataset.categories:
        table.add_row(str(category.id), category.name, str(per_class.pop(category.id, 0)))
    for unknown, count in sorted(per_class.items()):
        table.add_row(str(unknown), "[red](not in class map)[/]", str(count))
    out.print(table)
    removed = dataset.removed()
    if removed.num_rows:
        table = Table("reason", "id", "detail", title="removed", title_justify="left")
        for row in removed.sort_by([("reason", "ascending"), ("id", "ascending")]).to_pylist():
            table.add_row(row["reason"], row["id"], row["detail"])
        out.print(table)
