"""Agreement between annotators on image-level class labels.

Input: one row per item, one entry per annotator in a fixed order, ``None`` where that
annotator did not rate the item. Output: a JSON-ready report of percent agreement, Cohen's
kappa for every pair (scikit-learn), Fleiss' kappa (statsmodels), Krippendorff's nominal
alpha (:mod:`pixelpipe.quality.reliability`, which agrees with the ``krippendorff``
package), per-class specific agreement and alpha, per-annotator agreement, and notes on
anything that makes a number undefined. Undefined numbers are ``None``, never NaN.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from pixelpipe.quality.inputs import check_annotators, counted, number, raise_problems, ratio
from pixelpipe.quality.reliability import nominal_alpha

Codes = npt.NDArray[np.int64]


def encode_ratings(
    ratings: Sequence[Sequence[str | None]], annotators: Sequence[str]
) -> tuple[Codes, list[str]]:
    """Check the ratings and code them as integers.

    Args:
        ratings: Items, each a sequence with one ``str | None`` per annotator.
        annotators: The annotator names, in the order of each item's entries.

    Returns:
        ``(codes (items, annotators), classes)``: ``codes[i, j]`` is the index of the
        label in the sorted ``classes``, or -1 where the annotator did not rate the item.

    Raises:
        QualityInputError: Naming every item of the wrong length or with a value that is
            neither a string nor ``None``.
    """
    names = check_annotators(annotators)
    rows: list[list[str | None]] = []
    problems: list[str] = []
    for index, item in enumerate(ratings):
        if isinstance(item, str | bytes) or not hasattr(item, "__len__"):
            problems.append(f"item {index}: expected one rating per annotator, got {item!r}")
            rows.append([])
            continue
        row = list(item)
        rows.append(row)
        if len(row) != len(names):
            problems.append(f"item {index}: {len(row)} ratings for {len(names)} annotators")
        else:
            bad = [value for value in row if value is not None and not isinstance(value, str)]
            if bad:
                problems.append(f"item {index}: a rating must be a label or None, got {bad[0]!r}")
    raise_problems(problems)
    classes = sorted({value for row in rows for value in row if value is not None})
    index_of = {name: code for code, name in enumerate(classes)}
    codes = np.array(
        [[-1 if value is None else index_of[value] for value in row] for row in rows],
        dtype=np.int64,
    ).reshape(len(rows), len(names))
    return codes, classes


def class_counts(codes: Codes, classes: int) -> npt.NDArray[np.int64]:
    """``(items, classes)`` how many annotators gave each class to each item."""
    items = np.repeat(np.arange(codes.shape[0]), codes.shape[1])
    flat = codes.reshape(-1)
    rated = flat >= 0
    counts = np.zeros((codes.shape[0], max(classes, 1)), dtype=np.int64)
    np.add.at(counts, (items[rated], flat[rated]), 1)
    return counts[:, :classes]


def _cohen(codes: Codes, names: list[str], classes: list[str], notes: list[str]) -> dict[str, Any]:
    kappas: dict[str, float | None] = {}
    for j in range(len(names)):
        for k in range(j + 1, len(names)):
            key = f"{names[j]}|{names[k]}"
            both = (codes[:, j] >= 0) & (codes[:, k] >= 0)
            shared = int(both.sum())
            if shared < 2:
                kappas[key] = None
                notes.append(
                    f"Cohen's kappa of {names[j]} and {names[k]} is undefined: they rated "
                    f"{counted(shared, 'item')} in common, at least 2 are needed."
                )
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = number(cohen_kappa_score(codes[both, j], codes[both, k]))
            kappas[key] = value
            if value is None:
                used = sorted({classes[c] for c in codes[both][:, [j, k]].reshape(-1)})
                notes.append(
                    f"Cohen's kappa of {names[j]} and {names[k]} is undefined: on their "
                    f"{shared} shared items both only used {', '.join(used)}, so chance "
                    "agreement is 1."
                )
    return kappas


def _fleiss(codes: Codes, rated: npt.NDArray[np.int64]) -> tuple[float | None, str | None]:
    multi = rated >= 2
    if not multi.any():
        return None, "no item has two or more ratings"
    per_count = Counter(rated[multi].tolist())
    if len(per_count) > 1:
        parts = ", ".join(
            f"{counted(items, 'item')} {'has' if items == 1 else 'have'} {raters} raters"
            for raters, items in sorted(per_count.items())
        )
        return None, f"Fleiss' kappa needs the same number of raters on every item: {parts}"
    kept = codes[multi]
    data = kept[kept >= 0].reshape(kept.shape[0], -1)
    table, _ = aggregate_raters(data)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        value = number(fleiss_kappa(table, method="fleiss"))
    if value is None:
        return None, "only one label was used, so chance agreement is 1"
    return value, None


def _per_annotator(
    codes: Codes, counts: npt.NDArray[np.int64], rated: npt.NDArray[np.int64], names: list[str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        mine = (codes[:, j] >= 0) & (rated >= 2)
        same = counts[mine, codes[mine, j]] - 1
        out[name] = {
            "items": int((codes[:, j] >= 0).sum()),
            "agreement_with_others": ratio(int(same.sum()), int((rated[mine] - 1).sum())),
        }
    return out


def _per_class(
    codes: Codes, counts: npt.NDArray[np.int64], rated: npt.NDArray[np.int64], classes: list[str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(classes):
        n_c = counts[:, c]
        binary = np.column_stack([rated - n_c, n_c])
        alpha, _ = nominal_alpha(binary)
        out[name] = {
            "count": int(n_c.sum()),
            # Uebersax: sum n_ic (n_ic - 1) / sum n_ic (n_i - 1) = 2A / (2A + D) in pairs
            "specific_agreement": ratio(
                int((n_c * (n_c - 1)).sum()), int((n_c * (rated - 1)).sum())
            ),
            "alpha": number(alpha),
        }
    return out


def _notes(
    codes: Codes, rated: npt.NDArray[np.int64], names: list[str], classes: list[str]
) -> list[str]:
    notes: list[str] = []
    if codes.shape[0] == 0:
        notes.append("There are no items.")
    for j, name in enumerate(names):
        if not (codes[:, j] >= 0).any():
            notes.append(f"Annotator {name} rated no item.")
    single = int(((rated > 0) & (rated < 2)).sum())
    if single:
        notes.append(
            f"{counted(single, 'item')} {'has' if single == 1 else 'have'} one rating only; "
            "they count in no agreement measure."
        )
    unrated = int((rated == 0).sum())
    if unrated:
        notes.append(f"{counted(unrated, 'item')} {'has' if unrated == 1 else 'have'} no rating.")
    for c, name in enumerate(classes):
        users = [names[j] for j in range(len(names)) if (codes[:, j] == c).any()]
        if len(users) == 1:
            notes.append(f"Only {users[0]} used the label {name}.")
    return notes


def label_agreement(
    ratings: Sequence[Sequence[str | None]], annotators: Sequence[str]
) -> dict[str, Any]:
    """Agreement of several annotators on one class label per item.

    Args:
        ratings: Items, each a sequence with one ``str | None`` per annotator (``None``:
            that annotator did not rate the item).
        annotators: The annotator names, in the order of each item's entries.

    Returns:
        A JSON-ready dict: ``items`` (rated by two or more), ``percent_agreement``,
        ``cohen_kappa`` (``"a|b"`` -> value or None), ``cohen_kappa_mean``,
        ``fleiss_kappa`` and ``fleiss_kappa_reason``, ``krippendorff_alpha`` and
        ``krippendorff_alpha_reason``, ``per_class`` (count, specific agreement, one-vs-rest
        alpha), ``annotators`` (items, agreement with others) and ``notes``.

    Raises:
        QualityInputError: When an item has the wrong length or a rating is neither a label
            nor ``None``, or an annotator name is bad.
    """
    names = check_annotators(annotators)
    codes, classes = encode_ratings(ratings, names)
    counts = class_counts(codes, len(classes))
    rated = (codes >= 0).sum(axis=1)
    multi = rated >= 2
    notes = _notes(codes, rated, names, classes)
    pairs_agree = (counts * (counts - 1) // 2).sum(axis=1)
    pairs_all = rated * (rated - 1) // 2
    percent = float((pairs_agree[multi] / pairs_all[multi]).mean()) if multi.any() else None
    kappas = _cohen(codes, names, classes, notes)
    defined = [value for value in kappas.values() if value is not None]
    fleiss, fleiss_reason = _fleiss(codes, rated)
    alpha, alpha_reason = nominal_alpha(counts) if classes else (None, "no item was rated")
    return {
        "items": int(multi.sum()),
        "annotators_count": len(names),
        "classes": classes,
        "percent_agreement": number(percent),
        "cohen_kappa": kappas,
        "cohen_kappa_mean": number(math.fsum(defined) / len(defined)) if defined else None,
        "fleiss_kappa": fleiss,
        "fleiss_kappa_reason": fleiss_reason,
        "krippendorff_alpha": number(alpha),
        "krippendorff_alpha_reason": alpha_reason,
        "per_class": _per_class(codes, counts, rated, classes),
        "annotators": _per_annotator(codes, counts, rated, names),
        "notes": notes,
    }
