"""``pixelpipe review import``: a review tool's export back into the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixelpipe.cli.console import PipelineOption, out, project_root
from pixelpipe.errors import PixelpipeError

app = typer.Typer(name="review", help="Reviews of routed labels: import a tool's export.")
ROUTING_KIND = "route"


@app.command("import")
def import_(
    export: Annotated[Path, typer.Argument(help="A Label Studio JSON export or a CVAT XML file.")],
    stage: Annotated[
        str | None, typer.Option(help="The routing stage (default: the pipeline's only one).")
    ] = None,
    pipeline: PipelineOption = "pipelines/default.yaml",
    reviewer: Annotated[
        str | None, typer.Option(help="CVAT: the reviewer's name (default: the file's stem).")
    ] = None,
    source_format: Annotated[
        str, typer.Option("--from", help="auto, labelstudio or cvat.")
    ] = "auto",
) -> None:
    """Check an export against what the stage sent, and keep its reviews for the next run.

    Every image must be one the stage sent, unchanged since; nothing is written otherwise.
    The reviews go to the file the stage's reviewed param names; dvc repro then lets the
    reviewed images through with the reviewer's labels.
    """
    from pixelpipe.engine.compile import DATA_DIR
    from pixelpipe.engine.loader import load_pipeline
    from pixelpipe.review.imports import import_export

    root = project_root()
    loaded = load_pipeline(root, pipeline)
    routing = [s for s in loaded.stages if s.kind.name == ROUTING_KIND]
    if stage is None:
        if len(routing) != 1:
            found = ", ".join(s.name for s in routing) or "none"
            raise PixelpipeError(
                f"{pipeline}: name the routing stage with --stage (stages of kind "
                f"'{ROUTING_KIND}': {found})"
            )
        planned = routing[0]
    else:
        planned = loaded.stage(stage)
        if planned.kind.name != ROUTING_KIND:
            raise PixelpipeError(
                f"--stage {stage}: a stage of kind '{planned.kind.name}', not '{ROUTING_KIND}'"
            )
    reviewed = str(getattr(planned.params, "reviewed", "") or "")
    unset = not reviewed
    if unset:
        reviewed = f"reviews/{planned.name}.json"
    done = import_export(
        export,
        root / DATA_DIR / planned.name,
        root / DATA_DIR / planned.spec.inputs[0],
        root / reviewed,
        reviewed,
        source_format,
        reviewer,
    )
    changes = ", ".join(f"{k} {v}" for k, v in done.changes.items())
    people = ", ".join(f"{k} {v}" for k, v in sorted(done.reviewers.items()))
    out.print(f"imported {done.images} reviewed images ({people}) into {reviewed}")
    out.print(f"  boxes: {changes}")
    out.print(f"  {done.pending} images sent are not reviewed yet")
    if unset:
        out.print(
            f"set `{planned.name}.reviewed: {reviewed}` in {loaded.params_file}, then run "
            "`pixelpipe compile` and `dvc repro` to use these reviews"
        )
    else:
        out.print("run `dvc repro` to use these reviews")
