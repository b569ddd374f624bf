"""``pixelpipe convert``: one-shot format conversion without a pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console

app = typer.Typer()
_out = Console(highlight=False, soft_wrap=True, markup=False)  # names are not markup
_SHOWN = 10


@app.command()
def convert(
    source: Annotated[str, typer.Argument(help="Folder, label file or URL (s3://...) to read.")],
    target: Annotated[Path, typer.Argument(help="Folder to write (new or empty).")],
    to: Annotated[str, typer.Option("--to", help="coco, yolo, voc or imagefolder.")],
    source_format: Annotated[
        str, typer.Option("--from", help="auto, coco, voc, yolo, imagefolder or images.")
    ] = "auto",
    category_ids: Annotated[
        str, typer.Option(help="auto, preserve, zero_based or one_based.")
    ] = "auto",
    pixel_convention: Annotated[
        str, typer.Option(help="VOC boxes, read and written: corners or inclusive.")
    ] = "corners",
    classes: Annotated[
        str | None,
        typer.Option(help="Comma-separated class names in id order (VOC, image folders)."),
    ] = None,
    yolo_task: Annotated[str, typer.Option(help="detect or segment.")] = "detect",
    include_crowd: Annotated[
        bool, typer.Option(help="Write COCO crowd boxes into YOLO labels.")
    ] = False,
    follow_symlinks: Annotated[
        bool, typer.Option(help="Follow symlinks that lead outside SOURCE.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty TARGET.")] = False,
    max_pixels: Annotated[
        int | None,
        typer.Option(help="Skip images with more pixels as too_large (default: ingest's)."),
    ] = None,
) -> None:
    """Convert a labelled dataset between COCO, YOLO, VOC and image folders.

    Every image passes the checks ingest makes (Pillow can read it, it is within the pixel
    limit, its size is the one its labels declare); what fails is skipped and listed.
    """
    from pixelpipe.errors import PixelpipeError
    from pixelpipe.formats.base import ReadOptions
    from pixelpipe.formats.convert import convert as run
    from pixelpipe.formats.export import ExportOptions
    from pixelpipe.formats.pixels import DEFAULT_MAX_PIXELS, ImageChecks

    if max_pixels is not None and max_pixels < 1:
        raise PixelpipeError(f"--max-pixels: must be at least 1, got {max_pixels}")

    choices = {
        "--from": (source_format, ("auto", "coco", "voc", "yolo", "imagefolder", "images")),
        "--category-ids": (category_ids, ("auto", "preserve", "zero_based", "one_based")),
        "--pixel-convention": (pixel_convention, ("corners", "inclusive")),
        "--yolo-task": (yolo_task, ("detect", "segment")),
    }
    for option, (value, allowed) in choices.items():
        if value not in allowed:
            from pixelpipe.errors import did_you_mean

            raise PixelpipeError(
                f"{option}: {value!r} is not one of {', '.join(allowed)}"
                f"{did_you_mean(value, allowed)}"
            )
    report = run(
        source,
        target,
        to,
        source_format,
        read_options=ReadOptions(
            classes=[c.strip() for c in classes.split(",")] if classes else (),
            pixel_convention=cast(Any, pixel_convention),
        ),
        export_options=ExportOptions(
            category_ids=cast(Any, category_ids),
            pixel_convention=cast(Any, pixel_convention),
            yolo_task=cast(Any, yolo_task),
            include_crowd=include_crowd,
        ),
        follow_symlinks=follow_symlinks,
        overwrite=overwrite,
        checks=ImageChecks(max_pixels=max_pixels or DEFAULT_MAX_PIXELS),
    )
    for warning in report.warnings:
        _out.print(f"warning: {warning}")
    for sid, message in report.image_warnings[:_SHOWN]:
        _out.print(f"warning: {sid}: {message}")
    if len(report.image_warnings) > _SHOWN:
        _out.print(f"warning: ... and {len(report.image_warnings) - _SHOWN} more images")
    _out.print(
        f"{report.source_format} -> {to}: {report.samples} images, {report.annotations} "
        f"annotations, {len(report.categories)} classes, {report.images_copied} image files "
        f"copied -> {target}"
    )
    extra = {k: v for k, v in report.counts.items() if v and k not in ("images", "boxes")}
    if extra:
        _out.print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(extra.items())))
    if report.skipped:
        _out.print(f"skipped {len(report.skipped)}:")
        for sid, reason, detail in report.skipped[:_SHOWN]:
            _out.print(f"  {reason}: {sid}: {detail}")
        if len(report.skipped) > _SHOWN:
            _out.print(f"  ... and {len(report.skipped) - _SHOWN} more")
