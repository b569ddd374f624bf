"""Image properties: known values on synthetic images, EXIF sizes, JPEG quality, real photos."""

from __future__ import annotations

import io
import math
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps, JpegImagePlugin

from pixelpipe.imaging.properties import (
    PROPERTIES,
    THUMBNAIL,
    image_properties,
    jpeg_quality,
    properties_chunk,
    read_properties,
    thumbnail,
)

ORIENTATION = 0x0112


def _encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _checkerboard(size: int = 128, square: int = 8, low: int = 40, high: int = 200) -> Image.Image:
    cells = (np.indices((size, size)) // square).sum(axis=0) % 2
    return Image.fromarray(np.where(cells == 1, high, low).astype(np.uint8))


def _noise(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """A smooth random colour image (JPEG-like content, no file needed)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8))
    return small.resize((width, height), Image.Resampling.BICUBIC)


def _photos(corpora: Path, count: int) -> list[Path]:
    photos = sorted((corpora / "photos" / "clothing").glob("*.jpg"))
    if len(photos) < count:
        pytest.skip(f"fewer than {count} photos in {corpora / 'photos' / 'clothing'}")
    return photos[:count]


def test_properties_come_in_the_contract_order() -> None:
    values = read_properties(_encode(_noise()))
    assert tuple(values) == PROPERTIES
    assert all(isinstance(value, float) for value in values.values())


@pytest.mark.parametrize(
    ("colour", "expected"),
    [
        # mid grey: brightness 128/255, every channel the same
        (
            (128, 128, 128),
            {
                "brightness": 128 / 255,
                "mean_r": 128 / 255,
                "mean_g": 128 / 255,
                "mean_b": 128 / 255,
            },
        ),
        # pure red: luma is BT.601's red weight
        ((255, 0, 0), {"brightness": 0.299, "mean_r": 1.0, "mean_g": 0.0, "mean_b": 0.0}),
        # pure blue: its weight, 0.114
        ((0, 0, 255), {"brightness": 0.114, "mean_r": 0.0, "mean_g": 0.0, "mean_b": 1.0}),
    ],
)
def test_a_flat_image_has_no_contrast_and_no_blur_value(
    colour: tuple[int, int, int], expected: dict[str, float]
) -> None:
    values = read_properties(_encode(Image.new("RGB", (60, 40), colour)))
    for name, value in expected.items():
        assert values[name] == pytest.approx(value, abs=1e-9), name
    assert values["rms_contrast"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(values["blur"])
    assert (values["width"], values["height"], values["aspect"]) == (60.0, 40.0, 1.5)
    assert math.isnan(values["jpeg_quality"])


def test_a_flat_grey_image_is_half_bright() -> None:
    values = read_properties(_encode(Image.new("L", (32, 32), 128)))
    assert values["brightness"] == pytest.approx(0.5, abs=1 / 255)
    assert values["rms_contrast"] == 0.0
    assert math.isnan(values["blur"])


def test_black_and_white_halves_by_hand() -> None:
    pixels = np.zeros((64, 64), dtype=np.uint8)
    pixels[:, 32:] = 255
    values = read_properties(_encode(Image.fromarray(pixels)))
    # luma is 0 on half the pixels and 1 on the other: mean 0.5, population std 0.5
    assert values["brightness"] == pytest.approx(0.5)
    assert values["rms_contrast"] == pytest.approx(0.5)


def test_a_sixteen_bit_image_is_scaled_not_clipped() -> None:
    image = Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16))
    assert image.mode.startswith("I;16")
    values = read_properties(_encode(image))
    assert values["brightness"] == pytest.approx(32768 / 65535)


def test_blur_drops_when_the_checkerboard_is_blurred() -> None:
    sharp = _checkerboard()
    blurred = sharp.filter(ImageFilter.GaussianBlur(2))
    sharp_blur = read_properties(_encode(sharp))["blur"]
    blurred_blur = read_properties(_encode(blurred))["blur"]
    assert blurred_blur < 0.5 * sharp_blur


def test_blur_ignores_exposure_on_a_checkerboard() -> None:
    # 200/40 halved is 100/20 exactly: both variances shrink 4 times, blur stays
    bright = read_properties(_encode(_checkerboard(low=40, high=200)))
    dark = read_properties(_encode(_checkerboard(low=20, high=100)))
    assert dark["blur"] == pytest.approx(bright["blur"], rel=1e-9)
    assert dark["rms_contrast"] == pytest.approx(bright["rms_contrast"] / 2)
    assert dark["brightness"] == pytest.approx(bright["brightness"] / 2)


@pytest.mark.parametrize(
    "quality",
    [
        # the two settings
        50,
        90,
        # low quality: the table's values are scaled up 5000 / q
        10,
        # Pillow's default
        75,
        # near the top, where tables differ by ones
        97,
    ],
)
def test_jpeg_quality_is_estimated_from_the_tables(quality: int) -> None:
    data = _encode(_noise(), "JPEG", quality=quality)
    assert abs(read_properties(data)["jpeg_quality"] - quality) <= 3
    with Image.open(io.BytesIO(data)) as image:
        assert jpeg_quality(image) == quality  # Pillow writes the IJG tables exactly


@pytest.mark.parametrize(
    "fmt",
    [
        # lossless formats have no quantization table
        "PNG",
        # WebP is lossy but not a JPEG
        "WEBP",
        # nor is a bitmap
        "BMP",
    ],
)
def test_jpeg_quality_is_nan_for_other_formats(fmt: str) -> None:
    assert math.isnan(read_properties(_encode(_noise(), fmt))["jpeg_quality"])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_displayed_size(orientation: int) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = _encode(_noise(80, 40), "JPEG", exif=exif)
    with Image.open(io.BytesIO(data)) as image:
        displayed = ImageOps.exif_transpose(image).size  # Pillow's own reading
    values = read_properties(data)
    assert (values["width"], values["height"]) == displayed
    assert values["aspect"] == displayed[0] / displayed[1]
    # turning the picture changes no pixel statistic
    plain = read_properties(_encode(_noise(80, 40), "JPEG"))
    for name in ("brightness", "rms_contrast", "blur", "jpeg_quality"):
        assert values[name] == pytest.approx(plain[name]), name


def test_the_corpus_orientation_files_agree_with_pillow(corpora: Path) -> None:
    files = sorted((corpora / "corrupt" / "pillow").glob("*orientation*"))
    assert any(f.name == "orientation_rectangle.jpg" for f in files)
    swapped = 0
    for path in files:
        with Image.open(path) as image:
            stored = image.size
            displayed = ImageOps.exif_transpose(image).size
        values = read_properties(str(path))
        assert (values["width"], values["height"]) == displayed, path.name
        swapped += displayed != stored
    assert swapped >= 1  # orientation_rectangle.jpg: stored 2 x 1, shown 1 x 2


def test_a_large_image_is_measured_on_a_thumbnail() -> None:
    data = _encode(_noise(1024, 512), "JPEG", quality=90)
    with Image.open(io.BytesIO(data)) as image:
        pixels = thumbnail(image)
    assert pixels.shape == (THUMBNAIL // 2, THUMBNAIL, 3)
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    values = read_properties(data)
    assert (values["width"], values["height"]) == (1024.0, 512.0)


def test_image_properties_takes_the_quality_it_is_given() -> None:
    with Image.open(io.BytesIO(_encode(_noise()))) as image:
        values = image_properties(image, 42.0)
    assert values["jpeg_quality"] == 42.0


def test_a_path_a_url_and_the_bytes_give_the_same_values(tmp_path: Path) -> None:
    data = _encode(_noise(), "JPEG", quality=80)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    url = f"memory://pixelpipe-tests/{uuid.uuid4().hex}.jpg"
    with fsspec.open(url, "wb") as stream:
        stream.write(data)
    try:
        assert read_properties(str(path)) == read_properties(data) == read_properties(url)
    finally:
        fsspec.filesystem("memory").rm(url)


def test_bad_input_raises_oserror_or_valueerror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_properties(str(tmp_path / "missing.jpg"))
    with pytest.raises(OSError, match="not an image file Pillow can identify"):
        read_properties(b"not an image at all")
    # the error the runner met reading the file is raised again here
    with pytest.raises(PermissionError, match="denied"):
        read_properties(PermissionError(13, "denied"))
    truncated = _encode(_noise(), "JPEG")[:400]
    with pytest.raises(OSError, match=r"(?i)truncated"):
        read_properties(truncated)


def test_properties_chunk_reports_bad_images_without_raising(tmp_path: Path) -> None:
    good = _encode(_noise())
    missing = str(tmp_path / "gone.png")
    results = properties_chunk([good, b"junk", missing, OSError(5, "I/O error")])
    assert results[0] == (read_properties(good), None)
    assert [error for _, error in results[1:]] == [
        "UnidentifiedImageError: not an image file Pillow can identify",
        "FileNotFoundError: No such file or directory",
        "OSError: I/O error",
    ]
    assert all(values is None for values, _ in results[1:])
    assert str(tmp_path) not in "".join(error or "" for _, error in results)


def test_every_broken_corpus_file_gives_values_or_a_reason(corpora: Path) -> None:
    folder = corpora / "corrupt" / "pillow"
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("LICENSE"))
    assert len(files) > 50
    results = properties_chunk([str(p) for p in files])
    reasons = {p.name: error for p, (_, error) in zip(files, results, strict=True) if error}
    assert "decompression_bomb.gif" in reasons
    assert "truncated_jpeg.jpg" in reasons
    for path, (values, error) in zip(files, results, strict=True):
        assert (values is None) != (error is None), path.name
        if values is not None:
            assert tuple(values) == PROPERTIES, path.name
            assert str(folder) not in (error or "")


def test_darkening_real_photos_changes_exposure_only(corpora: Path) -> None:
    for path in _photos(corpora, 12):
        with Image.open(path) as image:
            assert isinstance(image, JpegImagePlugin.JpegImageFile)
            tables = image.quantization
            sampling = JpegImagePlugin.get_sampling(image)
            darker = image.point(lambda value: round(value * 0.6))
        # the same tables and subsampling as the original: what quality="keep" does for
        # an image opened as a JPEG (a changed copy is no longer one)
        data = _encode(darker, "JPEG", qtables=tables, subsampling=sampling)
        before = read_properties(str(path))
        after = read_properties(data)
        for name in ("brightness", "mean_r", "mean_g", "mean_b", "rms_contrast"):
            assert after[name] == pytest.approx(before[name] * 0.6, rel=0.05), (path.name, name)
        for name in ("width", "height", "aspect", "jpeg_quality"):
            assert after[name] == before[name], (path.name, name)
        assert after["blur"] == pytest.approx(before["blur"], rel=0.1), path.name


def test_real_photos_have_plausible_values(corpora: Path) -> None:
    for path in _photos(corpora, 20):
        values = read_properties(str(path))
        for name in ("brightness", "rms_contrast", "mean_r", "mean_g", "mean_b"):
            assert 0.0 < values[name] < 1.0, (path.name, name)
        assert values["blur"] > 0.0
        assert 1 <= values["jpeg_quality"] <= 100
