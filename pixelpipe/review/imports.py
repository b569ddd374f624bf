"""``pixelpipe review import``: a review tool's export checked against what was sent, then kept.

The export (a Label Studio JSON export or a CVAT for images 1.1 file) is read with the
project's own readers; each reviewed image must be one the stage sent (matched by its id or
its path) whose bytes have not changed since (its sha256 in the stage's input is still the
one sent), and every class must be one the dataset has. Anything else refuses the whole
import, one line per problem: nothing is merged half-way. A reviewed image's labels are
kept in pixels (Label Studio's percentages times the size sent, within 1e-6 px), with
what the reviewer changed against the boxes sent (:func:`pixelpipe.quality.routing.changes`).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelpipe.dataset import Annotation, Dataset
from pixelpipe.errors import PixelpipeError, Problem
from pixelpipe.formats import detect
from pixelpipe.formats.base import Item, to_pixels
from pixelpipe.formats.imagefolder import is_image_label
from pixelpipe.quality.routing import CHANGES, changes
from pixelpipe.review.reviews import Reviewed, load_reviews, load_sent, save_reviews
from pixelpipe.sources import open_tree

FORMATS = ("auto", "labelstudio", "cvat")


@dataclass
class Imported:
    """What an import did.

    Attributes:
        images: Images reviewed in this export.
        changes: Counts over them: unchanged, moved, relabelled, deleted, added.
        pending: Images sent and not reviewed yet (in no import so far).
        reviewers: Images per reviewer.
    """

    images: int = 0
    changes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGES, 0))
    pending: int = 0
    reviewers: dict[str, int] = field(default_factory=dict)


def import_export(
    export: Path,
    stage_dir: Path,
    input_dir: Path,
    reviews_path: Path,
    reviews_shown: str,
    fmt: str = "auto",
    reviewer: str | None = None,
) -> Imported:
    """Check an export against what the stage sent and add its reviews to the reviews file.

    Args:
        export: The review tool's export file.
        stage_dir: The routing stage's output (``data/<stage>``), with ``review/sent.json``.
        input_dir: The stage's input dataset (the images' current sha256).
        reviews_path: The reviews file to update.
        reviews_shown: How to name it in messages.
        fmt: ``auto``, ``labelstudio`` or ``cvat``.
        reviewer: The reviewer's name for a CVAT file (which names none); default: the
            export's file stem. Label Studio names each reviewer (``completed_by``).

    Raises:
        PixelpipeError: Every problem at once, nothing written: an image not sent, an
            image changed since, an unknown class, two reviewers of one image, an export
            that cannot be read.
    """
    if fmt not in FORMATS:
        raise PixelpipeError(f"--from: one of {', '.join(FORMATS)}, got {fmt!r}")
    if not export.is_file():
        raise PixelpipeError(f"{export}: no such file")
    sent = load_sent(stage_dir)
    by_image = {entry["image"]: sid for sid, entry in sent.items()}
    with tempfile.TemporaryDirectory() as alone:  # read the file, not the folder it sits in
        copy = Path(alone) / export.name
        shutil.copyfile(export, copy)
        try:
            labels = detect.read(open_tree(str(copy)), fmt)
        except PixelpipeError as exc:  # name the user's file, not the copy
            raise PixelpipeError(
                [
                    dataclasses.replace(
                        p,
                        message=p.message.replace(str(copy), str(export)),
                        file=p.file.replace(str(copy), str(export)) if p.file else p.file,
                    )
                    for p in exc.problems
                ]
            ) from None
    if labels.format not in ("labelstudio", "cvat"):
        raise PixelpipeError(
            f"{export}: a Label Studio JSON export or a CVAT XML file, not {labels.format}"
        )
    current = {
        row["id"]: row["sha256"]
        for row in Dataset(input_dir).table.select(["id", "sha256"]).to_pylist()
    }
    names = labels.category_names()
    known = set(_classes(input_dir))
    problems: list[Problem] = []
    reviews = load_reviews(reviews_path, reviews_shown)
    done = Imported()
    fresh: dict[str, Reviewed] = {}
    for item in labels.items:
        sid = item.image if item.image in sent else by_image.get(item.image)
        where = f"{export.name}: {sid or item.image}"
        if sid is None:
            problems.append(Problem(f"{where}: not an image this stage sent to review"))
            continue
        if current.get(sid) != sent[sid]["sha256"]:
            problems.append(
                Problem(f"{where}: the image changed (or left the dataset) since it was sent")
            )
            continue
        who = item.annotators if labels.format == "labelstudio" else [reviewer or export.stem]
        if not who:
            continue  # a task nobody submitted: not reviewed yet
        if len(who) > 1:
            problems.append(Problem(f"{where}: reviewed by several people ({', '.join(who)})"))
            continue
        back = _in_pixels(item, sent[sid])
        classes = [names.get(a.category_id, str(a.category_id)) for a in back]
        strange = sorted(set(classes) - known)
        if strange:
            problems.append(
                Problem(f"{where}: classes the dataset does not have: {', '.join(strange)}")
            )
            continue
        boxes = [(c, list(a.bbox)) for c, a in zip(classes, back, strict=True)]
        sent_boxes = sent[sid]["boxes"]
        diff = changes(
            (
                np.array([b["bbox"] for b in sent_boxes]).reshape(-1, 4),
                [b["class"] for b in sent_boxes],
            ),
            (np.array([b for _, b in boxes]).reshape(-1, 4), [c for c, _ in boxes]),
        )
        fresh[sid] = Reviewed(
            sent[sid]["sha256"],
            who[0],
            [{"class": c, "bbox": b} for c, b in boxes],
            diff,
            str(sent[sid].get("sent_for", "review")),
        )
    if problems:
        raise PixelpipeError(problems)
    for sid, review in fresh.items():
        reviews[sid] = review
        done.images += 1
        done.reviewers[review.reviewer] = done.reviewers.get(review.reviewer, 0) + 1
        for kind, count in review.changes.items():
            done.changes[kind] += count
    done.pending = sum(1 for sid in sent if sid not in reviews)
    save_reviews(reviews_path, reviews)
    return done


def _classes(input_dir: Path) -> list[str]:
    return [c.name for c in Dataset(input_dir).categories]


def _in_pixels(item: Item, sent: dict[str, Any]) -> list[Annotation]:
    """The item's boxes in the pixels of the image sent (image-level labels left out)."""
    annotations = [a for a in item.annotations if not is_image_label(a)]
    if item.normalized:
        annotations = to_pixels(annotations, int(sent["width"]), int(sent["height"]))
    return annotations
