"""The ``validate`` stage: rule sets, every rule, guarded workers, quarantine, report.

Real files throughout: images written with Pillow, the Pillow project's broken files,
BCCD's VOC labels, a FIFO that really blocks a decoder. No mocks, no test time limits.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image, ImageFilter

from pixelpipe import Annotation, Category, DatasetBuilder, PixelpipeError, Sample
from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.engine.yamlio import load_text
from stages._validate.classes import check_classes
from stages._validate.guard import guarded_map
from stages._validate.images import ImageConfig, ImageTask, check_image
from stages._validate.labels import check_labels, rle_counts
from stages._validate.report import placeholder
from stages._validate.rules import CATALOGUE, RULES, TAXONOMY_RULES
from stages._validate.ruleset import load_ruleset, parse_ruleset
from stages.validate import Params

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RULES = REPO / "configs" / "validation" / "default.yaml"
NAN = float("nan")


def rule_counts(root: Path) -> dict[str, dict[str, int]]:
    """Findings per rule and severity, from the stage's DVC plot."""
    rows = json.loads((root / "reports/plots/validate/findings.json").read_text())
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["rule"], {})[row["severity"]] = row["findings"]
    return counts


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about validation, not MLflow: no run is logged."""
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")


# --- real images for the image rules --------------------------------------------------


def _sharp(width: int, height: int, seed: int = 0) -> Image.Image:
    """A textured RGB picture: edges everywhere, mid-gray on average."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    board = ((xx // 6 + yy // 6) % 2) * 120 + 60
    noise = rng.integers(-30, 30, size=(height, width, 3))
    pixels = np.clip(board[..., None] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small real image per situation a rule looks for."""
    folder = tmp_path_factory.mktemp("images")
    ok = _sharp(96, 64)
    files: dict[str, bytes] = {
        "ok.jpg": _save(ok, "JPEG", quality=95),
        "ok.png": _save(ok, "PNG"),
        "truncated.jpg": _save(_sharp(256, 256, 1), "JPEG", quality=90)[:6000],
        "png_named.jpg": _save(ok, "PNG"),
        "tiny.png": _save(_sharp(16, 12), "PNG"),
        "wide.png": _save(_sharp(400, 20), "PNG"),
        "cmyk.jpg": _save(ok.convert("CMYK"), "JPEG", quality=95),
        "palette.png": _save(ok.convert("P"), "PNG"),
        "flat.png": _save(Image.new("RGB", (96, 64), (128, 128, 128)), "PNG"),
        "blurred.png": _save(ok.filter(ImageFilter.GaussianBlur(4)), "PNG"),
        "dark.png": _save(Image.fromarray((np.asarray(ok) // 32).astype(np.uint8)), "PNG"),
        "bright.png": _save(Image.fromarray((255 - np.asarray(ok) // 32).astype(np.uint8)), "PNG"),
    }
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    files["gray16.png"] = _save(Image.fromarray(ramp), "PNG")
    rgba = ok.convert("RGBA")
    rgba.putalpha(Image.new("L", ok.size, 0))  # fully transparent
    files["transparent.png"] = _save(rgba, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    files["cmyk_rotated.jpg"] = _save(ok.convert("CMYK"), "JPEG", quality=95, exif=exif)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _rule(rule_id: str, config: dict[str, Any]) -> Any:
    return RULES[rule_id].model_validate(config)


def _check(images: Path, name: str, rules: dict[str, Any], as_bytes: bool = False) -> Any:
    """The image rules' report on one file, given to the check as its path or its bytes."""
    path = images / name
    pixels = path.read_bytes() if as_bytes else str(path)
    return check_image(ImageConfig(rules=rules), ImageTask(f"data/ingest/{name}", pixels=pixels))


IMAGE_CASES = [
    # decode: a complete JPEG decodes
    ("decode", {}, "ok.jpg", None),
    # decode: the same kind of JPEG cut short does not
    ("decode", {}, "truncated.jpg", "error"),
    # max_pixels: 96x64 = 6,144 pixels is under 10,000
    ("max_pixels", {"max_pixels": 10_000}, "ok.jpg", None),
    # max_pixels: and over 5,000, caught from the header
    ("max_pixels", {"max_pixels": 5_000}, "ok.jpg", "error"),
    # extension: PNG bytes named .png
    ("extension", {}, "ok.png", None),
    # extension: PNG bytes named .jpg
    ("extension", {}, "png_named.jpg", "warn"),
    # min_size: 96x64 is over 32x32
    ("min_size", {}, "ok.jpg", None),
    # min_size: 16x12 is not
    ("min_size", {"severity": "error"}, "tiny.png", "error"),
    # max_size: exactly at the limit passes
    ("max_size", {"max_width": 96, "max_height": 64}, "ok.jpg", None),
    # max_size: one pixel wider than allowed fails
    ("max_size", {"max_width": 95}, "ok.jpg", "warn"),
    # aspect_ratio: 1.5 is under 10
    ("aspect_ratio", {}, "ok.jpg", None),
    # aspect_ratio: 400x20 is 20
    ("aspect_ratio", {}, "wide.png", "warn"),
    # color_mode: RGB is allowed
    ("color_mode", {"severity": "warn"}, "ok.jpg", None),
    # color_mode: CMYK is flagged
    ("color_mode", {"severity": "warn"}, "cmyk.jpg", "warn"),
    # color_mode: CMYK converted to RGB
    ("color_mode", {}, "cmyk.jpg", "fix"),
    # color_mode: palette converted to RGB
    ("color_mode", {}, "palette.png", "fix"),
    # color_mode: 16-bit gray converted to 8-bit L
    ("color_mode", {}, "gray16.png", "fix"),
    # blank: a textured picture is not blank
    ("blank", {}, "ok.png", None),
    # blank: one flat gray is
    ("blank", {}, "flat.png", "warn"),
    # blur: sharp edges pass
    ("blur", {}, "ok.png", None),
    # blur: a Gaussian blur of radius 4 fails
    ("blur", {}, "blurred.png", "warn"),
    # exposure: mid-gray passes
    ("exposure", {}, "ok.png", None),
    # exposure: the picture at 1/32 brightness is too dark
    ("exposure", {}, "dark.png", "warn"),
    # exposure: its negative is too bright
    ("exposure", {"severity": "error"}, "bright.png", "error"),
]


@pytest.mark.parametrize(
    ("rule_id", "config", "name", "severity"),
    IMAGE_CASES,
    ids=[f"{c[0]}-{c[2]}-{c[3] or 'pass'}" for c in IMAGE_CASES],
)
def test_image_rule(
    rule_id: str,
    config: dict[str, Any],
    name: str,
    severity: str | None,
    images: Path,
    tmp_path: Path,
) -> None:
    rules = {rule_id: _rule(rule_id, config)}
    report = _check(images, name, rules)
    found = [f for f in report.findings if f.rule == rule_id]
    assert [f.severity for f in found] == ([severity] if severity else []), found
    assert all(f.message for f in found)
    assert not report.transient
    assert _check(images, name, rules, as_bytes=True) == report  # what a remote worker gets


def test_every_rule_has_a_table_row() -> None:
    label_rules = {row[0] for row in LABEL_CASES}
    class_rules = {row[0] for row in CLASS_CASES}
    covered = {row[0] for row in IMAGE_CASES} | label_rules | class_rules
    for rule_id in RULES:
        if rule_id in TAXONOMY_RULES:
            continue  # their table is in test_validate_taxonomy.py
        rows = [r for r in (*IMAGE_CASES, *LABEL_CASES, *CLASS_CASES) if r[0] == rule_id]
        assert rule_id in covered, f"no table row for rule {rule_id}"
        assert any(r[3] is None for r in rows), f"no passing case for {rule_id}"
        assert any(r[3] is not None for r in rows), f"no failing case for {rule_id}"


def _converted(report: Any, suffix: str) -> Image.Image:
    """The converted copy a worker sent back: its bytes, named by their sha256."""
    assert report.converted is not None and report.encoded is not None
    assert report.converted == (hashlib.sha256(report.encoded).hexdigest(), suffix)
    return Image.open(io.BytesIO(report.encoded))


def test_colour_fix_sends_back_a_converted_image_in_the_declared_format(images: Path) -> None:
    rules = {"color_mode": _rule("color_mode", {})}
    report = _check(images, "cmyk_rotated.jpg", rules)
    with _converted(report, ".jpg") as converted:
        assert (converted.format, converted.mode, converted.size) == ("JPEG", "RGB", (96, 64))
        assert converted.getexif()[0x0112] == 6  # still shown rotated, as before
    with _converted(_check(images, "gray16.png", rules), ".png") as converted:
        assert (converted.format, converted.mode) == ("PNG", "L")
        assert converted.getextrema() == (0, 255)  # 16-bit range scaled, not clipped
    with _converted(_check(images, "transparent.png", rules), ".png") as converted:
        assert converted.getextrema() == ((255, 255),) * 3  # over the white background
    # Same input, same bytes, whether the worker read the file or got its bytes.
    again = _check(images, "cmyk_rotated.jpg", rules, as_bytes=True)
    assert (again.converted, again.encoded) == (report.converted, report.encoded)


def test_a_file_over_the_pixel_limit_is_never_decoded(images: Path, tmp_path: Path) -> None:
    # No max_pixels rule: Pillow's own limit still guards, reported by decode.
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(bomb)  # 100 Mpx, a few kB
    report = _check(tmp_path, "bomb.png", {"decode": _rule("decode", {})})
    assert not report.decoded
    assert [f.rule for f in report.findings] == ["decode"]
    assert "100,000,000 pixels" in report.findings[0].message


# --- label rules ----------------------------------------------------------------------

W, H = 100, 80
CLASSES = {1: "cat", 2: "dog"}


def _ann(
    bbox: tuple[float, float, float, float] = (10, 10, 20, 20),
    category: int = 1,
    polygons: list[list[float]] | None = None,
    rle: dict[str, Any] | None = None,
    iscrowd: bool = False,
) -> Annotation:
    return Annotation(category, bbox, polygons=polygons, rle=rle, iscrowd=iscrowd)


def _rle(height: int, width: int) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    mask = np.zeros((height, width), dtype=np.uint8)
    mask[10:30, 10:30] = 1
    encoded = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}


Check = Callable[[Any], bool] | None
LABEL_CASES: list[
    tuple[str, dict[str, Any], list[Annotation], str | None, tuple[int, int], Check]
] = [
    # declared_size: the manifest says what the file is
    ("declared_size", {}, [_ann()], None, (W, H), None),
    # declared_size: the manifest says 200x80, the file is 100x80
    ("declared_size", {}, [_ann()], "error", (200, H), None),
    # box_finite: plain numbers
    ("box_finite", {}, [_ann()], None, (W, H), None),
    # box_finite: a NaN x
    ("box_finite", {}, [_ann((NAN, 1, 2, 3))], "error", (W, H), None),
    # box_positive: 20x20
    ("box_positive", {}, [_ann()], None, (W, H), None),
    # box_positive: zero width, dropped by the fix
    ("box_positive", {}, [_ann((5, 5, 0, 10))], "fix", (W, H), lambda r: not r.annotations),
    # box_inside: touching all four edges is inside
    ("box_inside", {}, [_ann((0, 0, W, H))], None, (W, H), None),
    # box_inside: 10 px past the right edge, clipped
    (
        "box_inside",
        {},
        [_ann((90, 0, 20, 10))],
        "fix",
        (W, H),
        lambda r: r.annotations[0].bbox == (90, 0, 10, 10) and r.annotations[0].area == 100,
    ),
    # box_min_area: 2x2 = 4 px² is enough
    ("box_min_area", {}, [_ann((0, 0, 2, 2))], None, (W, H), None),
    # box_min_area: 1x1 is not
    ("box_min_area", {}, [_ann((3, 3, 1, 1))], "warn", (W, H), None),
    # category_known: id 1 is in the class map
    ("category_known", {}, [_ann()], None, (W, H), None),
    # category_known: id 7 is not
    ("category_known", {}, [_ann(category=7)], "error", (W, H), None),
    # polygon_points: a triangle
    ("polygon_points", {}, [_ann(polygons=[[0, 0, 10, 0, 10, 10]])], None, (W, H), None),
    # polygon_points: five numbers, the part is dropped
    (
        "polygon_points",
        {},
        [_ann(polygons=[[0, 0, 10, 0, 10, 10], [1, 2, 3, 4, 5]])],
        "fix",
        (W, H),
        lambda r: r.annotations[0].polygons == [[0, 0, 10, 0, 10, 10]],
    ),
    # polygon_as_box: six numbers are a polygon
    ("polygon_as_box", {}, [_ann(polygons=[[0, 0, 10, 0, 10, 10]])], None, (W, H), None),
    # polygon_as_box: four numbers would be read as a box; no part left, no segmentation
    (
        "polygon_as_box",
        {},
        [_ann(polygons=[[10, 10, 20, 20]])],
        "fix",
        (W, H),
        lambda r: r.annotations[0].polygons is None,
    ),
    # polygon_inside: points on the border are inside
    ("polygon_inside", {}, [_ann(polygons=[[0, 0, W, 0, W, H]])], None, (W, H), None),
    # polygon_inside: x = 120 is clipped to 100 and the area recomputed
    (
        "polygon_inside",
        {},
        [_ann(polygons=[[0, 0, 120, 0, 120, 10, 0, 10]])],
        "fix",
        (W, H),
        lambda r: (
            r.annotations[0].polygons == [[0, 0, 100, 0, 100, 10, 0, 10]]
            and r.annotations[0].area == 1000
        ),
    ),
    # rle_size: a mask of the image's size
    ("rle_size", {}, [_ann(rle=_rle(H, W), iscrowd=True)], None, (W, H), None),
    # rle_size: a mask of another image
    ("rle_size", {}, [_ann(rle=_rle(10, 10), iscrowd=True)], "error", (W, H), None),
    # crowd_mask: a crowd region with an RLE mask
    ("crowd_mask", {}, [_ann(rle=_rle(H, W), iscrowd=True)], None, (W, H), None),
    # crowd_mask: a "crowd" drawn as polygons: iscrowd is set from the mask
    (
        "crowd_mask",
        {},
        [_ann(polygons=[[0, 0, 10, 0, 10, 10]], iscrowd=True)],
        "fix",
        (W, H),
        lambda r: r.annotations[0].iscrowd is False,
    ),
    # duplicate_boxes: two boxes of one class side by side
    ("duplicate_boxes", {}, [_ann((0, 0, 10, 10)), _ann((10, 0, 10, 10))], None, (W, H), None),
    # duplicate_boxes: the same box twice (IoU 0.99): the later is dropped
    (
        "duplicate_boxes",
        {},
        [_ann((0, 0, 20, 20)), _ann((0, 0, 20, 20.2)), _ann((0, 0, 20, 20), category=2)],
        "fix",
        (W, H),
        lambda r: [a.category_id for a in r.annotations] == [1, 2],
    ),
    # unlabelled: one box
    ("unlabelled", {}, [_ann()], None, (W, H), None),
    # unlabelled: none
    ("unlabelled", {"severity": "error"}, [], "error", (W, H), None),
]


@pytest.mark.parametrize(
    ("rule_id", "config", "annotations", "severity", "declared", "after"),
    LABEL_CASES,
    ids=[f"{c[0]}-{c[3] or 'pass'}" for c in LABEL_CASES],
)
def test_label_rule(
    rule_id: str,
    config: dict[str, Any],
    annotations: list[Annotation],
    severity: str | None,
    declared: tuple[int, int],
    after: Check,
) -> None:
    result = check_labels(
        {rule_id: _rule(rule_id, config)},
        annotations,
        declared=declared,
        actual=(W, H),
        categories=CLASSES,
    )
    assert [f.severity for f in result.findings] == ([severity] if severity else [])
    if after is not None:
        assert after(result), result.annotations
    if severity is None:
        assert result.annotations == annotations


def test_label_rules_apply_in_order_and_report_a_box_once() -> None:
    rules = parse_ruleset(load_text(DEFAULT_RULES.read_text(), "default.yaml")).rules
    result = check_labels(
        rules,
        [
            _ann((NAN, 0, 5, 5)),  # box_finite (error): not also box_inside or box_min_area
            _ann((5, 5, 0, 0)),  # box_positive drops it: not also box_min_area
            _ann((99, 79, 30, 30)),  # clipped to 1x1, then box_min_area warns
        ],
        declared=(W, H),
        actual=(W, H),
        categories=CLASSES,
    )
    assert [(f.rule, f.severity, f.annotation) for f in result.findings] == [
        ("box_finite", "error", 0),
        ("box_positive", "fix", 1),
        ("box_inside", "fix", 2),
        ("box_min_area", "warn", 2),
    ]


def test_rle_counts_are_parsed_without_trusting_them() -> None:
    rle = _rle(H, W)
    assert sum(rle_counts(rle["counts"])) == W * H
    with pytest.raises(ValueError, match="middle of a number"):
        rle_counts("0a")  # 'a' has the continuation bit and nothing follows
    with pytest.raises(ValueError, match="invalid character"):
        rle_counts("~~")
    huge = {"size": [H, W], "counts": rle["counts"] + "P" * 5}
    result = check_labels(
        {"rle_size": _rule("rle_size", {})},
        [_ann(rle=huge, iscrowd=True)],
        declared=(W, H),
        actual=(W, H),
        categories=CLASSES,
    )
    assert len(result.findings) == 1


# --- dataset rules --------------------------------------------------------------------

CATEGORIES = [Category(1, "cat"), Category(2, "dog")]
CLASS_CASES = [
    # min_instances: ten of each
    ("min_instances", {}, {1: 10, 2: 10}, None),
    # min_instances: three dogs
    ("min_instances", {}, {1: 10, 2: 3}, "warn"),
    # imbalance: 2 to 1
    ("imbalance", {}, {1: 10, 2: 5}, None),
    # imbalance: 200 to 1
    ("imbalance", {"severity": "error"}, {1: 1000, 2: 5}, "error"),
    # unused_classes: both occur
    ("unused_classes", {}, {1: 1, 2: 1}, None),
    # unused_classes: no dog
    ("unused_classes", {}, {1: 5}, "warn"),
]


@pytest.mark.parametrize(
    ("rule_id", "config", "instances", "severity"),
    CLASS_CASES,
    ids=[f"{c[0]}-{c[3] or 'pass'}" for c in CLASS_CASES],
)
def test_dataset_rule(
    rule_id: str, config: dict[str, Any], instances: dict[int, int], severity: str | None
) -> None:
    found = check_classes({rule_id: _rule(rule_id, config)}, CATEGORIES, instances)
    assert [f.severity for f in found] == ([severity] if severity else [])


# --- rule-set files -------------------------------------------------------------------


def test_the_default_rule_set_names_every_rule() -> None:
    ruleset = load_ruleset(DEFAULT_RULES, "configs/validation/default.yaml")
    assert list(ruleset.rules) == [rule.ID for rule in CATALOGUE]
    assert ruleset.where("box_inside").startswith("configs/validation/default.yaml:")


def test_rule_set_errors_name_file_line_and_key_all_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rules:\n"
        "  decode: error\n"
        "  box_insde: fix\n"
        "  blur:\n"
        "    severity: fix\n"
        "    min_varance: 3\n"
        "  color_mode:\n"
        "    allowed: [RBG]\n"
        "  exposure: {min_mean: 200, max_mean: 100}\n"
        "  unlabelled: [warn]\n"
        "descripton: typo\n"
    )
    with pytest.raises(PixelpipeError, match=r"bad\.yaml:3 rules\.box_insde: unknown rule") as info:
        load_ruleset(path, "bad.yaml")
    assert [str(p) for p in info.value.problems] == [
        "bad.yaml:11 descripton: unknown key 'descripton' (did you mean 'description'?)",
        "bad.yaml:3 rules.box_insde: unknown rule 'box_insde' (did you mean 'box_inside'?)",
        "bad.yaml:5 rules.blur.severity: input should be 'error' or 'warn', got 'fix'",
        "bad.yaml:6 rules.blur.min_varance: unknown key 'min_varance' "
        "(did you mean 'min_variance'?)",
        "bad.yaml:8 rules.color_mode.allowed: unknown colour mode 'RBG' (did you mean "
        "'RGB'?); Pillow's modes are: " + ", ".join(Image.MODES),
        "bad.yaml:9 rules.exposure: min_mean must be below max_mean",
        "bad.yaml:10 rules.unlabelled: a rule is a severity (error, warn) or a mapping of "
        "severity and params, got ['warn']",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # not a mapping at all
        ("- decode\n", r"x\.yaml:1: a rule set is a mapping"),
        # no rules key
        ("description: nothing\n", r"x\.yaml:1 rules: required key is missing"),
        # rules is a list
        ("rules: [decode]\n", r"x\.yaml:1 rules: a rule set is a mapping"),
        # an empty rule set checks nothing: surely a mistake
        ("rules: {}\n", r"x\.yaml:1 rules: no rules"),
        # a YAML tag is not plain YAML
        ("rules: !!python/object:os.system {}\n", r"x\.yaml:1: invalid YAML"),
        # a severity the rule does not have
        ("rules:\n  decode: fix\n", r"x\.yaml:2 rules\.decode\.severity: input should be"),
    ],
)
def test_malformed_rule_sets(text: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(PixelpipeError, match=message):
        load_ruleset(tmp_path / "x.yaml", "x.yaml")


def test_the_docs_describe_every_rule_and_param() -> None:
    doc = (REPO / "docs" / "validate.md").read_text()
    for rule in CATALOGUE:
        assert f"| `{rule.ID}` |" in doc, rule.ID
        for name in rule.model_fields:
            assert name == "severity" or f"`{name}`" in doc, (rule.ID, name)
    for name in Params.model_fields:
        assert f"  {name}: " in doc, name


# --- the guarded pool -----------------------------------------------------------------


def test_guard_kills_a_call_that_blocks_and_keeps_order() -> None:
    started = time.monotonic()
    outcomes = list(guarded_map("time:sleep", (), [0, 3600, 0, 0], workers=2, time_limit=1.0))
    assert time.monotonic() - started < 60  # not an hour: the sleeper was killed
    assert [o.status for o in outcomes] == ["ok", "timeout", "ok", "ok"]
    assert "time limit of 1 s" in outcomes[1].detail


def test_guard_survives_workers_that_die_or_raise() -> None:
    outcomes = list(
        guarded_map(
            "signal:raise_signal",
            (),
            [signal.SIGSEGV, signal.SIGABRT],
            workers=1,
            time_limit=60,
        )
    )
    assert [(o.status, o.detail) for o in outcomes] == [
        ("crash", "the worker was killed by SIGSEGV"),
        ("crash", "the worker was killed by SIGABRT"),
    ]
    errors = list(guarded_map("math:sqrt", (), [4.0, -1.0], workers=1, time_limit=60))
    assert [(o.status, o.value) for o in errors] == [("ok", 2.0), ("error", None)]
    assert errors[1].detail == "ValueError: math domain error"


def test_guard_memory_limit_turns_a_huge_allocation_into_an_error() -> None:
    outcomes = list(
        guarded_map("os:urandom", (), [16, 2**31], workers=1, time_limit=60, memory_limit_mb=256)
    )
    assert [o.status for o in outcomes] == ["ok", "error"]
    assert "MemoryError" in outcomes[1].detail


# --- the stage, on hand-made datasets -------------------------------------------------

PIPELINE = """\
stages:
  ingest:
    kind: ingest
  validate:
    kind: validate
    inputs: ingest
    configs:
      rules: configs/validation/rules.yaml
"""


def _make_project(root: Path, rules: str, params: str = "{}") -> None:
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "pipelines" / "v.yaml").write_text(PIPELINE)
    (root / "configs" / "validation").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "validation" / "rules.yaml").write_text(rules)
    (root / "params.yaml").write_text(f"ingest: {{}}\nvalidate: {params}\n")


def _write_input(
    root: Path,
    items: list[tuple[str, str, tuple[int, int], list[Annotation]]],
    categories: list[Category] = CATEGORIES,
) -> None:
    """``data/ingest`` as ingest would write it: ``(id, image path, size, labels)``."""
    builder = DatasetBuilder(categories)
    for sample_id, image, (width, height), labels in items:
        path = root / image
        sha = (
            hashlib.sha256(path.read_bytes()).hexdigest()
            if path.is_file()
            else hashlib.sha256(image.encode()).hexdigest()
        )
        builder.add(Sample(sample_id, image, sha, width, height, image, annotations=labels))
    write_dataset(
        root / "data" / "ingest", builder, stage="ingest", kind="ingest", params={}, inputs={}
    )


def test_a_file_that_hangs_its_decoder_is_quarantined(images: Path, tmp_path: Path) -> None:
    root = tmp_path / "p"
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    shutil.copy(images / "ok.jpg", raw / "ok.jpg")
    shutil.copy(images / "truncated.jpg", raw / "truncated.jpg")
    os.mkfifo(raw / "hangs.jpg")  # opening it blocks until a writer comes: none will
    _make_project(root, "rules:\n  decode: error\n  unlabelled: warn\n", "{time_limit: 2}")
    box = [_ann((10, 10, 20, 20))]
    _write_input(
        root,
        [
            ("hangs.jpg", "data/raw/hangs.jpg", (96, 64), box),
            ("ok.jpg", "data/raw/ok.jpg", (96, 64), box),
            ("truncated.jpg", "data/raw/truncated.jpg", (256, 256), []),
        ],
    )
    run_stage(root, "validate", "pipelines/v.yaml", workers=2)
    out = Dataset(root / "data" / "validate")
    assert out.table.column("id").to_pylist() == ["ok.jpg"]
    removed = {r["id"]: r for r in out.removed().to_pylist()}
    assert removed["hangs.jpg"]["reason"] == "timeout"
    assert "time limit of 2 s" in removed["hangs.jpg"]["detail"]
    assert removed["truncated.jpg"]["reason"] == "decode"
    assert removed["truncated.jpg"]["rules"] == ["decode"]  # unlabelled only warned
    assert rule_counts(root)["timeout"] == {"error": 1}
    assert rule_counts(root)["unlabelled"] == {"warn": 1}
    html = (root / "data" / "validate" / "report.html").read_text()
    assert placeholder("not drawn: timeout") in html  # the hanging file is not reopened


def test_fixes_are_recorded_and_dataset_errors_fail_the_stage(images: Path, tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "data" / "raw").mkdir(parents=True)
    for name in ("ok.jpg", "cmyk.jpg", "cmyk_rotated.jpg"):
        shutil.copy(images / name, root / "data" / "raw" / name)
    _make_project(
        root,
        "rules:\n  color_mode: fix\n  box_inside: fix\n  category_known: error\n"
        "  min_instances:\n    severity: warn\n    min_count: 3\n",
    )
    _write_input(
        root,
        [
            ("a.jpg", "data/raw/ok.jpg", (96, 64), [_ann((90, 0, 20, 10))]),
            ("b.jpg", "data/raw/cmyk.jpg", (96, 64), [_ann()]),
            # Quarantined: its CMYK conversion must not be left behind.
            ("c.jpg", "data/raw/cmyk_rotated.jpg", (96, 64), [_ann(category=9)]),
        ],
    )
    metrics = run_stage(root, "validate", "pipelines/v.yaml", workers=1)
    out = root / "data" / "validate"
    rows = {r["id"]: r for r in pq.read_table(out / "samples.parquet").to_pylist()}
    assert rows["a.jpg"]["annotations"][0]["bbox"] == [90.0, 0.0, 6.0, 10.0]
    assert rows["a.jpg"]["validate_fixes"] == [
        "box_inside: annotation 0 (cat): box [90, 0, 20, 10] reaches past the right edge "
        "(x + w = 110 > width 96); clipped to [90, 0, 6, 10]"
    ]
    assert rows["b.jpg"]["image"].startswith("data/validate/images/")
    assert (root / rows["b.jpg"]["image"]).is_file()
    assert rows["b.jpg"]["validate_fixes"] == ["color_mode: colour mode CMYK converted to RGB"]
    assert list((out / "images").rglob("*.*")) == [root / rows["b.jpg"]["image"]]
    assert rows["a.jpg"]["validate_warnings"] == rows["b.jpg"]["validate_warnings"] == []
    assert rule_counts(root)["min_instances"] == {"warn": 2}  # cat has 2, dog 0
    assert metrics["classes"] == {"cat": 2, "dog": 0}
    findings = pq.read_table(out / "findings.parquet").to_pylist()
    assert [(f["id"], f["rule"], f["severity"]) for f in findings] == [
        ("a.jpg", "box_inside", "fix"),
        ("b.jpg", "color_mode", "fix"),
        ("c.jpg", "color_mode", "fix"),
        ("c.jpg", "category_known", "error"),
    ]

    rules = root / "configs" / "validation" / "rules.yaml"
    rules.write_text(rules.read_text().replace("severity: warn", "severity: error"))
    with pytest.raises(
        PixelpipeError,
        match=r"configs/validation/rules\.yaml:5 rules\.min_instances: dataset rule failed: "
        r"2 class\(es\) have fewer than 3 instances: 'cat' \(2\), 'dog' \(0\)",
    ):
        run_stage(root, "validate", "pipelines/v.yaml", workers=1)


def test_a_bad_rule_set_stops_the_stage_before_any_work(tmp_path: Path) -> None:
    root = tmp_path / "p"
    _make_project(root, "rules:\n  decode: error\n  blurr: warn\n")
    _write_input(root, [])
    with pytest.raises(
        PixelpipeError,
        match=r"configs/validation/rules\.yaml:3 rules\.blurr: unknown rule 'blurr' "
        r"\(did you mean 'blur'\?\)",
    ):
        run_stage(root, "validate", "pipelines/v.yaml", workers=1)


# --- real data ------------------------------------------------------------------------

# What becomes of every file of corrupt/pillow that does not come through: ingest reads
# headers (unreadable, too_large); validate decodes (decode). Everything else is kept and
# must decode here too.
CORRUPT_REMOVED = {
    "LICENSE_Pillow": ("ingest", "unreadable"),
    "apng/chunk_no_fctl.png": ("validate", "decode"),
    "apng/syntax_num_frames_zero.png": ("validate", "decode"),
    "bmp/b/badbitcount.bmp": ("ingest", "unreadable"),
    "bmp/b/badheadersize.bmp": ("ingest", "unreadable"),
    "bmp/b/badpalettesize.bmp": ("ingest", "unreadable"),
    "bmp/b/badwidth.bmp": ("ingest", "too_large"),
    "broken.png": ("ingest", "unreadable"),
    "broken_data_stream.png": ("validate", "decode"),
    "crash-4fb027452e6988530aa5dabee76eecacb3b79f8a.j2k": ("validate", "decode"),
    "crash-86214e58da443d2b80820cff9677a38a33dcbbca.tif": ("validate", "decode"),
    "decompression_bomb.gif": ("ingest", "too_large"),
    "decompression_bomb.ico": ("ingest", "too_large"),
    "seek_too_large.tif": ("ingest", "unreadable"),
    "truncated_end_chunk.png": ("validate", "decode"),
    "truncated_image.png": ("validate", "decode"),
    "truncated_jpeg.jpg": ("validate", "decode"),
    "zero_width.gif": ("ingest", "unreadable"),
}


def _decodes(path: Path) -> tuple[str, tuple[int, int]]:
    Image.MAX_IMAGE_PIXELS = 89_478_485
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "malformed MPO file": read as the JPEG it is
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            image.load()
            return image.mode, image.size


def test_every_corrupt_file_is_kept_decodable_or_removed_with_a_reason(
    corpora: Path, tmp_path: Path
) -> None:
    source = corpora / "corrupt" / "pillow"
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    root = tmp_path / "p"
    (root / "configs" / "validation").mkdir(parents=True)
    shutil.copy(DEFAULT_RULES, root / "configs" / "validation" / "default.yaml")
    (root / "pipelines").mkdir()
    (root / "pipelines" / "v.yaml").write_text(PIPELINE.replace("rules.yaml", "default.yaml"))
    extensions = sorted({Path(f).suffix.lower() for f in files})  # '' too: LICENSE_Pillow
    (root / "params.yaml").write_text(
        yaml.safe_dump(
            {
                "ingest": {"source": str(source), "format": "images", "extensions": extensions},
                "validate": {},
            }
        )
    )
    run_stage(root, "ingest", "pipelines/v.yaml", workers=2)
    metrics = run_stage(root, "validate", "pipelines/v.yaml", workers=2)

    ingested = Dataset(root / "data" / "ingest")
    validated = Dataset(root / "data" / "validate")
    removed = {r["id"]: ("ingest", r["reason"]) for r in ingested.removed().to_pylist()} | {
        r["id"]: ("validate", r["reason"]) for r in validated.removed().to_pylist()
    }
    kept = validated.table.column("id").to_pylist()
    assert sorted(kept + list(removed)) == files  # every file, exactly once
    assert removed == CORRUPT_REMOVED
    assert all(r["detail"] for r in validated.removed().to_pylist())
    for row in validated.table.to_pylist():
        mode, size = _decodes(root / row["image"])
        assert size == (row["width"], row["height"]), row["id"]
        if row["image"].startswith("data/validate/"):  # converted by the colour fix
            assert mode in ("RGB", "L"), row["id"]
    by_id = {r["id"]: r for r in validated.table.to_pylist()}
    assert by_id["pil_sample_cmyk.jpg"]["validate_fixes"] == [
        "color_mode: colour mode CMYK converted to RGB"
    ]
    assert "color_mode" in by_id["hopper.gif"]["validate_warnings"]  # GIF stays palette
    assert metrics["checked"] == len(files) - sum(1 for s, _ in removed.values() if s == "ingest")
    assert rule_counts(root)["decode"] == {"error": 8}


def _voc_boxes(xml: Path, inclusive: bool) -> tuple[str, list[Annotation]]:
    import defusedxml.ElementTree as ET

    names = {"RBC": 0, "WBC": 1, "Platelets": 2}
    root = ET.parse(xml).getroot()
    annotations = []
    for obj in root.iter("object"):
        corners = [
            float(obj.findtext(f"bndbox/{k}") or "nan") for k in ("xmin", "ymin", "xmax", "ymax")
        ]
        x0, y0, x1, y1 = corners
        box = (
            (x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1) if inclusive else (x0, y0, x1 - x0, y1 - y0)
        )
        annotations.append(Annotation(names[obj.findtext("name") or ""], box))
    return root.findtext("filename") or xml.stem, annotations


def test_bccd_degenerate_boxes_are_caught(corpora: Path, tmp_path: Path) -> None:
    voc = corpora / "detection" / "bccd_voc" / "BCCD"
    root = tmp_path / "p"
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "bccd").symlink_to(voc / "JPEGImages")  # read in place
    _make_project(root, DEFAULT_RULES.read_text())
    categories = [Category(0, "RBC"), Category(1, "WBC"), Category(2, "Platelets")]
    items = []
    for xml in sorted((voc / "Annotations").glob("*.xml")):
        name, annotations = _voc_boxes(xml, inclusive=True)  # docs/formats.md: 1-based
        items.append((name, f"data/raw/bccd/{name}", (640, 480), annotations))
        # The other reading of VOC corners makes them zero-size: box_positive drops them.
        _, corners = _voc_boxes(xml, inclusive=False)
        result = check_labels(
            {"box_positive": _rule("box_positive", {})},
            corners,
            declared=(640, 480),
            actual=(640, 480),
            categories={0: "RBC", 1: "WBC", 2: "Platelets"},
        )
        if result.findings:
            assert xml.stem in ("BloodImage_00338", "BloodImage_00343")
            assert [f.message for f in result.findings] in (
                [
                    "annotation 12 (RBC): box [504, 337, 0, 0] has width 0 and height 0; "
                    "both must be positive; annotation dropped"
                ],
                [
                    "annotation 3 (RBC): box [181, 329, 0, 0] has width 0 and height 0; "
                    "both must be positive; annotation dropped"
                ],
            )
    _write_input(root, items, categories)
    metrics = run_stage(root, "validate", "pipelines/v.yaml", workers=2)
    findings = pq.read_table(root / "data" / "validate" / "findings.parquet").to_pylist()
    tiny = [(f["id"], f["rule"], f["severity"]) for f in findings if f["rule"] == "box_min_area"]
    assert tiny == [
        ("BloodImage_00338.jpg", "box_min_area", "warn"),
        ("BloodImage_00343.jpg", "box_min_area", "warn"),
    ]
    assert metrics["checked"] == 364
    assert rule_counts(root)["box_positive"] == {"fix": 0}
    html = (root / "data" / "validate" / "report.html").read_text()
    assert "box [503, 336, 1, 1] covers 1 px²" in html


def _add_validate(project: Path) -> None:
    """Put validate into the project's default pipeline unless it is there already."""
    pipeline = project / "pipelines" / "default.yaml"
    spec = yaml.safe_load(pipeline.read_text())
    stages = spec["stages"]
    if not any(s["kind"] == "validate" for s in stages.values()):
        before = "dedupe" if "dedupe" in stages else "ingest"
        stages["validate"] = {
            "kind": "validate",
            "inputs": before,
            "configs": {"rules": "configs/validation/default.yaml"},
        }
        for stage in stages.values():
            if stage["kind"] == "publish":
                stage["inputs"] = "validate"
        pipeline.write_text(yaml.safe_dump(spec, sort_keys=False))
        params = project / "params.yaml"
        values = yaml.safe_load(params.read_text())
        values.setdefault("validate", {})
        params.write_text(yaml.safe_dump(values, sort_keys=False))
    rules = project / "configs" / "validation" / "default.yaml"
    if not rules.is_file():
        rules.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEFAULT_RULES, rules)


@pytest.mark.e2e
def test_default_pipeline_catches_the_demo_problems(demo_project: Path, run: Any) -> None:
    _add_validate(demo_project)
    env = {"PIXELPIPE_TRACKING": "off"}
    run(["pixelpipe", "compile"], demo_project, **env)
    run(["dvc", "repro"], demo_project, **env)
    out = demo_project / "data" / "validate"
    removed = {r["id"]: r for r in Dataset(out).removed().to_pylist()}
    assert removed["launchpad_truncated.jpg"]["reason"] == "decode"
    assert "truncated" in removed["launchpad_truncated.jpg"]["detail"]
    rows = {r["id"]: r for r in Dataset(out).table.to_pylist()}
    assert rows["cameraman.jpg"]["annotations"][0]["bbox"][2] == 512.0
    assert rows["cameraman.jpg"]["validate_fixes"][0].startswith("box_inside:")
    assert "blur" in rows["clock.jpg"]["validate_warnings"]
    assert "unlabelled" in rows["unlabelled/retina.jpg"]["validate_warnings"]
    report = json.loads((demo_project / "reports" / "validate.json").read_text())
    assert rule_counts(demo_project)["decode"] == {"error": 1}
    assert rule_counts(demo_project)["box_inside"] == {"fix": 1}
    assert report["classes"]["clock"] == 1
    assert "clock" in (out / "report.html").read_text()
    shown = run(["pixelpipe", "show", "data/validate"], demo_project, **env).stdout
    assert "decode" in shown and "launchpad_truncated.jpg" in shown

    # Byte-identical on a rerun, whatever the number of workers.
    names = ("samples.parquet", "removed.parquet", "findings.parquet", "report.html")
    before = {n: (out / n).read_bytes() for n in names}
    run(["pixelpipe", "run", "validate"], demo_project, PIXELPIPE_WORKERS="1", **env)
    assert {n: (out / n).read_bytes() for n in names} == before
    assert math.isfinite(report["checked"])
