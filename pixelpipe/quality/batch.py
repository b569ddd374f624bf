"""One-to-one box matching of many images at once, with the result of matching each on its own.

Calling :func:`pixelpipe.quality.matching.match_boxes` image by image costs about 100 us of
Python and NumPy overhead per call, more than the matching itself on images of a few
boxes. :func:`match_many` takes the boxes of many images as concatenated arrays with
offsets, computes the IoU of every candidate pair of every image in one array operation
(the arithmetic of :func:`pixelpipe.quality.boxes.iou_matrix`, so the values are the same
to the bit) and keeps the allowed pairs. An allowed pair whose two boxes have no other
allowed pair is in every optimal matching of both passes, so it is matched as it is; only
the images with a box that could match two boxes, and the images of many boxes, run the
Hungarian matching on the whole image, exactly as
:func:`pixelpipe.quality.matching.match_similarity` does it there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pixelpipe.quality.boxes import iou_matrix
from pixelpipe.quality.inputs import zero_area
from pixelpipe.quality.matching import Floats, Indices, Mask, match_similarity

# Images with more candidate pairs than this are matched on their own: a dense IoU matrix
# costs less there than gathering the boxes of every pair, and most need the Hungarian step.
LARGE_IMAGE = 256


@dataclass(frozen=True)
class ManyMatch:
    """The pairs of many images' matchings, as flat arrays sorted by image then box of ``a``.

    Attributes:
        image: ``(k,)`` image index of each pair.
        pairs: ``(k, 2)`` global index into the ``a`` boxes, global index into the ``b`` boxes.
        ious: ``(k,)`` IoU of each pair.
        same_label: ``(k,)`` whether the pair has the same label.
    """

    image: Indices
    pairs: Indices
    ious: Floats
    same_label: Mask


def take_ranges(offsets: Indices, images: Indices) -> tuple[Indices, Indices]:
    """The box indices of some images, and the offsets of those images among them.

    Args:
        offsets: ``(images + 1,)`` start of each image's boxes in a concatenation.
        images: The images wanted, in order.

    Returns:
        ``(indices into the concatenation, (len(images) + 1,) offsets into those indices)``.
    """
    starts = offsets[images]
    lengths = offsets[images + 1] - starts
    new_offsets = np.zeros(images.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    shift = np.repeat(starts - new_offsets[:-1], lengths)
    return (np.arange(int(new_offsets[-1]), dtype=np.int64) + shift).astype(np.int64), new_offsets


def _candidates(
    offsets_a: Indices, offsets_b: Indices, skip: npt.NDArray[np.bool_]
) -> tuple[Indices, Indices, Indices]:
    """Every (a box, b box) pair within the same image, but for the images skipped.

    Returns:
        ``(image, global index into a, global index into b)`` per pair.
    """
    n = np.diff(offsets_a)
    m = np.diff(offsets_b)
    per_image = np.where(skip, 0, n * m)
    image = np.repeat(np.arange(n.size, dtype=np.int64), per_image)
    first = np.zeros(n.size, dtype=np.int64)
    np.cumsum(per_image[:-1], out=first[1:])
    local = np.arange(image.size, dtype=np.int64) - first[image]
    width = m[image]
    return image, offsets_a[image] + local // width, offsets_b[image] + local % width


def _pair_iou(a: Floats, b: Floats) -> Floats:
    """IoU of ``a[i]`` with ``b[i]``, with the operations of ``iou_matrix`` in its order."""
    ax0, ay0 = a[:, 0], a[:, 1]
    ax1, ay1 = ax0 + a[:, 2], ay0 + a[:, 3]
    bx0, by0 = b[:, 0], b[:, 1]
    bx1, by1 = bx0 + b[:, 2], by0 + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3]) + (b[:, 2] * b[:, 3]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(union > 0, inter / union, 0.0), dtype=np.float64)


def match_many(
    boxes_a: Floats,
    labels_a: npt.NDArray[np.generic],
    offsets_a: Indices,
    boxes_b: Floats,
    labels_b: npt.NDArray[np.generic],
    offsets_b: Indices,
    threshold: float,
) -> ManyMatch:
    """Match image ``i``'s boxes ``a[offsets_a[i]:offsets_a[i + 1]]`` with ``b``'s, for all ``i``.

    Args:
        boxes_a: ``(Na, 4)`` float ``[x, y, w, h]`` boxes of every image, concatenated.
        labels_a: ``(Na,)`` labels (strings or integer codes).
        offsets_a: ``(images + 1,)`` start of each image's boxes in ``boxes_a``.
        boxes_b: ``(Nb, 4)`` boxes of the other side.
        labels_b: ``(Nb,)`` labels, comparable with ``labels_a``.
        offsets_b: ``(images + 1,)`` offsets into ``boxes_b``.
        threshold: Smallest IoU of a pair, in ``[0, 1]``.

    Returns:
        The pairs :func:`pixelpipe.quality.matching.match_boxes` finds on each image.
    """
    usable_a = ~zero_area(boxes_a)
    usable_b = ~zero_area(boxes_b)
    large = np.diff(offsets_a) * np.diff(offsets_b) > LARGE_IMAGE
    image, ga, gb = _candidates(offsets_a, offsets_b, large)
    iou = _pair_iou(boxes_a[ga], boxes_b[gb])
    keep = (iou >= threshold) & (iou > 0) & usable_a[ga] & usable_b[gb]
    image, ga, gb, iou = image[keep], ga[keep], gb[keep], iou[keep]
    single = (np.bincount(ga, minlength=boxes_a.shape[0])[ga] == 1) & (
        np.bincount(gb, minlength=boxes_b.shape[0])[gb] == 1
    )
    crowded = np.union1d(image[~single], np.flatnonzero(large))
    plain = ~np.isin(image, crowded)
    parts_image, parts_a, parts_b = [image[plain]], [ga[plain]], [gb[plain]]
    for index in crowded.tolist():
        a0, a1 = int(offsets_a[index]), int(offsets_a[index + 1])
        b0, b1 = int(offsets_b[index]), int(offsets_b[index + 1])
        found = match_similarity(
            iou_matrix(boxes_a[a0:a1], boxes_b[b0:b1]),
            labels_a[a0:a1, None] == labels_b[None, b0:b1],
            threshold,
            usable_a[a0:a1],
            usable_b[b0:b1],
        )
        parts_image.append(np.full(found.pairs.shape[0], index, dtype=np.int64))
        parts_a.append(found.pairs[:, 0] + a0)
        parts_b.append(found.pairs[:, 1] + b0)
    all_image = np.concatenate(parts_image)
    all_a = np.concatenate(parts_a)
    all_b = np.concatenate(parts_b)
    order = np.lexsort((all_a, all_image))
    all_image, all_a, all_b = all_image[order], all_a[order], all_b[order]
    return ManyMatch(
        image=all_image.astype(np.int64),
        pairs=np.column_stack([all_a, all_b]).astype(np.int64).reshape(-1, 2),
        ious=_pair_iou(boxes_a[all_a], boxes_b[all_b]),
        same_label=np.asarray(labels_a[all_a] == labels_b[all_b], dtype=np.bool_).reshape(-1),
    )
