"""Geometric verification: copies keep many agreeing keypoints, different photos few."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelpipe.imaging.verify import (
    FEW_KEYPOINTS,
    MAX_COLOUR_DIFFERENCE,
    MIN_MATCHES,
    VerifySpec,
    describe,
    pair_inliers,
    thumbnail,
    verify_read,
)

DATA = Path(str(__import__("skimage").__file__)).parent / "data"
ASTRONAUT = DATA / "astronaut.png"
COFFEE = DATA / "coffee.png"


def _encoded(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def _astronaut() -> Image.Image:
    with Image.open(ASTRONAUT) as opened:
        return opened.convert("RGB")


@pytest.mark.parametrize(
    ("edit", "same"),
    [
        (lambda im: im.resize((128, 128)), True),  # a thumbnail
        (lambda im: im.crop((40, 30, 480, 470)), True),  # cropped by about 15%
        (lambda im: im.resize((512, 300)), True),  # squashed: the aspect hypothesis
        (lambda im: im.convert("L"), True),  # grayscale
        (lambda im: Image.open(COFFEE), False),  # another photo
    ],
)
def test_copies_verify_and_other_photos_do_not(edit: object, same: bool) -> None:
    original = _astronaut()
    copy = edit(original)  # type: ignore[operator]
    spec = VerifySpec()
    a = thumbnail(Image.open(io.BytesIO(_encoded(original))), spec.side)
    b = thumbnail(Image.open(io.BytesIO(_encoded(copy))), spec.side)
    found, colour = pair_inliers(a, b, spec)
    assert (found >= MIN_MATCHES) is same, found
    if same:  # a copy's colours agree, and a grayscale copy is not compared by colour
        assert colour is None if copy.mode == "L" else colour is not None and colour < 9


def test_results_are_deterministic_and_errors_are_reported_per_pair() -> None:
    sources = {"a": _encoded(_astronaut()), "b": _encoded(_astronaut().resize((200, 200)))}
    sources["broken"] = b"not an image"
    pairs = [("a", "b", 0), ("a", "broken", 0)]
    first = verify_read(VerifySpec(), sources.__getitem__, pairs)
    assert first == verify_read(VerifySpec(), sources.__getitem__, pairs)
    assert first[0][0] >= MIN_MATCHES and first[0][1] >= FEW_KEYPOINTS and first[0][3] is None
    assert first[1][:3] == (0, 0, -1.0) and "UnidentifiedImageError" in str(first[1][3])


def test_a_flat_image_has_too_few_keypoints_to_judge() -> None:
    flat = np.full((200, 300), 128, dtype=np.uint8)
    assert describe(flat, VerifySpec()).count < FEW_KEYPOINTS


def test_a_flipped_copy_verifies_once_turned_the_same_way() -> None:
    sources = {
        "a": _encoded(_astronaut()),
        "b": _encoded(_astronaut().transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    }
    plain, turned = verify_read(VerifySpec(), sources.__getitem__, [("a", "b", 0), ("a", "b", 1)])
    assert plain[0] < MIN_MATCHES <= turned[0]  # 1: flip_left_right (ORB sees no mirror)


def test_one_print_in_two_colours_is_told_apart_by_colour() -> None:
    original = _astronaut()
    red, green, blue = original.split()
    swapped = Image.merge("RGB", (blue, red, green))  # the same picture, colours turned
    spec = VerifySpec()
    a = thumbnail(Image.open(io.BytesIO(_encoded(original))), spec.side)
    b = thumbnail(Image.open(io.BytesIO(_encoded(swapped))), spec.side)
    found, colour = pair_inliers(a, b, spec)
    assert found >= MIN_MATCHES  # the structure agrees ...
    assert colour is not None and colour > MAX_COLOUR_DIFFERENCE  # ... the colours do not
