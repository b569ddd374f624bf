"""EXIF orientation: pixels turned once, labels moved exactly as Pillow moves the pixels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from pycocotools import mask as mask_utils

from pixelpipe.dataset import Annotation
from pixelpipe.formats.pixels import ORIENTATION_TAG, orient_annotations, probe, upright

# Pillow's own transpose for each EXIF orientation (what viewers do).
PILLOW = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
W, H = 40, 20
BOX = (5, 3, 12, 7)  # x, y, w, h in the stored image


def _stored_mask() -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.uint8)
    x, y, w, h = BOX
    mask[y : y + h, x : x + w] = 1
    mask[y, x] = 0  # break the symmetry: a box alone cannot tell a flip from a turn
    return mask


@pytest.mark.parametrize("orientation", sorted(PILLOW))
def test_labels_move_like_pillow_moves_pixels(orientation: int) -> None:
    stored = _stored_mask()
    shown = np.asarray(Image.fromarray(stored * 255).transpose(PILLOW[orientation])) > 0
    ys, xs = np.nonzero(shown)
    x, y, w, h = BOX
    rle = mask_utils.encode(np.asfortranarray(stored))
    annotation = Annotation(
        1,
        (float(x), float(y), float(w), float(h)),
        polygons=[[x, y, x + w, y, x + w, y + h]],
        rle={"size": [H, W], "counts": rle["counts"].decode()},
    )
    (moved,) = orient_annotations([annotation], orientation, W, H)
    assert moved.bbox == (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
    assert moved.rle is not None
    decoded = mask_utils.decode({"size": moved.rle["size"], "counts": moved.rle["counts"].encode()})
    assert np.array_equal(decoded > 0, shown)
    assert moved.polygons is not None and len(moved.polygons[0]) == 6
    px, py = moved.polygons[0][0], moved.polygons[0][1]
    assert (moved.bbox[0] <= px <= moved.bbox[0] + moved.bbox[2]) and (
        moved.bbox[1] <= py <= moved.bbox[1] + moved.bbox[3]
    )


@pytest.mark.parametrize("orientation", range(2, 9))
def test_pillow_orientation_photos_are_turned_upright(corpora: Path, orientation: int) -> None:
    folder = corpora / "corrupt" / "pillow"
    path = folder / f"hopper_orientation_{orientation}.jpg"
    probed = probe(path, 10**8)
    assert not isinstance(probed, tuple) and probed.orientation == orientation
    data, ext = upright(path)
    assert ext == ".jpg"
    with Image.open(io.BytesIO(data)) as turned:
        assert turned.getexif().get(ORIENTATION_TAG) is None
        expected = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        difference = np.abs(
            np.asarray(turned.convert("RGB"), dtype=int) - np.asarray(expected, dtype=int)
        )
        assert difference.mean() < 2.0  # one JPEG re-encode at quality 95
    with Image.open(folder / "hopper.jpg") as reference:
        assert (
            np.abs(
                np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=int)
                - np.asarray(reference.convert("RGB"), dtype=int)
            ).mean()
            < 12.0
        )  # the photo looks like the unrotated original


def test_a_rectangle_photo_swaps_its_size(corpora: Path) -> None:
    path = corpora / "corrupt/pillow/orientation_rectangle.jpg"
    probed = probe(path, 10**8)
    assert not isinstance(probed, tuple)
    assert (probed.width, probed.height, probed.orientation, probed.displayed) == (2, 1, 8, (1, 2))
    data, _ = upright(path)
    assert Image.open(io.BytesIO(data)).size == (1, 2)


def test_png_and_webp_orientations(corpora: Path) -> None:
    for name, ext in (
        ("exif_imagemagick_orientation.png", ".png"),
        ("hopper_orientation_6.webp", ".webp"),
    ):
        data, got = upright(corpora / "corrupt/pillow" / name)
        assert got == ext
        assert Image.open(io.BytesIO(data)).getexif().get(ORIENTATION_TAG) is None


PROBES = [
    # a decompression bomb is refused before decoding
    ("decompression_bomb.gif", "too_large"),
    # text with an image name
    ("broken.png", "unreadable"),
    # a zero-width GIF
    ("zero_width.gif", "unreadable"),
]


@pytest.mark.parametrize(("name", "reason"), PROBES)
def test_bad_files_are_reasons_not_crashes(corpora: Path, name: str, reason: str) -> None:
    result = probe(corpora / "corrupt/pillow" / name, 89_478_485)
    assert isinstance(result, tuple) and result[0] == reason


def test_broken_exif_reads_as_upright(corpora: Path) -> None:
    for name in ("hopper_bad_exif.jpg", "invalid-exif.jpg", "exif_typeerror.jpg"):
        result = probe(corpora / "corrupt/pillow" / name, 89_478_485)
        assert not isinstance(result, tuple) and result.orientation == 1
