"""``pixelpipe convert``: labelformat's VOC and YOLOv8 become its own COCO; errors are one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cocofiles import coco_file, image_folder
from pycocotools.coco import COCO

from pixelpipe.errors import PixelpipeError
from pixelpipe.formats.convert import convert

PIXELPIPE = str(Path(sys.executable).parent / "pixelpipe")
LABELFORMAT = "formats/labelformat/object_detection"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIXELPIPE, "convert", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _boxes(path: Path) -> dict[str, list[tuple[str, list[float]]]]:
    """Boxes of a COCO file by image base name, with class names (pycocotools loads it)."""
    api = COCO(str(path))
    names = {c["id"]: c["name"] for c in api.loadCats(api.getCatIds())}
    out: dict[str, list[tuple[str, list[float]]]] = {}
    for image in api.loadImgs(api.getImgIds()):
        anns = api.loadAnns(api.getAnnIds(imgIds=[image["id"]]))
        out[Path(image["file_name"]).name] = sorted(
            (names[a["category_id"]], a["bbox"]) for a in anns
        )
    return out


def _worst(
    a: dict[str, list[tuple[str, list[float]]]], b: dict[str, list[tuple[str, list[float]]]]
) -> float:
    assert sorted(a) == sorted(b)
    worst = 0.0
    for image, boxes in a.items():
        others = list(b[image])
        assert sorted(n for n, _ in boxes) == sorted(n for n, _ in others)
        for name, box in boxes:
            index = min(
                (i for i, o in enumerate(others) if o[0] == name),
                key=lambda i: max(abs(p - q) for p, q in zip(box, others[i][1], strict=True)),
            )
            worst = max(
                worst, max(abs(p - q) for p, q in zip(box, others.pop(index)[1], strict=True))
            )
    return worst


CASES = [
    # VOC XML files without images: sizes come from <size>, boxes are exact
    ("PascalVOC", "voc", 0.0, 0),
    # YOLOv8 with its images: sizes from the files, boxes within its 6-digit rounding
    ("YOLOv8", "yolo", 0.5, 2),
]


@pytest.mark.parametrize(("folder", "fmt", "tolerance", "copied"), CASES)
def test_convert_labelformat_to_its_own_coco(
    corpora: Path, tmp_path: Path, folder: str, fmt: str, tolerance: float, copied: int
) -> None:
    source = corpora / LABELFORMAT / folder
    result = _cli(str(source), "out", "--to", "coco", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{fmt} -> coco: 2 images, 16 annotations" in result.stdout
    assert f"{copied} image files copied" in result.stdout
    reference = _boxes(corpora / LABELFORMAT / "COCO/train.json")
    converted = _boxes(coco_file(tmp_path / "out"))
    assert _worst(reference, converted) <= tolerance
    if copied:
        written = coco_file(tmp_path / "out")
        for image in json.loads(written.read_text())["images"]:
            assert (image_folder(written) / image["file_name"]).is_file()


def test_convert_to_every_format_and_back(corpora: Path, tmp_path: Path) -> None:
    source = corpora / LABELFORMAT / "COCO"
    reference = _boxes(source / "train.json")
    for fmt in ("yolo", "voc"):
        assert _cli(str(source), fmt, "--to", fmt, cwd=tmp_path).returncode == 0
        back = _cli(fmt, f"{fmt}-back", "--to", "coco", "--from", fmt, cwd=tmp_path)
        assert back.returncode == 0, back.stderr
        assert _worst(reference, _boxes(coco_file(tmp_path / f"{fmt}-back"))) < 1e-3
    folders = _cli(str(source), "folders", "--to", "imagefolder", cwd=tmp_path)
    assert "skipped_not_single_class: 2" in folders.stdout  # both photos hold several classes


ERRORS = [
    # an unknown target format
    (["SRC", "out", "--to", "kitti"], r"error: unknown target format 'kitti'"),
    # a misspelt option value, with a suggestion
    (
        ["SRC", "out", "--to", "coco", "--from", "yolov"],
        r"error: --from: 'yolov' is not one of .* \(did you mean 'yolo'\?\)",
    ),
    # a source that is not there
    (["nowhere", "out", "--to", "coco"], r"error: source folder not found: nowhere"),
    # a target that is not empty
    (["SRC", "full", "--to", "coco"], r"error: .*full exists and is not empty; pass --overwrite"),
]


@pytest.mark.parametrize(("args", "message"), ERRORS)
def test_errors_are_one_line_without_traceback(
    corpora: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    source = str(corpora / LABELFORMAT / "COCO")
    result = _cli(*[source if a == "SRC" else a for a in args], cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    import re

    assert re.search(message, result.stderr), result.stderr


def test_overwrite_replaces_the_target_whole(corpora: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    report = convert(str(corpora / LABELFORMAT / "COCO"), target, "yolo", overwrite=True)
    assert report.samples == 2 and not (target / "old.txt").exists()
    assert sorted(p.name for p in target.iterdir()) == ["data.yaml", "images", "labels"]
    assert not list(tmp_path.glob(".out.*")), "no temporary folder is left behind"


def test_missing_images_without_a_size_are_reported(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "labels").mkdir(parents=True)
    (source / "data.yaml").write_text("train: list.txt\nnames: [a]\n")
    (source / "list.txt").write_text("images/gone.jpg\n")
    (source / "labels" / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = convert(str(source), tmp_path / "out", "coco")
    assert report.samples == 0
    assert report.skipped == [
        ("gone.jpg", "missing", f"{source}/images/gone.jpg not found and its size is unknown")
    ]


def test_convert_refuses_unknown_formats() -> None:
    with pytest.raises(PixelpipeError, match=r"unknown target format 'kitti'"):
        convert("x", Path("y"), "kitti")


def _coco_of(folder: Path, images: list[tuple[str, int, int]]) -> None:
    doc = {
        "images": [
            {"id": i, "file_name": name, "width": w, "height": h}
            for i, (name, w, h) in enumerate(images, start=1)
        ],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 2, 2]}
            for i in range(1, len(images) + 1)
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (folder / "annotations.json").write_text(json.dumps(doc))


def test_convert_skips_a_pixel_bomb_as_ingest_does(tmp_path: Path) -> None:
    from hostile import jpeg, png_bomb

    source = tmp_path / "src"
    (source / "images").mkdir(parents=True)
    (source / "images" / "ok.jpg").write_bytes(jpeg((8, 6)))
    (source / "images" / "bomb.png").write_bytes(png_bomb(30000, 30000))
    # the COCO file declares the bomb's size, so nothing but the checks can catch it
    _coco_of(source, [("ok.jpg", 8, 6), ("bomb.png", 30000, 30000)])
    report = convert(str(source), tmp_path / "out", "yolo")
    assert report.samples == 1 and report.images_copied == 1
    assert [(sid, reason) for sid, reason, _ in report.skipped] == [("bomb.png", "too_large")]
    assert report.skipped[0][2] == "900000000 pixels is over max_pixels=89478485"
    assert not list((tmp_path / "out").rglob("bomb*"))
    result = _cli(str(source), "cli-out", "--to", "coco", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skipped 1:\n  too_large: bomb.png: 900000000 pixels is over" in result.stdout


def test_convert_applies_ingest_size_check(tmp_path: Path) -> None:
    from hostile import jpeg

    source = tmp_path / "src"
    (source / "images").mkdir(parents=True)
    (source / "images" / "a.jpg").write_bytes(jpeg((8, 6)))
    _coco_of(source, [("a.jpg", 80, 60)])  # the labels were drawn on another version
    report = convert(str(source), tmp_path / "out", "coco")
    assert report.samples == 0
    assert report.skipped == [
        (
            "a.jpg",
            "size_mismatch",
            f"{source}/annotations.json images[0] says 80x60, the image is 8x6",
        )
    ]


def test_convert_keeps_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    from hostile import NOT_UTF8, jpeg, write_named

    source = tmp_path / "src"
    write_named(source, NOT_UTF8, jpeg())
    write_named(source, b"ok.jpg", jpeg())
    result = _cli(str(source), "out", "--to", "coco", "--from", "images", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    document = json.loads(coco_file(tmp_path / "out").read_text(encoding="utf-8"))
    names = sorted(image["file_name"] for image in document["images"])
    assert names == ["bad%FF%FEname.jpg", "ok.jpg"]
    assert (tmp_path / "out/images/unassigned/bad%FF%FEname.jpg").read_bytes() == jpeg()


def test_convert_reports_pillow_warnings_once_per_image(corpora: Path, tmp_path: Path) -> None:
    import shutil

    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(corpora / "corrupt/pillow/hopper_bad_exif.jpg", source)
    result = _cli(str(source), "out", "--to", "coco", "--from", "images", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing from Pillow, no site-packages path
    lines = [line for line in result.stdout.splitlines() if "hopper_bad_exif.jpg" in line]
    assert lines == [
        "warning: hopper_bad_exif.jpg: Corrupt EXIF data. Expecting to read 12 "
        "bytes but only got 2."
    ]
