"""One manifest row as Python objects: :class:`Sample`, :class:`Annotation`, :class:`Category`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pixelpipe.dataset.schema import CORE_COLUMNS


@dataclass(frozen=True)
class Category:
    """One entry of the class map.

    Attributes:
        id: The id as given by the source (never invented or shifted).
        name: The class name.
        parent: Name of the parent class (COCO's ``supercategory``), if any.
    """

    id: int
    name: str
    parent: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form written to ``categories.json``."""
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.parent is not None:
            out["parent"] = self.parent
        return out


@dataclass
class Annotation:
    """One object label on an image.

    Attributes:
        category_id: Id in the class map.
        bbox: COCO-style ``[x, y, w, h]`` in absolute float pixels, origin at the
            top-left corner of the top-left pixel.
        polygons: Polygon parts, each ``[x1, y1, x2, y2, ...]``, if segmented.
        rle: A COCO RLE mask ``{"size": [h, w], "counts": str}`` (compressed), if any.
        iscrowd: COCO's crowd flag.
        area: Object area in pixels (mask area when there is a mask, else box area).
        score: Confidence, for predictions.
        annotator: Who or what made the label.
        attributes: Free-form attributes (``difficult``, ``occluded``...).
    """

    category_id: int
    bbox: tuple[float, float, float, float]
    polygons: list[list[float]] | None = None
    rle: dict[str, Any] | None = None
    iscrowd: bool = False
    area: float | None = None
    score: float | None = None
    annotator: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The Arrow row of this annotation."""
        x, y, w, h = (float(v) for v in self.bbox)
        return {
            "category_id": int(self.category_id),
            "bbox": [x, y, w, h],
            "polygons": self.polygons,
            "rle": self.rle,
            "iscrowd": bool(self.iscrowd),
            "area": float(self.area) if self.area is not None else w * h,
            "score": self.score,
            "annotator": self.annotator,
            "attributes": canonical_json(self.attributes) if self.attributes else None,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Annotation:
        """Rebuild an annotation from its Arrow row."""
        bbox = row["bbox"]
        return cls(
            category_id=row["category_id"],
            bbox=(bbox[0], bbox[1], bbox[2], bbox[3]),
            polygons=row.get("polygons"),
            rle=row.get("rle"),
            iscrowd=bool(row.get("iscrowd")),
            area=row.get("area"),
            score=row.get("score"),
            annotator=row.get("annotator"),
            attributes=json.loads(row["attributes"]) if row.get("attributes") else {},
        )


@dataclass
class Sample:
    """One image and its labels: one manifest row.

    Attributes:
        id: Stable, unique id (for ingested images, the path relative to the source root).
        image: Path of the stored image, relative to the project root.
        sha256: SHA-256 of the image file's bytes.
        width: Width in pixels, read from the file.
        height: Height in pixels, read from the file.
        source: Where the image came from (path or URL), for people; not part of the digest.
        split: ``train``, ``val``, ``test``... once known.
        group: Samples of one group always land in one split.
        parent: For a derived image, the id of the image it was made from.
        tags: Free-form tags.
        annotations: The object labels.
        extra: Columns added by stages (perceptual hash, cluster...).
    """

    id: str
    image: str
    sha256: str
    width: int
    height: int
    source: str
    split: str | None = None
    group: str | None = None
    parent: str | None = None
    tags: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The Arrow row of this sample, extra columns included."""
        row: dict[str, Any] = {
            "id": self.id,
            "image": self.image,
            "sha256": self.sha256,
            "width": int(self.width),
            "height": int(self.height),
            "source": self.source,
            "split": self.split,
            "group": self.group,
            "parent": self.parent,
            "tags": list(self.tags),
            "annotations": [a.to_row() for a in self.annotations],
        }
        clash = CORE_COLUMNS & self.extra.keys()
        if clash:
            raise ValueError(f"extra columns shadow core columns: {sorted(clash)}")
        row.update(self.extra)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Sample:
        """Rebuild a sample from its Arrow row."""
        return cls(
            id=row["id"],
            image=row["image"],
            sha256=row["sha256"],
            width=row["width"],
            height=row["height"],
            source=row["source"],
            split=row.get("split"),
            group=row.get("group"),
            parent=row.get("parent"),
            tags=list(row.get("tags") or []),
            annotations=[Annotation.from_row(a) for a in row.get("annotations") or []],
            extra={k: v for k, v in row.items() if k not in CORE_COLUMNS},
        )


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the one encoding digests and attributes use."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
