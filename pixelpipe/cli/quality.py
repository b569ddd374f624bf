"""``pixelpipe agreement|consensus``: label quality on annotation files alone, no pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pixelpipe.cli.console import out

app = typer.Typer()

Inputs = Annotated[
    list[str],
    typer.Argument(
        help="Label files, one per annotator (COCO, CVAT XML...), a Label Studio export or a "
        "CSV item,annotator,label (they name their annotators), or one dataset directory."
    ),
]
Iou = Annotated[float, typer.Option("--iou", help="Smallest IoU at which two boxes match.")]
Images = Annotated[
    Path | None, typer.Option(help="Folder of the images, for the report's pictures.")
]
Format = Annotated[str, typer.Option("--from", help="The inputs' format (auto detects each).")]
Report = Annotated[Path | None, typer.Option(help="Write the HTML report here.")]


def _check_fraction(name: str, value: float) -> None:
    from pixelpipe.errors import PixelpipeError

    if not 0.0 < value <= 1.0:
        raise PixelpipeError(f"{name}: must be in (0, 1], got {value}")


def _opener(images: Path | None) -> Any:
    def find(one: Any) -> Path | None:
        if images is None:
            return Path(one.image) if one.image and Path(one.image).is_file() else None
        for candidate in (images / one.id, images / Path(one.id).name):
            if candidate.is_file():
                return candidate
        return None

    return find


def _summary(result: dict[str, Any]) -> None:
    def shown(value: Any) -> str:
        return (
            "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
        )

    out.print(
        f"{result['images']} images ({result['items']} seen by two or more), "
        f"{len(result['annotators'])} annotators, statistics over {result['statistics_over']}"
    )
    from pixelpipe.review.measure import FIGURES

    for key in FIGURES:
        out.print(f"  {key}: {shown(result.get(key))}")
    if "hierarchical_agreement" in result:
        out.print(f"  hierarchical_agreement: {shown(result['hierarchical_agreement'])}")
    if result.get("fleiss_kappa") is None and result.get("fleiss_kappa_reason"):
        out.print(f"  (no Fleiss' kappa: {result['fleiss_kappa_reason']})")
    for name, entry in result["annotators"].items():
        if "accuracy" in entry:
            out.print(
                f"  {name} vs gold: precision {shown(entry['precision'])}, recall "
                f"{shown(entry['recall'])}, accuracy {shown(entry['accuracy'])}"
            )
    for note in result.get("notes", []):
        out.print(f"note: {note}")


def _sizes_from_images(gathered: Any, opener: Any) -> None:
    """Image sizes the labels do not declare (a CSV of class labels), read from the images."""
    from PIL import Image

    for one in gathered.images:
        path = None if one.width and one.height else opener(one)
        if path is not None:
            try:
                with Image.open(path) as image:
                    one.width, one.height = image.size
            except OSError:
                continue


@app.command()
def agreement(
    inputs: Inputs,
    iou: Iou = 0.5,
    gold: Annotated[
        str | None, typer.Option(help="A gold label file: every annotator is scored against it.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures here.")] = None,
    report: Report = None,
    images: Images = None,
    source_format: Format = "auto",
    worst: Annotated[int, typer.Option(help="How many lowest-agreement images to list.")] = 20,
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            help="A class hierarchy (YAML): differing classes earn partial credit, reported "
            "as hierarchical_agreement."
        ),
    ] = None,
) -> None:
    """Agreement between annotators: kappas, alpha, box IoU and F1, each against a gold set."""
    from pixelpipe.errors import PixelpipeError
    from pixelpipe.review.inputs import read_inputs
    from pixelpipe.review.measure import agreement as measure
    from pixelpipe.review.report import render
    from pixelpipe.review.reviews import write_json
    from pixelpipe.taxonomy import load

    _check_fraction("--iou", iou)
    if taxonomy is not None and not taxonomy.is_file():
        raise PixelpipeError(f"{taxonomy}: no such file")
    tree = load(taxonomy, str(taxonomy)) if taxonomy is not None else None
    gathered, truth = read_inputs(inputs, source_format, gold)
    result = measure(gathered, iou, truth, worst, tree)
    if json_out is not None:
        write_json(json_out, result)
        out.print(f"wrote {json_out}")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(
            render("Agreement", result, gathered, None, _opener(images)), encoding="utf-8"
        )
        out.print(f"wrote {report}")
    _summary(result)


@app.command()
def consensus(
    inputs: Inputs,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (new or empty).")],
    to: Annotated[str, typer.Option("--to", help="coco, yolo or voc.")] = "coco",
    quorum: Annotated[
        float, typer.Option(help="Share of the annotators who saw an image that must agree.")
    ] = 0.5,
    iou: Iou = 0.5,
    fusion: Annotated[str, typer.Option(help="mean, median or wbf (score-weighted).")] = "mean",
    images: Images = None,
    source_format: Format = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
) -> None:
    """Merge annotators into one label set; clusters below quorum and ties go to review.json."""
    from pixelpipe.dataset import Sample
    from pixelpipe.errors import PixelpipeError
    from pixelpipe.formats.export import export
    from pixelpipe.review.inputs import read_inputs
    from pixelpipe.review.measure import agreement as measure
    from pixelpipe.review.merge import consensus as merge
    from pixelpipe.review.report import render
    from pixelpipe.review.reviews import write_json

    _check_fraction("--quorum", quorum)
    _check_fraction("--iou", iou)
    if to not in ("coco", "yolo", "voc"):
        raise PixelpipeError(f"--to: 'coco', 'yolo' or 'voc', got {to!r}")
    if fusion not in ("mean", "median", "wbf"):
        raise PixelpipeError(f"--fusion: 'mean', 'median' or 'wbf', got {fusion!r}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise PixelpipeError(f"{out_dir} is not empty; use --overwrite to replace it")
    gathered, _ = read_inputs(inputs, source_format)
    opener = _opener(images)
    _sizes_from_images(gathered, opener)
    categories = gathered.class_map()
    ids = {c.name: c.id for c in categories}
    merged = merge(gathered, ids, quorum, iou, fusion)  # type: ignore[arg-type]
    unsized = [one.id for one in gathered.images if not (one.width and one.height)]
    if unsized and to != "coco":
        raise PixelpipeError(
            f"{len(unsized)} images have no declared size (e.g. {unsized[0]}); {to} needs it: "
            "write --to coco"
        )
    samples = [
        Sample(
            id=one.id,
            image=str(opener(one) or ""),
            sha256="",
            width=int(one.width or 0),
            height=int(one.height or 0),
            source=one.id,
            annotations=merged.labels.get(one.id, []),
        )
        for one in gathered.images
    ]
    if out_dir.exists() and overwrite:
        import shutil

        shutil.rmtree(out_dir)
    counts = export(
        to,
        samples,
        categories,
        out_dir / to,
        lambda s: Path(s.image) if s.image else None,
    )
    write_json(out_dir / "review.json", merged.review)
    result = measure(gathered, iou)
    (out_dir / "report.html").write_text(
        render("Consensus", result, gathered, merged, opener, {c.id: c.name for c in categories}),
        encoding="utf-8",
    )
    out.print(
        f"wrote {counts.get('boxes', 0)} consensus labels on {len(samples)} images to "
        f"{out_dir / to}; {len(merged.review)} to review in {out_dir / 'review.json'}"
    )
    for reason, count in merged.metrics["review_by_reason"].items():
        out.print(f"  review: {count} {reason}")
