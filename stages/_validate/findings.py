"""What a rule reports about one sample."""

from __future__ import annotations

from dataclasses import dataclass

from stages._validate.rules import Severity

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one sample (or one annotation of it).

    Attributes:
        rule: The rule id (or ``timeout``/``crash``).
        severity: What happened: ``error`` (quarantined), ``warn`` (kept, reported) or
            ``fix`` (fixed as recorded in ``message``). A fix that cannot be applied is
            reported as ``warn``.
        message: A sentence for people, naming the values involved.
        boxes: Boxes ``[x, y, w, h]`` in image pixels to draw in the report (the
            offending ones, as they were before any fix).
        labels: One caption per box (the class name).
        annotation: Index of the annotation concerned in the input sample, if any.
    """

    rule: str
    severity: Severity
    message: str
    boxes: tuple[Box, ...] = ()
    labels: tuple[str, ...] = ()
    annotation: int | None = None
