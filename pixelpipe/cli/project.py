"""``pixelpipe init|demo``: a new project, and the demo data the default pipeline reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixelpipe.cli.console import clean_data, out

app = typer.Typer()


@app.command()
def demo(
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write it [default: data/raw/demo, with --annotators data/raw/review].",
        ),
    ] = None,
    annotators: Annotated[
        int | None,
        typer.Option(
            help="Write the review demo instead: the photos labelled by this many annotators "
            "(2 to 10), for pipelines/review.yaml."
        ),
    ] = None,
    predictions: Annotated[
        bool,
        typer.Option(
            "--predictions",
            help="Write the model-loop demo instead: the photos with a model's predictions "
            "(data/raw/model-loop), for pipelines/model-loop.yaml.",
        ),
    ] = False,
) -> None:
    """Write the demo raw dataset (real photos, COCO labels) where the default pipeline reads."""
    from pixelpipe.errors import PixelpipeError
    from pixelpipe.project.demo import build
    from pixelpipe.project.review_demo import NAMES, build_review

    clean_data()
    if predictions:
        from pixelpipe.project.model_demo import build_model_loop

        target = out_dir or Path("data/raw/model-loop")
        made = build_model_loop(target)
        reviews = Path("reviews/route.json")  # what `review import` fills; never replaced
        if out_dir is None and not reviews.exists():
            from pixelpipe.review.reviews import save_reviews

            save_reviews(reviews, {})
        parts = ", ".join(
            f"{p}: {made[p]['images']} images, {made[p]['predictions']} predictions"
            for p in ("labelled", "pool")
        )
        out.print(f"wrote the model-loop demo to {target} ({parts})")
        return
    if annotators is not None:
        if not 2 <= annotators <= len(NAMES):
            raise PixelpipeError(f"--annotators: from 2 to {len(NAMES)}, got {annotators}")
        target = out_dir or Path("data/raw/review")
        review = build_review(target, annotators)
        boxes = ", ".join(f"{n} {c}" for n, c in review["annotators"].items())
        out.print(f"wrote {review['images']} images labelled by {boxes} boxes to {target}")
        return
    target = out_dir or Path("data/raw/demo")
    summary = build(target)
    out.print(f"wrote {summary['images']} images and {summary['annotations']} boxes to {target}")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Project folder.")] = Path("."),
) -> None:
    """Make a ready project: git and DVC, a default pipeline, params, configs, dvc.yaml."""
    from pixelpipe.project.init import init_project

    for line in init_project(directory):
        out.print(line)
