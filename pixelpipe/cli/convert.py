"""``pixelpipe convert``: one-shot format conversion without a pipeline.

The formats it names come from the readers' and writers' own lists
(:data:`pixelpipe.formats.detect.FORMATS`, :data:`pixelpipe.formats.export.EXPORT_FORMATS`),
so its help and its errors list every format there is; the conversion itself is imported
when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast, get_args

import typer
from rich.console import Console

from pixelpipe.formats.base import IdPolicy, PixelConvention
from pixelpipe.formats.detect import FORMATS
from pixelpipe.formats.export import EXPORT_FORMATS
from pixelpipe.formats.yolo import YoloTask

app = typer.Typer()
_out = Console(highlight=False, soft_wrap=True, markup=False)  # names are not markup
_SHOWN = 10
SOURCE_FORMATS = ("auto", *FORMATS)
"""What ``--from`` accepts: ``auto`` (detect) or any reader's format."""
ID_POLICIES: tuple[str, ...] = get_args(IdPolicy)
CONVENTIONS: tuple[str, ...] = get_args(PixelConvention)
YOLO_TASKS: tuple[str, ...] = get_args(YoloTask)


def _listed(choices: tuple[str, ...]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]


@app.command()
def convert(
    source: Annotated[str, typer.Argument(help="Folder, label file or URL (s3://...) to read.")],
    target: Annotated[Path, typer.Argument(help="Folder to write (new or empty).")],
    to: Annotated[str, typer.Option("--to", help=f"{_listed(EXPORT_FORMATS)}.")],
    source_format: Annotated[
        str, typer.Option("--from", help=f"{_listed(SOURCE_FORMATS)} (auto: detect it).")
    ] = "auto",
    category_ids: Annotated[str, typer.Option(help=f"{_listed(ID_POLICIES)}.")] = "auto",
    pixel_convention: Annotated[
        str, typer.Option(help=f"VOC boxes, read and written: {_listed(CONVENTIONS)}.")
    ] = "corners",
    classes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated class names in id order, for formats that name classes "
            "(VOC, image folders, Label Studio, CVAT, CSV)."
        ),
    ] = None,
    yolo_task: Annotated[str, typer.Option(help=f"{_listed(YOLO_TASKS)}.")] = "detect",
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
    image_url_prefix: Annotated[
        str,
        typer.Option(
            help="labelstudio: what image URLs start with (a bucket, a web server); empty: "
            "Label Studio's local files, served from TARGET."
        ),
    ] = "",
) -> None:
    """Convert a labelled dataset between formats (COCO, YOLO, VOC, CVAT, Label Studio...).

    Every image passes the checks ingest makes (Pillow can read it, it is within the pixel
    limit, its size is the one its labels declare); what fails is skipped and listed.
    """
    from pixelpipe.errors import PixelpipeError, did_you_mean
    from pixelpipe.formats.base import ReadOptions
    from pixelpipe.formats.convert import convert as run
    from pixelpipe.formats.export import ExportOptions
    from pixelpipe.formats.pixels import DEFAULT_MAX_PIXELS, ImageChecks

    if max_pixels is not None and max_pixels < 1:
        raise PixelpipeError(f"--max-pixels: must be at least 1, got {max_pixels}")
    if to not in EXPORT_FORMATS:
        raise PixelpipeError(
            f"unknown target format {to!r}; known: {', '.join(EXPORT_FORMATS)}"
            f"{did_you_mean(to, EXPORT_FORMATS)}"
        )
    choices = {
        "--from": (source_format, SOURCE_FORMATS),
        "--category-ids": (category_ids, ID_POLICIES),
        "--pixel-convention": (pixel_convention, CONVENTIONS),
        "--yolo-task": (yolo_task, YOLO_TASKS),
    }
    for option, (value, allowed) in choices.items():
        if value not in allowed:
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
            image_url_prefix=image_url_prefix,
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
