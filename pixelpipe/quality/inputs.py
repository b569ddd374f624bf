"""Checks of what the label maths takes in, the error a bad input raises, and JSON-safe numbers.

The quality functions are pure and know no file, so a bad input raises
:class:`QualityInputError` (a ``ValueError``) whose ``problems`` list names the image,
item or annotator of every problem found; the caller that read the file adds the file and
line when it turns them into a :class:`pixelpipe.errors.PixelpipeError`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Boxes = npt.NDArray[np.float64]
Labels = npt.NDArray[np.str_]
MAX_LISTED = 20  # problems listed one by one in the message; the rest are counted


class QualityInputError(ValueError):
    """An input to the label maths that cannot be used, with every problem found.

    Args:
        problems: One sentence per problem, each naming where it is (image, annotator, item).
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        shown = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(shown)
        text = "\n".join(shown) + (f"\n... and {more} more" if more else "")
        super().__init__(text)


def raise_problems(problems: Sequence[str]) -> None:
    """Raise :class:`QualityInputError` when ``problems`` is not empty.

    Args:
        problems: Sentences collected while checking an input.

    Raises:
        QualityInputError: Listing every problem.
    """
    if problems:
        raise QualityInputError(problems)


def check_threshold(value: float, name: str = "iou_threshold") -> float:
    """An IoU threshold in ``[0, 1]`` as a float.

    Args:
        value: The threshold.
        name: The parameter's name, for the message.

    Returns:
        ``value`` as a float.

    Raises:
        QualityInputError: When it is not a number in ``[0, 1]``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise QualityInputError([f"{name} must be a number in [0, 1], got {value!r}"])
    return float(value)


def check_annotators(annotators: Sequence[str]) -> list[str]:
    """Annotator names as a list: strings, unique, without ``|`` (it joins pair keys).

    Args:
        annotators: The names, in the order the caller wants them reported.

    Returns:
        The names as a list.

    Raises:
        QualityInputError: Naming every bad or repeated name.
    """
    if isinstance(annotators, str):
        raise QualityInputError(["annotators must be a list of names, not one string"])
    names = list(annotators)
    problems = [f"annotator name {n!r} is not a string" for n in names if not isinstance(n, str)]
    problems += [
        f"annotator name {n!r} contains '|', which joins the names of a pair"
        for n in names
        if isinstance(n, str) and "|" in n
    ]
    repeated = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
    problems += [f"annotator {n!r} is listed more than once" for n in repeated]
    raise_problems(problems)
    return names


def as_boxes(boxes: npt.ArrayLike, labels: Iterable[Any], where: str) -> tuple[Boxes, Labels]:
    """Check one annotator's boxes and labels and return them as arrays.

    Args:
        boxes: ``(n, 4)`` ``[x, y, w, h]`` boxes (an empty list is no box).
        labels: ``n`` class names.
        where: Where they come from (``image 'a.jpg', annotator 'ann'``), for the message.

    Returns:
        ``(float64 (n, 4) boxes, str (n,) labels)``.

    Raises:
        QualityInputError: When the shapes disagree, a value is not finite or a label is
            not a string.
    """
    problems: list[str] = []
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise QualityInputError([f"{where}: boxes are not numbers"]) from None
    if array.size == 0:
        array = array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        problems.append(
            f"{where}: boxes must be an (n, 4) array of [x, y, w, h], got {array.shape}"
        )
    elif not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        problems.append(f"{where}: {bad} boxes have a value that is not a finite number")
    try:
        names = list(labels) if not isinstance(labels, str) else [labels]
    except TypeError:
        raise QualityInputError([f"{where}: labels must be a list of strings"]) from None
    bad_labels = [name for name in names if not isinstance(name, str)]
    if bad_labels:
        problems.append(f"{where}: labels must be strings, got {bad_labels[0]!r}")
    if not problems and len(names) != array.shape[0]:
        problems.append(
            f"{where}: {counted(array.shape[0], 'box', 'boxes')} but {counted(len(names), 'label')}"
        )
    raise_problems(problems)
    return array, np.array(names, dtype=np.str_).reshape(-1)


def zero_area(boxes: Boxes) -> npt.NDArray[np.bool_]:
    """Boxes with no area (width or height not positive): they never match anything."""
    return np.asarray((boxes[:, 2] <= 0) | (boxes[:, 3] <= 0), dtype=np.bool_)


def number(value: float | np.floating[Any] | None) -> float | None:
    """A finite float, or ``None`` for a missing or undefined value (JSON has no NaN)."""
    if value is None:
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` as a float, ``None`` when the denominator is 0."""
    return float(numerator) / float(denominator) if denominator else None


def id_key(image_id: Hashable) -> tuple[int, int, str]:
    """A sort key for image ids of mixed types: integers by value first, the rest as text."""
    if isinstance(image_id, int | np.integer) and not isinstance(image_id, bool):
        return (0, int(image_id), "")
    return (1, 0, str(image_id))


def plain_id(image_id: Hashable) -> Any:
    """An image id as a JSON value: integers and strings kept, anything else as text."""
    if isinstance(image_id, np.integer):
        return int(image_id)
    if isinstance(image_id, int | str) and not isinstance(image_id, bool):
        return image_id
    return str(image_id)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``"1 item"``, ``"3 items"``: a count with its noun in the right number."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def check_image(
    position: int, entry: Any, names: set[str], ids: set[Hashable], *, others: bool = False
) -> tuple[Hashable, dict[str, tuple[Boxes, Labels]]]:
    """Check one ``(image_id, {annotator: (boxes, labels)})`` entry.

    Args:
        position: The entry's position in the input, for the message.
        entry: The entry.
        names: The annotators wanted.
        ids: The ids seen so far; this one is added.
        others: Leave out annotators not in ``names`` instead of refusing them.

    Returns:
        ``(image_id, {annotator: (boxes, labels)})`` for the wanted annotators present.

    Raises:
        QualityInputError: Listing every problem of the entry.
    """
    try:
        image_id, per = entry
    except (TypeError, ValueError):
        raise QualityInputError([f"image #{position}: expected (image_id, annotators)"]) from None
    try:
        if image_id in ids:
            raise QualityInputError([f"image {image_id!r} is listed more than once"])
        ids.add(image_id)
    except TypeError:
        raise QualityInputError(
            [f"image #{position}: the id {image_id!r} is not hashable"]
        ) from None
    if not isinstance(per, Mapping):
        raise QualityInputError([f"image {image_id!r}: expected a mapping annotator -> boxes"])
    problems = [
        f"image {image_id!r}: annotator {name!r} is not among the annotators compared"
        for name in per
        if name not in names and not others
    ]
    checked: dict[str, tuple[Boxes, Labels]] = {}
    for name in sorted(n for n in per if n in names):
        try:
            boxes, labels = per[name]
            checked[name] = as_boxes(boxes, labels, f"image {image_id!r}, annotator {name!r}")
        except QualityInputError as error:
            problems.extend(error.problems)
        except (TypeError, ValueError):
            problems.append(f"image {image_id!r}, annotator {name!r}: expected (boxes, labels)")
    raise_problems(problems)
    return image_id, checked
