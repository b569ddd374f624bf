"""``pixelpipe init|demo``: a new project, and the demo data the default pipeline reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixelpipe.cli.console import clean_data, out

app = typer.Typer()


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write it.")] = Path(
        "data/raw/demo"
    ),
) -> None:
    """Write the demo raw dataset (real photos, COCO labels) where the default pipeline reads."""
    from pixelpipe.project.demo import build

    clean_data()
    summary = build(out_dir)
    out.print(f"wrote {summary['images']} images and {summary['annotations']} boxes to {out_dir}")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Project folder.")] = Path("."),
) -> None:
    """Make a ready project: git and DVC, a default pipeline, params, configs, dvc.yaml."""
    from pixelpipe.project.init import init_project

    for line in init_project(directory):
        out.print(line)
