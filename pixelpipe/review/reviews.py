"""The review loop's two files: what a ``route`` stage sent to review, and what came back.

``data/<stage>/review/sent.json`` (written by the stage): per image id, its sha256, the
image path the review tool shows, its size and the boxes sent (class, box, score, band).
The reviews file (the stage's ``reviewed`` param, written by ``pixelpipe review import``):
per image id, the sha256 it was reviewed at, the reviewer, the labels as the reviewer left
them (class names, COCO boxes in pixels) and what changed. Both are plain, sorted JSON,
written atomically, so DVC tracks them and a rerun reads them byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.base import write_atomic

SENT_FILE = "review/sent.json"
FORMAT = 1


@dataclass
class Reviewed:
    """One reviewed image.

    Attributes:
        sha256: The image's bytes when it was sent (a changed image is not this review's).
        reviewer: Who reviewed it.
        labels: ``{"class", "bbox"}`` per label the reviewer left (pixels, COCO boxes).
        changes: Counts: unchanged, moved, relabelled, deleted, added.
        sent_for: Why it was sent: ``review`` (a box in the review band) or ``audit``.
    """

    sha256: str
    reviewer: str
    labels: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    sent_for: str = "review"

    def to_json(self) -> dict[str, Any]:
        """The entry in the reviews file."""
        return {
            "sha256": self.sha256,
            "reviewer": self.reviewer,
            "labels": self.labels,
            "changes": self.changes,
            "sent_for": self.sent_for,
        }


def write_json(path: Path, value: Any) -> None:
    """Sorted, indented JSON, written atomically (a temporary file renamed into place)."""
    write_atomic(path, json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def load_reviews(path: Path, shown: str) -> dict[str, Reviewed]:
    """The reviews file; a missing file holds no review.

    Raises:
        PixelpipeError: When it is not a reviews file (one line, naming it).
    """
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            sid: Reviewed(
                e["sha256"],
                e["reviewer"],
                list(e["labels"]),
                dict(e["changes"]),
                str(e.get("sent_for", "review")),
            )
            for sid, e in data["reviews"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PixelpipeError(
            f"{shown}: not a reviews file written by `pixelpipe review import` ({exc})"
        ) from None


def save_reviews(path: Path, reviews: dict[str, Reviewed]) -> None:
    """Write the reviews file."""
    write_json(
        path,
        {"format": FORMAT, "reviews": {k: reviews[k].to_json() for k in sorted(reviews)}},
    )


def load_sent(stage_dir: Path) -> dict[str, dict[str, Any]]:
    """What the stage sent to review, by image id.

    Raises:
        PixelpipeError: When the stage has not run (no list of what it sent).
    """
    path = stage_dir / SENT_FILE
    if not path.is_file():
        raise PixelpipeError(
            f"{path}: not found; run the stage first (`dvc repro`), then review what it sent"
        )
    sent: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["images"]
    return sent
