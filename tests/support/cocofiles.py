"""Finding the files of a COCO export (``annotations/instances_<split>.json``, ``images/<split>/``)."""

from __future__ import annotations

from pathlib import Path


def coco_file(folder: Path) -> Path:
    """The one ``annotations/instances_<split>.json`` of a COCO export (fails unless one)."""
    (found,) = sorted((folder / "annotations").glob("instances_*.json"))
    return found


def image_folder(document: Path) -> Path:
    """The images folder of ``annotations/instances_<split>.json``: ``images/<split>/``."""
    split = document.stem.removeprefix("instances_")
    return document.parent.parent / "images" / split
