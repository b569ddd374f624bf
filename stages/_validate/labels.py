"""Label rules: pure functions of a sample's annotations, the image size and the class map.

Rules run in catalogue order, and a fix is applied before the next rule looks, so a box
clipped by ``box_inside`` is measured clipped by ``box_min_area``. A box that fails
``box_finite`` or ``box_positive`` is reported there only: the later box rules
(``box_inside``, ``box_min_area``, ``duplicate_boxes``) skip it. RLE masks are checked
by parsing their counts in Python, never by pycocotools' C decoder, which trusts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pixelpipe import Annotation
from pixelpipe.quality.boxes import iou_matrix
from stages._validate.findings import Box, Finding
from stages._validate.rules import (
    BoxFinite,
    BoxInside,
    BoxMinArea,
    BoxPositive,
    CategoryKnown,
    CrowdMask,
    DeclaredSize,
    DuplicateBoxes,
    PolygonAsBox,
    PolygonInside,
    PolygonPoints,
    RleSize,
    Rule,
    Unlabelled,
)


def fmt_box(box: Box | list[float]) -> str:
    """``[x, y, w, h]`` with at most two decimals."""
    return "[" + ", ".join(f"{v:.2f}".rstrip("0").rstrip(".") for v in box) + "]"


def rle_counts(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' format, parsed safely).

    Raises:
        ValueError: When the string is not valid compressed RLE.
    """
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value = shift = 0
        more = True
        while more:
            if position >= len(counts):
                raise ValueError("counts end in the middle of a number")
            code = ord(counts[position]) - 48
            if not 0 <= code < 64:
                raise ValueError(f"invalid character {counts[position]!r} in counts")
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            position += 1
            shift += 1
            if not more and code & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError("negative run length")
        runs.append(value)
    return runs


def polygon_area(polygons: list[list[float]], width: int, height: int) -> float | None:
    """Mask area of polygons already inside the image, or ``None`` when none is usable."""
    from pycocotools import mask as mask_utils

    parts = [p for p in polygons if _usable(p)]
    if not parts or width <= 0 or height <= 0:
        return None
    rles = mask_utils.frPyObjects(parts, height, width)
    return float(mask_utils.area(mask_utils.merge(rles)))


def _finite_list(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _usable(part: list[float]) -> bool:
    """A polygon part pycocotools can rasterize: 3+ finite points."""
    return len(part) >= 6 and len(part) % 2 == 0 and _finite_list(part)


@dataclass
class _Item:
    index: int
    ann: Annotation
    broken: bool = False


@dataclass
class LabelResult:
    """Annotations after the label rules, and what the rules found.

    Attributes:
        annotations: The annotations to keep (fixed where a rule's severity is ``fix``).
        width: The width to record (the file's when ``declared_size`` fixed it).
        height: The height to record.
        findings: One finding per rule and offending annotation (or sample).
    """

    annotations: list[Annotation]
    width: int
    height: int
    findings: list[Finding] = field(default_factory=list)


class _Labels:
    def __init__(
        self,
        rules: Mapping[str, Rule],
        annotations: list[Annotation],
        declared: tuple[int, int],
        actual: tuple[int, int] | None,
        categories: Mapping[int, str],
    ) -> None:
        self.rules = rules
        self.items = [_Item(i, a) for i, a in enumerate(annotations)]
        self.declared = declared
        self.size = actual or declared
        self.width, self.height = declared
        self.categories = categories
        self.findings: list[Finding] = []

    def name(self, ann: Annotation) -> str:
        return self.categories.get(ann.category_id, f"#{ann.category_id}")

    def report(
        self,
        rule: Rule,
        message: str,
        item: _Item | None = None,
        fixed: bool = False,
        boxes: tuple[Box, ...] | None = None,
        labels: tuple[str, ...] | None = None,
    ) -> None:
        if item is not None and boxes is None:
            boxes = (item.ann.bbox,)
            labels = (self.name(item.ann),)
        what = f"annotation {item.index} ({self.name(item.ann)}): " if item else ""
        self.findings.append(
            Finding(
                rule.ID,
                "fix" if fixed else rule.severity,
                what + message,
                boxes or (),
                labels or (),
                item.index if item else None,
            )
        )

    def each(self, rule_type: type[Rule]) -> tuple[Any, list[_Item]]:
        rule = self.rules.get(rule_type.ID)
        return rule, (list(self.items) if rule is not None else [])

    def drop(self, item: _Item) -> None:
        self.items.remove(item)

    def flag(
        self,
        rule: Rule,
        item: _Item,
        message: str,
        boxes: tuple[Box, ...] | None = None,
        labels: tuple[str, ...] | None = None,
    ) -> bool:
        """Report a finding on one annotation; under severity ``fix``, drop the annotation.

        Returns:
            True when the annotation was dropped.
        """
        fixed = rule.severity == "fix"
        message += "; annotation dropped" if fixed else ""
        self.report(rule, message, item, fixed, boxes=boxes, labels=labels)
        if fixed:
            self.drop(item)
        return fixed

    def run(self) -> LabelResult:
        for check in (
            self.declared_size,
            self.box_finite,
            self.box_positive,
            self.box_inside,
            self.box_min_area,
            self.category_known,
            self.polygon_points,
            self.polygon_as_box,
            self.polygon_inside,
            self.rle_size,
            self.crowd_mask,
            self.duplicate_boxes,
            self.unlabelled,
        ):
            check()
        return LabelResult([i.ann for i in self.items], self.width, self.height, self.findings)

    def declared_size(self) -> None:
        rule: DeclaredSize | None = self.rules.get(DeclaredSize.ID)  # type: ignore[assignment]
        if rule is None or self.size == self.declared:
            return
        (dw, dh), (fw, fh) = self.declared, self.size
        message = f"declared size {dw}x{dh} differs from the file's {fw}x{fh}"
        if rule.severity == "fix":
            self.width, self.height = fw, fh
            message += f"; set to {fw}x{fh}"
        self.report(rule, message, fixed=rule.severity == "fix")

    def box_finite(self) -> None:
        rule, items = self.each(BoxFinite)
        for item in items:
            if not _finite_list(list(item.ann.bbox)):
                item.broken = True
                self.flag(
                    rule, item, f"box {fmt_box(item.ann.bbox)} has a number that is not finite", ()
                )

    def box_positive(self) -> None:
        rule, items = self.each(BoxPositive)
        for item in items:
            _, _, w, h = item.ann.bbox
            if item.broken or (w > 0 and h > 0):
                continue
            item.broken = True
            self.flag(
                rule,
                item,
                f"box {fmt_box(item.ann.bbox)} has width {w:g} and height {h:g}; both must be "
                "positive",
            )

    def box_inside(self) -> None:
        rule, items = self.each(BoxInside)
        width, height = self.size
        for item in items:
            x, y, w, h = item.ann.bbox
            if item.broken or not _finite_list([x, y, w, h]):
                continue
            tol = rule.tolerance
            past = [
                f"left edge (x = {x:g})" if x < -tol else "",
                f"top edge (y = {y:g})" if y < -tol else "",
                f"right edge (x + w = {x + w:g} > width {width})" if x + w > width + tol else "",
                f"bottom edge (y + h = {y + h:g} > height {height})"
                if y + h > height + tol
                else "",
            ]
            edges = [p for p in past if p]
            if not edges:
                continue
            message = f"box {fmt_box(item.ann.bbox)} reaches past the " + ", ".join(edges)
            if rule.severity != "fix":
                self.report(rule, message, item)
                continue
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(width), x + w), min(float(height), y + h)
            if x1 <= x0 or y1 <= y0:
                self.report(rule, message + "; nothing is inside: annotation dropped", item, True)
                self.drop(item)
                continue
            clipped = (x0, y0, x1 - x0, y1 - y0)
            self.report(rule, message + f"; clipped to {fmt_box(clipped)}", item, True)
            ann = item.ann
            area = ann.area
            if ann.polygons is None and ann.rle is None:
                area = clipped[2] * clipped[3]
            item.ann = replace(ann, bbox=clipped, area=area)

    def box_min_area(self) -> None:
        rule, items = self.each(BoxMinArea)
        for item in items:
            _, _, w, h = item.ann.bbox
            if item.broken or not _finite_list([w, h]) or w * h >= rule.min_area:
                continue
            self.flag(
                rule,
                item,
                f"box {fmt_box(item.ann.bbox)} covers {w * h:g} px², under {rule.min_area:g}",
            )

    def category_known(self) -> None:
        rule, items = self.each(CategoryKnown)
        for item in items:
            if item.ann.category_id in self.categories:
                continue
            self.flag(rule, item, f"category id {item.ann.category_id} is not in the class map")

    def _set_polygons(self, item: _Item, parts: list[list[float]]) -> None:
        item.ann = replace(item.ann, polygons=parts or None)

    def polygon_points(self) -> None:
        rule, items = self.each(PolygonPoints)
        as_box = PolygonAsBox.ID in self.rules
        for item in items:
            parts = item.ann.polygons or []
            bad = [
                i
                for i, p in enumerate(parts)
                if not (as_box and len(p) == 4)
                and (len(p) < 6 or len(p) % 2 or not _finite_list(p))
            ]
            if not bad:
                continue
            fixed = rule.severity == "fix"
            shapes = ", ".join(f"part {i} has {len(parts[i])} numbers" for i in bad)
            if any(not _finite_list(parts[i]) for i in bad):
                shapes += " (some not finite)"
            self.report(
                rule,
                f"polygon {shapes}; a polygon needs at least 3 points"
                + ("; bad parts dropped" if fixed else ""),
                item,
                fixed,
            )
            if fixed:
                self._set_polygons(item, [p for i, p in enumerate(parts) if i not in bad])

    def polygon_as_box(self) -> None:
        rule, items = self.each(PolygonAsBox)
        for item in items:
            parts = item.ann.polygons or []
            four = [i for i, p in enumerate(parts) if len(p) == 4]
            if not four:
                continue
            fixed = rule.severity == "fix"
            whole = " (the first part: the whole segmentation)" if 0 in four else ""
            self.report(
                rule,
                f"polygon part(s) {', '.join(map(str, four))} have exactly 4 numbers, which "
                f"pycocotools reads as a box [x, y, w, h]{whole}"
                + ("; those parts dropped" if fixed else ""),
                item,
                fixed,
            )
            if fixed:
                self._set_polygons(item, [p for i, p in enumerate(parts) if i not in four])

    def polygon_inside(self) -> None:
        rule, items = self.each(PolygonInside)
        width, height = self.size
        for item in items:
            parts = item.ann.polygons or []
            usable = [p for p in parts if _usable(p)]
            tol = rule.tolerance
            outside = sum(
                1
                for p in usable
                for x, y in zip(p[0::2], p[1::2], strict=True)
                if x < -tol or y < -tol or x > width + tol or y > height + tol
            )
            if not outside:
                continue
            message = f"{outside} polygon point(s) lie outside the {width}x{height} image"
            if rule.severity != "fix":
                self.report(rule, message, item)
                continue
            clipped = [
                [min(max(v, 0.0), float(width if k % 2 == 0 else height)) for k, v in enumerate(p)]
                if _usable(p)
                else p
                for p in parts
            ]
            self._set_polygons(item, clipped)
            if item.ann.rle is None:
                area = polygon_area(clipped, width, height)
                if area is not None:
                    item.ann = replace(item.ann, area=area)
            self.report(rule, message + "; points clipped to the image", item, True)

    def rle_size(self) -> None:
        rule, items = self.each(RleSize)
        width, height = self.size
        for item in items:
            rle = item.ann.rle
            if rle is None:
                continue
            size = list(rle.get("size") or [])
            problem = ""
            if size != [height, width]:
                problem = f"RLE size {size} is not the image's [height, width] {[height, width]}"
            else:
                try:
                    total = sum(rle_counts(str(rle.get("counts") or "")))
                except ValueError as exc:
                    problem = f"RLE counts do not decode: {exc}"
                else:
                    if total != height * width:
                        problem = f"RLE runs cover {total} pixels, not {height}x{width}"
            if problem:
                self.report(rule, problem, item)

    def crowd_mask(self) -> None:
        rule, items = self.each(CrowdMask)
        for item in items:
            ann = item.ann
            is_rle = ann.rle is not None
            if ann.iscrowd == is_rle:
                continue
            mask = "an RLE mask" if is_rle else "polygons" if ann.polygons else "no mask"
            fixed = rule.severity == "fix"
            self.report(
                rule,
                f"iscrowd is {int(ann.iscrowd)} but the mask is {mask}"
                + (f"; iscrowd set to {int(is_rle)}" if fixed else ""),
                item,
                fixed,
            )
            if fixed:
                item.ann = replace(ann, iscrowd=is_rle)

    def duplicate_boxes(self) -> None:
        rule, items = self.each(DuplicateBoxes)
        by_class: dict[int, list[_Item]] = {}
        for item in items:
            x, y, w, h = item.ann.bbox
            if not item.broken and _finite_list([x, y, w, h]) and w > 0 and h > 0:
                by_class.setdefault(item.ann.category_id, []).append(item)
        for members in by_class.values():
            if len(members) < 2:
                continue
            iou = iou_matrix(np.array([m.ann.bbox for m in members], dtype=np.float64))
            kept: list[int] = []
            for j, item in enumerate(members):
                twin = next((i for i in kept if iou[i, j] >= rule.min_iou), None)
                if twin is None:
                    kept.append(j)
                    continue
                first = members[twin]
                dropped = self.flag(
                    rule,
                    item,
                    f"box {fmt_box(item.ann.bbox)} repeats annotation {first.index} "
                    f"{fmt_box(first.ann.bbox)} (IoU {iou[twin, j]:.3f})",
                    boxes=(first.ann.bbox, item.ann.bbox),
                    labels=(f"{first.index}", f"{item.index}"),
                )
                if not dropped:
                    kept.append(j)

    def unlabelled(self) -> None:
        rule = self.rules.get(Unlabelled.ID)
        if rule is not None and not self.items:
            self.report(rule, "the image has no annotations")


def check_labels(
    rules: Mapping[str, Rule],
    annotations: list[Annotation],
    *,
    declared: tuple[int, int],
    actual: tuple[int, int] | None,
    categories: Mapping[int, str],
) -> LabelResult:
    """Apply the label rules to one sample's annotations.

    Args:
        rules: The rule set's rules by id (rules of other scopes are ignored).
        annotations: The sample's annotations, in manifest order.
        declared: The width and height the manifest declares.
        actual: The width and height of the file, or ``None`` when it could not be read
            (the declared size is then used for bounds).
        categories: The class map: id -> name.

    Returns:
        The annotations to keep, the size to record and the findings.
    """
    return _Labels(rules, annotations, declared, actual, categories).run()
