"""The rule catalogue: one pydantic model per rule, its scope, severities and fix.

Each rule model carries its id, its scope (``image``, ``label`` or ``dataset``), what
severity ``fix`` does (when the rule has a fix), and its params with their defaults.
:data:`CATALOGUE` lists every rule in the order rules are applied (and fixes made),
:data:`RULES` indexes them by id, and :data:`ORDER` ranks every reason a sample can be
reported for: the guards (``timeout``, ``crash``) first, then the rules.

Which rules a run applies, and with which params, is a rule-set file, read by
:mod:`stages._validate.ruleset`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pixelpipe import did_you_mean

Severity = Literal["error", "warn", "fix"]
Scope = Literal["image", "label", "dataset"]
SEVERITIES: tuple[Severity, ...] = ("error", "warn", "fix")

PIL_MODES: tuple[str, ...] = tuple(Image.MODES)


class Rule(BaseModel):
    """Base of every rule: a severity and the rule's params."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    ID: ClassVar[str] = ""
    SCOPE: ClassVar[Scope] = "image"
    FIX: ClassVar[str | None] = None
    """What severity ``fix`` does, or ``None`` when the rule has no fix."""

    severity: Severity = "error"
    """``error``: quarantine the sample; ``warn``: keep and report; ``fix``: apply the fix."""


# --- image rules -------------------------------------------------------------------------


class Decode(Rule):
    """The image opens and its first frame decodes fully (no truncation, no corrupt data)."""

    ID = "decode"
    severity: Literal["error", "warn"] = "error"
    """``error`` or ``warn`` (there is no fix for broken pixels)."""


class MaxPixels(Rule):
    """Width x height is at most ``max_pixels``; checked from the header, before decoding."""

    ID = "max_pixels"
    severity: Literal["error", "warn"] = "error"
    """``error`` or ``warn``; either way an image over the limit is never decoded."""
    max_pixels: int = Field(default=89_478_485, gt=0)
    """Most pixels an image may have (Pillow's own bomb limit by default)."""


class Extension(Rule):
    """The file's content is in the format its extension names (a JPEG named ``.png`` fails)."""

    ID = "extension"
    severity: Literal["error", "warn"] = "warn"
    """``error`` or ``warn``."""


class MinSize(Rule):
    """Width and height are at least ``min_width`` and ``min_height`` pixels."""

    ID = "min_size"
    severity: Literal["error", "warn"] = "warn"
    """``error`` or ``warn``."""
    min_width: int = Field(default=32, ge=1)
    """Smallest width in pixels."""
    min_height: int = Field(default=32, ge=1)
    """Smallest height in pixels."""


class MaxSize(Rule):
    """Width and height are at most ``max_width`` and ``max_height`` pixels."""

    ID = "max_size"
    severity: Literal["error", "warn"] = "warn"
    """``error`` or ``warn``."""
    max_width: int = Field(default=16384, ge=1)
    """Largest width in pixels."""
    max_height: int = Field(default=16384, ge=1)
    """Largest height in pixels."""


class AspectRatio(Rule):
    """The longer side is at most ``max_ratio`` times the shorter side."""

    ID = "aspect_ratio"
    severity: Literal["error", "warn"] = "warn"
    """``error`` or ``warn``."""
    max_ratio: float = Field(default=10.0, ge=1.0)
    """Largest ratio of the longer side to the shorter side."""


class ColorMode(Rule):
    """The image's colour mode is one of ``allowed`` (CMYK, 16-bit, palette and alpha are not)."""

    ID = "color_mode"
    FIX = (
        "convert the pixels to RGB (to L for grayscale, 1-bit and 16-bit images when L is "
        "allowed; 16-bit values scaled to 8 bits; alpha composited over `background`) and "
        "store the converted image in the stage output, in the format its extension names"
    )
    severity: Severity = "fix"
    """``error``, ``warn`` or ``fix`` (convert)."""
    allowed: list[str] = Field(default_factory=lambda: ["RGB", "L"], min_length=1)
    """Pillow modes that pass (``RGB``, ``L``, ``RGBA``, ``P``, ``CMYK``, ``I;16``...)."""
    background: tuple[int, int, int] = (255, 255, 255)
    """RGB colour that transparent pixels are composited over when converting."""

    @field_validator("allowed")
    @classmethod
    def _known_modes(cls, value: list[str]) -> list[str]:
        for mode in value:
            if mode not in PIL_MODES:
                raise PydanticCustomError(
                    "unknown_mode",
                    "unknown colour mode {mode}{hint}; Pillow's modes are: {modes}",
                    {
                        "mode": repr(mode),
                        "hint": did_you_mean(mode, PIL_MODES),
                        "modes": ", ".join(PIL_MODES),
                    },
                )
        return value

    @field_validator("background")
    @classmethod
    def _bytes(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if not all(0 <= v <= 255 for v in value):
            raise PydanticCustomError("background", "background values must be 0 to 255")
        return value

    @model_validator(mode="after")
    def _can_fix(self) -> ColorMode:
        if self.severity == "fix" and "RGB" not in self.allowed:
            raise PydanticCustomError(
                "fix_needs_rgb", "severity 'fix' converts to RGB, so 'allowed' must include RGB"
            )
        return self


class Blank(Rule):
    """The image is not near-blank.

    The standard deviation of its 8-bit gray levels is at least ``min_std``.
    """

    ID = "blank"
    severity: Literal["error", "warn"] = "warn"
    """``error`` or ``warn``."""
    min_std: float = Field(default=3.0, ge=0.0)
    """Smallest standard deviation of the 8-bit gray levels (0-255)."""


class Blur(Rule):
    """The image is sharp enough: the variance of its Laplacian is at least ``min_variance``."""

    ID = "blur"
    severity: Literal["error", "warn"] = "warn"
    """``error`` or ``warn``."""
    min_variance: float = Field(default=25.0, ge=0.0)
    """Smallest variance of the 4-neighbour Laplacian of the 8-bit gray image."""
    size: int = Field(default=512, ge=16)
    """Images are measured shrunk by the whole factor ``longer side // size``."""


class Exposure(Rule):
    """The image is neither too dark nor too bright: its mean gray level is within bounds."""

    ID = "exposure"
    severity: Literal["error", "warn"] = "warn"
    """``error`` or ``warn``."""
    min_mean: float = Field(default=10.0, ge=0.0, le=255.0)
    """Darkest mean gray level (0-255) that passes."""
    max_mean: float = Field(default=245.0, ge=0.0, le=255.0)
    """Brightest mean gray level (0-255) that passes."""

    @model_validator(mode="after")
    def _ordered(self) -> Exposure:
        if self.min_mean >= self.max_mean:
            raise PydanticCustomError("bounds", "min_mean must be below max_mean")
        return self


# --- taxonomy rules (checked when the stage has a ``taxonomy`` config) ---------------------


class UnknownClass(Rule):
    """Every class the annotations use is a class or a synonym of the taxonomy."""

    ID = "unknown_class"
    SCOPE = "label"
    severity: Literal["error", "warn"] = "error"
    """``error`` or ``warn`` (add the class to the taxonomy, or name it as a synonym)."""


class RenamedClass(Rule):
    """No annotation uses a synonym of a taxonomy class (an old or another tool's name)."""

    ID = "renamed_class"
    SCOPE = "label"
    FIX = (
        "rename the class to the taxonomy's name; classes that name one class merge into "
        "one (the class itself, else the lowest id), the annotations re-pointed"
    )
    severity: Severity = "fix"
    """``error``, ``warn`` or ``fix`` (rename, merge)."""


class NotLeaf(Rule):
    """With the taxonomy's ``leaf_only``, no annotation uses a class that has subclasses."""

    ID = "not_leaf"
    SCOPE = "label"
    severity: Literal["error", "warn"] = "error"
    """``error`` or ``warn`` (only an annotator can pick the subclass)."""


# --- label rules -------------------------------------------------------------------------


class BoxFinite(Rule):
    """Every number of every box is finite (no NaN, no infinity)."""

    ID = "box_finite"
    SCOPE = "label"
    FIX = "drop the annotation"
    severity: Severity = "error"
    """``error``, ``warn`` or ``fix`` (drop the annotation)."""


class BoxPositive(Rule):
    """Every box has a positive width and height."""

    ID = "box_positive"
    SCOPE = "label"
    FIX = "drop the annotation"
    severity: Severity = "fix"
    """``error``, ``warn`` or ``fix`` (drop the annotation)."""


class BoxInside(Rule):
    """Every box lies inside the image, within ``tolerance`` pixels."""

    ID = "box_inside"
    SCOPE = "label"
    FIX = "clip the box to the image; drop the annotation when nothing is left"
    severity: Severity = "fix"
    """``error``, ``warn`` or ``fix`` (clip)."""
    tolerance: float = Field(default=0.0, ge=0.0)
    """Pixels a box may reach past an edge and still pass (e.g. 0.5 for rounding)."""


class BoxMinArea(Rule):
    """Every box covers at least ``min_area`` square pixels."""

    ID = "box_min_area"
    SCOPE = "label"
    FIX = "drop the annotation"
    severity: Severity = "warn"
    """``error``, ``warn`` or ``fix`` (drop the annotation)."""
    min_area: float = Field(default=4.0, gt=0.0)
    """Smallest box area (width x height) in square pixels."""


class CategoryKnown(Rule):
    """Every annotation's category id is in the class map."""

    ID = "category_known"
    SCOPE = "label"
    FIX = "drop the annotation"
    severity: Severity = "error"
    """``error``, ``warn`` or ``fix`` (drop the annotation)."""


class PolygonPoints(Rule):
    """Every polygon part has at least three points.

    A part is an even count of at least 6 finite numbers.
    """

    ID = "polygon_points"
    SCOPE = "label"
    FIX = "drop the bad parts (and the segmentation when no part is left)"
    severity: Severity = "fix"
    """``error``, ``warn`` or ``fix`` (drop the bad parts)."""


class PolygonInside(Rule):
    """Every polygon point lies inside the image, within ``tolerance`` pixels."""

    ID = "polygon_inside"
    SCOPE = "label"
    FIX = "clip the points to the image and recompute the area"
    severity: Severity = "fix"
    """``error``, ``warn`` or ``fix`` (clip the points)."""
    tolerance: float = Field(default=0.0, ge=0.0)
    """Pixels a point may lie past an edge and still pass."""


class PolygonAsBox(Rule):
    """No polygon part has exactly four numbers.

    pycocotools reads such a segmentation as a box ``[x, y, w, h]``, not as a polygon.
    """

    ID = "polygon_as_box"
    SCOPE = "label"
    FIX = "drop the four-number parts (and the segmentation when no part is left)"
    severity: Severity = "fix"
    """``error``, ``warn`` or ``fix`` (drop the four-number parts)."""


class RleSize(Rule):
    """Every RLE mask decodes and its size ``[height, width]`` is the image's."""

    ID = "rle_size"
    SCOPE = "label"
    severity: Literal["error", "warn"] = "error"
    """``error`` or ``warn`` (a mask of another size cannot be repaired)."""


class CrowdMask(Rule):
    """``iscrowd`` agrees with the mask type.

    Crowd regions are RLE masks, single objects are not (COCO's convention).
    """

    ID = "crowd_mask"
    SCOPE = "label"
    FIX = "set iscrowd to whether the mask is an RLE"
    severity: Severity = "fix"
    """``error``, ``warn`` or ``fix`` (set ``iscrowd`` from the mask)."""


class DuplicateBoxes(Rule):
    """No two boxes of the same class overlap with IoU of ``min_iou`` or more."""

    ID = "duplicate_boxes"
    SCOPE = "label"
    FIX = "drop the later annotation of each duplicate pair"
    severity: Severity = "fix"
    """``error``, ``warn`` or ``fix`` (drop the later one)."""
    min_iou: float = Field(default=0.95, gt=0.0, le=1.0)
    """Intersection over union from which two boxes of one class count as the same object."""


class Unlabelled(Rule):
    """The image has at least one annotation (after fixes).

    Leave the rule out to keep unlabelled images silently.
    """

    ID = "unlabelled"
    SCOPE = "label"
    severity: Literal["error", "warn"] = "warn"
    """``warn`` (keep and report) or ``error`` (quarantine)."""


class DeclaredSize(Rule):
    """The width and height the manifest declares are the image file's."""

    ID = "declared_size"
    SCOPE = "label"
    FIX = "set the manifest's width and height to the file's (labels are not moved)"
    severity: Severity = "error"
    """``error``, ``warn`` or ``fix`` (take the file's size)."""


# --- dataset rules -----------------------------------------------------------------------


class MinInstances(Rule):
    """Every class in the class map has at least ``min_count`` instances.

    Classes with none are left to ``unused_classes`` when the rule set has it.
    """

    ID = "min_instances"
    SCOPE = "dataset"
    severity: Literal["error", "warn"] = "warn"
    """``warn`` (report) or ``error`` (fail the stage)."""
    min_count: int = Field(default=10, ge=1)
    """Fewest annotations a class needs."""


class Imbalance(Rule):
    """The largest class has at most ``max_ratio`` times the instances of the smallest.

    Only classes that occur count.
    """

    ID = "imbalance"
    SCOPE = "dataset"
    severity: Literal["error", "warn"] = "warn"
    """``warn`` (report) or ``error`` (fail the stage)."""
    max_ratio: float = Field(default=100.0, ge=1.0)
    """Largest allowed ratio of the largest class count to the smallest."""


class UnusedClasses(Rule):
    """Every class in the class map occurs at least once."""

    ID = "unused_classes"
    SCOPE = "dataset"
    severity: Literal["error", "warn"] = "warn"
    """``warn`` (report) or ``error`` (fail the stage)."""


CATALOGUE: tuple[type[Rule], ...] = (
    Decode,
    MaxPixels,
    Extension,
    MinSize,
    MaxSize,
    AspectRatio,
    ColorMode,
    Blank,
    Blur,
    Exposure,
    UnknownClass,
    RenamedClass,
    NotLeaf,
    DeclaredSize,
    BoxFinite,
    BoxPositive,
    BoxInside,
    BoxMinArea,
    CategoryKnown,
    PolygonPoints,
    PolygonAsBox,
    PolygonInside,
    RleSize,
    CrowdMask,
    DuplicateBoxes,
    Unlabelled,
    MinInstances,
    Imbalance,
    UnusedClasses,
)
"""Every rule, in the order rules are applied (and fixes made)."""
RULES: dict[str, type[Rule]] = {rule.ID: rule for rule in CATALOGUE}

TAXONOMY_RULES: tuple[str, ...] = (UnknownClass.ID, RenamedClass.ID, NotLeaf.ID)
"""The rules that need a taxonomy; without one the stage leaves them out."""

TIMEOUT = "timeout"
"""Reason of an image whose check outlived the stage's ``time_limit`` (always an error)."""
CRASH = "crash"
"""Reason of an image whose check killed its worker or failed unexpectedly (an error)."""
GUARDS: tuple[str, ...] = (TIMEOUT, CRASH)

ORDER: dict[str, int] = {name: i for i, name in enumerate((*GUARDS, *RULES))}
"""Rank of every reason: guards first, then rules in catalogue order."""


def summary(rule: type[Rule]) -> str:
    """The rule's one-sentence description (its docstring, on one line)."""
    return " ".join((rule.__doc__ or "").split())


def allowed_severities(rule: type[Rule]) -> list[str]:
    """The severities a rule accepts, from its ``severity`` field."""
    annotation = rule.model_fields["severity"].annotation
    return list(getattr(annotation, "__args__", SEVERITIES))
