"""The labels and predictions of each image, and the label sets ``label_issues`` scores.

An annotation is a *prediction* when it has a ``score``, is not an image-level class label
and its annotator is the ``model`` (any annotator when ``model`` is unset, except those
listed in ``labels``), and its score is at least ``min_score``. It is a checked *label* when
it is a box (not an image-level label) and its annotator is in ``labels``, or, when
``labels`` is empty, when it has no score and is not the model's. Nothing is merged: each
label annotator's boxes on an image are one label set, scored against the image's
predictions. An annotator that the ``annotated_by`` column (ingest) says saw the image and
drew nothing there has an empty label set, so a confident prediction there counts as an
overlooked object; an image no label annotator saw is *unlabelled* and not scored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from pixelpipe import PixelpipeError, Problem, Sample, did_you_mean
from pixelpipe.dataset.schema import ANNOTATED_BY_COLUMN
from pixelpipe.formats.imagefolder import is_image_label


@dataclass(frozen=True)
class Roles:
    """Who made the predictions and whose labels are checked (the stage's params).

    Attributes:
        model: The predictions' annotator, or ``None`` for any annotation with a score.
        labels: The annotators whose labels are checked; empty: every one without a score.
        min_score: Predictions below this confidence are left out.
    """

    model: str | None
    labels: tuple[str, ...]
    min_score: float


@dataclass
class Boxes:
    """Boxes of one kind on one image, in manifest order.

    Attributes:
        bboxes: COCO ``[x, y, w, h]`` boxes.
        classes: Their category ids.
        scores: Their confidences (predictions only).
    """

    bboxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


@dataclass
class Image:
    """One manifest row's labels and predictions.

    Attributes:
        row: Position in the manifest.
        id: Sample id.
        image: Stored image path, relative to the project root.
        predictions: The model's boxes.
        labels: Each label annotator's boxes (``None``: labels without an annotator).
        seen: The ``annotated_by`` column: annotators who labelled the image.
    """

    row: int
    id: str
    image: str
    predictions: Boxes
    labels: dict[str | None, Boxes]
    seen: tuple[str, ...]


@dataclass(frozen=True)
class LabelSet:
    """One annotator's boxes on one image, scored against the image's predictions.

    Attributes:
        image: The image.
        annotator: Whose labels (``None``: labels without an annotator).
    """

    image: Image
    annotator: str | None

    @property
    def boxes(self) -> Boxes:
        """The label boxes (none for an annotator who saw the image and drew nothing)."""
        return self.image.labels.get(self.annotator) or Boxes()


@dataclass
class Gathered:
    """Every image's boxes, and who made which kind of annotation.

    Attributes:
        images: One entry per manifest row, in order.
        annotators: Every annotator named in the manifest.
        scored: Boxes with a score that are not checked labels, by annotator.
        labellers: Annotators with at least one checked label box.
    """

    images: list[Image] = field(default_factory=list)
    annotators: set[str] = field(default_factory=set)
    scored: Counter[str | None] = field(default_factory=Counter)
    labellers: set[str | None] = field(default_factory=set)


def _is_prediction(roles: Roles, score: float | None, annotator: str | None) -> bool:
    if score is None:
        return False
    if roles.model is not None:
        return annotator == roles.model
    return annotator not in roles.labels


def _is_label(roles: Roles, score: float | None, annotator: str | None) -> bool:
    if roles.labels:
        return annotator in roles.labels
    return score is None and (roles.model is None or annotator != roles.model)


def gather(samples: Iterable[Sample], roles: Roles) -> Gathered:
    """Sort each image's box annotations into labels and predictions.

    Args:
        samples: The manifest's samples, in order.
        roles: Who is who.

    Returns:
        The images and the annotator tallies the params checks need.
    """
    out = Gathered()
    for row, sample in enumerate(samples):
        predictions = Boxes()
        labels: dict[str | None, Boxes] = {}
        for ann in sample.annotations:
            if ann.annotator is not None:
                out.annotators.add(ann.annotator)
            if is_image_label(ann):
                continue
            box = (float(ann.bbox[0]), float(ann.bbox[1]), float(ann.bbox[2]), float(ann.bbox[3]))
            if ann.score is not None and not _is_label(roles, ann.score, ann.annotator):
                out.scored[ann.annotator] += 1
            if _is_prediction(roles, ann.score, ann.annotator):
                if ann.score is not None and ann.score >= roles.min_score:
                    predictions.bboxes.append(box)
                    predictions.classes.append(int(ann.category_id))
                    predictions.scores.append(float(ann.score))
            elif _is_label(roles, ann.score, ann.annotator):
                mine = labels.setdefault(ann.annotator, Boxes())
                mine.bboxes.append(box)
                mine.classes.append(int(ann.category_id))
                out.labellers.add(ann.annotator)
        seen = sample.extra.get(ANNOTATED_BY_COLUMN) or ()
        out.annotators.update(str(name) for name in seen)
        out.images.append(
            Image(row, sample.id, sample.image, predictions, labels, tuple(str(s) for s in seen))
        )
    return out


def check_roles(gathered: Gathered, roles: Roles, stage: str) -> None:
    """Refuse params naming annotators the input does not have, or ambiguous predictions.

    Args:
        gathered: What :func:`gather` found.
        roles: The params.
        stage: The stage's name, for the params key.

    Raises:
        PixelpipeError: Every problem at once, each at its params key. No prediction at
            all with ``model`` unset is not one (the defaults run on any dataset): the
            stage warns and scores nothing.
    """
    known = sorted(gathered.annotators)
    problems: list[Problem] = []

    def unknown(name: str, key: str) -> None:
        hint = did_you_mean(name, known) or f"; annotators: {', '.join(known) or 'none'}"
        problems.append(
            Problem(f"no annotator '{name}' in the input{hint}", file="params.yaml", key=key)
        )

    for name in roles.labels:
        if name not in gathered.annotators:
            unknown(name, f"{stage}.labels")
    if roles.model is not None and roles.model in roles.labels:
        problems.append(
            Problem(
                f"'{roles.model}' is both the model and a label annotator",
                file="params.yaml",
                key=f"{stage}.labels",
            )
        )
    elif roles.model is not None and roles.model not in gathered.annotators:
        unknown(roles.model, f"{stage}.model")
    elif roles.model is not None and not gathered.scored[roles.model]:
        problems.append(
            Problem(
                f"annotator '{roles.model}' has no box with a score: predictions "
                "need one (ingest them with `predictions:`)",
                file="params.yaml",
                key=f"{stage}.model",
            )
        )
    elif roles.model is None and len(gathered.scored) > 1:
        names = sorted("(no annotator)" if n is None else n for n in gathered.scored)
        problems.append(
            Problem(
                f"annotations with a score come from several annotators ({', '.join(names)}): "
                "name the model whose predictions to use",
                file="params.yaml",
                key=f"{stage}.model",
            )
        )
    if problems:
        raise PixelpipeError(problems)


def label_sets(gathered: Gathered) -> list[LabelSet]:
    """The label sets to score: per image with a prediction, each label annotator's.

    An annotator who drew boxes somewhere in the input and whom ``annotated_by`` lists for
    an image where they drew none has an empty label set there.

    Args:
        gathered: What :func:`gather` found.

    Returns:
        The label sets, by manifest row, then annotator (unnamed first, then by name).
    """
    out = []
    for image in gathered.images:
        if not image.predictions.bboxes:
            continue
        names = set(image.labels) | (set(image.seen) & gathered.labellers)
        for name in sorted(names, key=lambda n: (n is not None, n or "")):
            out.append(LabelSet(image, name))
    return out
