"""Ingest: every format, EXIF orientation, unsafe paths, odd names, bad files.

Buckets (S3, DVC remotes, a bucket that dies) are in ``test_ingest_buckets.py``.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from pydantic import ValidationError
from steps import ingest, removed_reasons

from pixelpipe.dataset import Dataset
from pixelpipe.engine.registry import resolve
from pixelpipe.errors import PixelpipeError

Ingest = Callable[..., tuple[Dataset, dict[str, Any]]]


def test_demo_keeps_ids_categories_and_removes_the_non_image(
    tmp_path: Path, demo_raw: Path
) -> None:
    shutil.copytree(demo_raw, tmp_path / "data/raw/demo")
    dataset, metrics = ingest(tmp_path)
    assert len(dataset) == 38 and removed_reasons(dataset) == {"notes.jpg": "unreadable"}
    ids = dataset.table.column("id").to_pylist()
    assert "astronaut.png" in ids and "unlabelled/retina.jpg" in ids
    assert [c.id for c in dataset.categories] == [1, 4, 17, 47, 50, 85, 91]
    assert set(dataset.table.column("exif_orientation").to_pylist()) == {1}
    assert metrics["found"] == 39 and metrics["exif_rotated"] == 0
    again, _ = ingest(tmp_path)
    assert again.digest == dataset.digest


FORMATS = [
    # COCO at the root, images in data/, names with spaces and many dots
    ("formats/labelformat/object_detection/COCO", {}, 2, 16, {}),
    # YOLOv8 with a differently named YAML: boxes become pixels
    ("formats/labelformat/object_detection/YOLOv8", {}, 2, 16, {}),
    # Datumaro's Darknet layout
    ("formats/datumaro/yolo_dataset/strict", {"format": "yolo"}, 1, 2, {}),
    # Datumaro's VOC with an image listed in test.txt without an XML
    ("formats/datumaro/voc_dataset/voc_dataset1", {}, 2, 2, {}),
    # VOC listing images that do not exist: every one is removed as missing
    (
        "formats/datumaro/voc_dataset/voc_dataset2",
        {},
        0,
        0,
        {f"{n}.jpg": "missing" for n in "@abcd"},
    ),
    # Roboflow COCO, one JSON per split folder
    ("formats/datumaro/coco_dataset/coco_roboflow", {}, 2, 3, {}),
    # plain images, named explicitly
    ("formats/datumaro/image_dir_dataset", {"format": "images"}, 2, 0, {}),
    # a COCO file whose images are elsewhere: every image is removed as missing
    (
        "formats/labelformat/instance_segmentation/COCO/instances.json",
        {},
        0,
        0,
        {"000000036086.jpg": "missing", "000000109005.jpg": "missing"},
    ),
]


@pytest.mark.parametrize(("folder", "params", "samples", "annotations", "removed"), FORMATS)
def test_formats_from_the_corpora(
    corpora: Path,
    tmp_path: Path,
    folder: str,
    params: dict[str, Any],
    samples: int,
    annotations: int,
    removed: dict[str, str],
) -> None:
    dataset, _ = ingest(tmp_path, source=str(corpora / folder), **params)
    assert len(dataset) == samples
    assert dataset.info["counts"]["annotations"] == annotations
    assert removed_reasons(dataset) == removed


def test_yolo_boxes_are_pixels_and_match_coco(corpora: Path, tmp_path: Path) -> None:
    base = corpora / "formats/labelformat/object_detection"
    from_coco, _ = ingest(tmp_path / "a", source=str(base / "COCO"))
    from_yolo, _ = ingest(tmp_path / "b", source=str(base / "YOLOv8"))
    boxes = {}
    for dataset in (from_coco, from_yolo):
        names = {c.id: c.name for c in dataset.categories}
        boxes[dataset.path] = sorted(
            (s.id, names[a.category_id], tuple(round(v) for v in a.bbox))
            for s in dataset.samples()
            for a in s.annotations
        )
    assert boxes[from_coco.path] == boxes[from_yolo.path]


def test_bccd_voc_every_box(corpora: Path, tmp_path: Path) -> None:
    dataset, _ = ingest(tmp_path, source=str(corpora / "detection/bccd_voc/BCCD"))
    assert len(dataset) == 364 and dataset.info["counts"]["annotations"] == 4888
    assert dataset.info["counts"]["splits"] == {"test": 72, "train": 205, "val": 87}


def _exif_jpeg(path: Path, orientation: int, size: tuple[int, int], box: tuple[int, ...]) -> None:
    """A JPEG whose stored pixels have a red box on black, tagged with ``orientation``."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    x, y, w, h = box
    pixels[y : y + h, x : x + w] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, "JPEG", quality=95, exif=exif.tobytes())


def _coco(root: Path, images: list[tuple[str, int, int, list[list[float]]]]) -> None:
    doc: dict[str, Any] = {"images": [], "annotations": [], "categories": [{"id": 3, "name": "c"}]}
    for index, (name, width, height, boxes) in enumerate(images, start=1):
        doc["images"].append({"id": index, "file_name": name, "width": width, "height": height})
        for box in boxes:
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": index,
                    "category_id": 3,
                    "bbox": box,
                }
            )
    (root / "annotations.json").write_text(json.dumps(doc))


def _red_fraction(project: Path, image: str, box: list[float]) -> float:
    with Image.open(project / image) as opened:
        assert opened.getexif().get(0x0112) is None, "the stored copy is upright, untagged"
        pixels = np.asarray(opened.convert("RGB"), dtype=int)
    x, y, w, h = (round(v) for v in box)
    region = pixels[y : y + h, x : x + w]
    return float(((region[..., 0] > 150) & (region[..., 1] < 100)).mean())


# orientation 6 (turn 90 degrees clockwise) of a 60x30 stored image with a box at (10,5,20,8):
# displayed it is 30x60 and the box is at (17,10,8,20).
EXIF = [
    # labels drawn as viewers show the photo (declared displayed size): kept as they are
    ("displayed", (30, 60), [17, 10, 8, 20], "auto", [17.0, 10.0, 8.0, 20.0], 1),
    # labels drawn on the stored pixels (declared stored size): moved with the pixels
    ("stored", (60, 30), [10, 5, 20, 8], "auto", [17.0, 10.0, 8.0, 20.0], 1),
    # told explicitly that labels are on the stored pixels
    ("forced", (60, 30), [10, 5, 20, 8], "stored", [17.0, 10.0, 8.0, 20.0], 1),
    # a declared size that is neither: the boxes cannot be trusted
    ("other", (64, 32), [10, 5, 20, 8], "auto", None, 0),
    # told displayed, but the size is the stored one
    ("contradicted", (60, 30), [10, 5, 20, 8], "displayed", None, 0),
]


@pytest.mark.parametrize(("name", "declared", "box", "frame", "expected", "kept"), EXIF)
def test_exif_orientation_is_applied_once(
    tmp_path: Path,
    name: str,
    declared: tuple[int, int],
    box: list[float],
    frame: str,
    expected: list[float] | None,
    kept: int,
) -> None:
    source = tmp_path / "raw"
    _exif_jpeg(source / "images" / f"{name}.jpg", 6, (60, 30), (10, 5, 20, 8))
    _coco(source, [(f"{name}.jpg", *declared, [box])])
    dataset, metrics = ingest(tmp_path, source="raw", label_frame=frame)
    assert len(dataset) == kept
    if expected is None:
        assert removed_reasons(dataset) == {f"{name}.jpg": "size_mismatch"}
        return
    (sample,) = dataset.samples()
    assert (sample.width, sample.height) == (30, 60)
    assert sample.extra["exif_orientation"] == 6 and metrics["exif_rotated"] == 1
    assert list(sample.annotations[0].bbox) == expected
    assert _red_fraction(tmp_path, sample.image, expected) > 0.95


def test_yolo_labels_use_the_displayed_size(tmp_path: Path) -> None:
    source = tmp_path / "raw"
    _exif_jpeg(source / "images" / "p.jpg", 8, (60, 30), (10, 5, 20, 8))
    # orientation 8 (turn counter-clockwise): displayed 30x60, the box lands at (5,30,8,20)
    (source / "labels").mkdir(parents=True)
    (source / "labels" / "p.txt").write_text(f"0 {9 / 30} {40 / 60} {8 / 30} {20 / 60}\n")
    (source / "data.yaml").write_text("train: images\nnames: [c]\n")
    dataset, _ = ingest(tmp_path, source="raw")
    (sample,) = dataset.samples()
    assert sample.annotations[0].bbox == pytest.approx((5, 30, 8, 20))
    assert _red_fraction(tmp_path, sample.image, [5, 30, 8, 20]) > 0.95


def test_pillow_orientation_photos(corpora: Path, tmp_path: Path) -> None:
    source = tmp_path / "raw"
    source.mkdir()
    for orientation in range(2, 9):
        shutil.copy(corpora / f"corrupt/pillow/hopper_orientation_{orientation}.jpg", source)
    shutil.copy(corpora / "corrupt/pillow/hopper.jpg", source)
    dataset, metrics = ingest(tmp_path, source="raw", format="images")
    assert metrics["exif_rotated"] == 7
    reference = np.asarray(Image.open(source / "hopper.jpg").convert("RGB"), dtype=int)
    for sample in dataset.samples():
        assert sample.extra["exif_orientation"] == (
            1 if sample.id == "hopper.jpg" else int(sample.id[-5])
        )
        upright = np.asarray(Image.open(tmp_path / sample.image).convert("RGB"), dtype=int)
        assert np.abs(upright - reference).mean() < 12.0


def test_unsafe_paths_are_removed_and_symlinks_followed_only_when_asked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (4, 4)).save(outside / "o.png")
    source = tmp_path / "raw"
    (source / "images").mkdir(parents=True)
    Image.new("RGB", (4, 4), "white").save(source / "images" / "ok.png")
    (source / "images" / "link.png").symlink_to(outside / "o.png")
    (source / "images" / "linked_dir").symlink_to(outside)
    _coco(
        source,
        [
            ("ok.png", 4, 4, []),
            ("../outside/o.png", 4, 4, []),
            ("/etc/passwd", 4, 4, []),
            ("link.png", 4, 4, []),
        ],
    )
    dataset, _ = ingest(tmp_path, source="raw")
    assert dataset.table.column("id").to_pylist() == ["ok.png"]
    assert removed_reasons(dataset) == {
        "../outside/o.png": "unsafe_path",
        "/etc/passwd": "unsafe_path",
        "link.png": "unsafe_path",
        "linked_dir": "unsafe_path",
    }
    followed, _ = ingest(tmp_path, source="raw", follow_symlinks=True)
    assert followed.table.column("id").to_pylist() == ["link.png", "ok.png"]
    assert removed_reasons(followed) == {
        "../outside/o.png": "unsafe_path",
        "/etc/passwd": "unsafe_path",
        "linked_dir/o.png": "unlisted",
    }


def test_names_with_spaces_dots_and_non_ascii(tmp_path: Path) -> None:
    source = tmp_path / "raw"
    names = ["a b.c.d.jpg", "日本/ü ñ.png", "x..y .JPG"]
    for name in names:
        (source / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6)).save(
            source / "images" / name, "PNG" if name.endswith("png") else "JPEG"
        )
    _coco(source, [(n, 8, 6, [[1, 1, 2, 2]]) for n in names])
    dataset, _ = ingest(tmp_path, source="raw")
    assert sorted(dataset.table.column("id").to_pylist()) == sorted(names)
    for sample in dataset.samples():
        assert (tmp_path / sample.image).is_file() and sample.source.startswith("raw/images/")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


MALFORMED = [
    # invalid JSON: file and line
    ({"annotations.json": '{\n "images": [,]\n}'}, {}, r"raw/annotations\.json:2: invalid JSON"),
    # duplicate annotation ids: file and element
    (
        {
            "annotations.json": json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.jpg"}],
                    "categories": [{"id": 1, "name": "a"}],
                    "annotations": [
                        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
                        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
                    ],
                }
            )
        },
        {},
        r"raw/annotations\.json annotations\[1\]\.id: annotation id 5 is used twice",
    ),
    # an unknown category id: file and element
    (
        {
            "annotations.json": json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.jpg"}],
                    "categories": [{"id": 1, "name": "a"}],
                    "annotations": [
                        {"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1]}
                    ],
                }
            )
        },
        {},
        r"raw/annotations\.json annotations\[0\]\.category_id: category id 2 is not in",
    ),
    # VOC XML cut short: file and line
    (
        {"Annotations/a.xml": "<annotation>\n<object>\n"},
        {},
        r"raw/Annotations/a\.xml:3: invalid XML",
    ),
    # a YOLO label line: file and line
    (
        {
            "data.yaml": "train: images\nnames: [a]\n",
            "images/a.jpg": "",
            "labels/a.txt": "0 .5 .5 .1 .1\n3 .5 .5 .1 .1\n",
        },
        {},
        r"raw/labels/a\.txt:2: class 3 is not in names",
    ),
    # the source does not exist: the param is named
    ({}, {"source": "nowhere"}, r"params\.yaml ingest\.source: source folder not found: nowhere"),
    # two formats at once
    (
        {"annotations.json": '{"images": []}', "data.yaml": "names: [a]\n"},
        {},
        r"params\.yaml ingest\.source: raw: the format is ambiguous",
    ),
]


@pytest.mark.parametrize(("files", "params", "message"), MALFORMED)
def test_bad_input_is_one_clear_error(
    tmp_path: Path, files: dict[str, str], params: dict[str, str], message: str
) -> None:
    _write(tmp_path / "raw", files)
    (tmp_path / "raw").mkdir(exist_ok=True)
    with pytest.raises(PixelpipeError, match=message):
        ingest(tmp_path, **{"source": "raw", **params})


def test_nothing_is_dropped_without_a_removal(tmp_path: Path) -> None:
    source = tmp_path / "raw"
    (source / "images").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (10, 10)).save(source / "images" / name)
    (source / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    _write(
        source,
        {
            "data.yaml": "train: images\nnames: [a]\n",
            "labels/a.txt": "0 0.5 0.5 0.2 0.2\n",
            "labels/ghost.txt": "0 0.5 0.5 0.2 0.2\n",
            "labels/broken.txt": "",
        },
    )
    dataset, metrics = ingest(tmp_path, source="raw")
    assert dataset.table.column("id").to_pylist() == ["a.jpg", "b.jpg"]
    assert removed_reasons(dataset) == {"broken.jpg": "unreadable", "labels/ghost.txt": "missing"}
    assert metrics["found"] == 4 and metrics["images_without_labels"] == 1


def test_credentials_in_the_source_param_are_refused() -> None:
    kind = resolve("ingest")
    with pytest.raises(ValidationError, match=r"the URL holds credentials"):
        kind.params(source="https://user:pw@example.com/set")
    with pytest.raises(ValidationError, match=r"signature or token"):
        kind.params(source="https://example.com/set?X-Amz-Signature=abc")


def test_jpeg_quality_is_bounded() -> None:
    with pytest.raises(ValidationError, match=r"less than or equal to 100"):
        resolve("ingest").params(jpeg_quality=101)


def test_re_encoded_photo_is_deterministic(tmp_path: Path) -> None:
    source = tmp_path / "raw"
    _exif_jpeg(source / "images" / "p.jpg", 6, (60, 30), (10, 5, 20, 8))
    first, _ = ingest(tmp_path, source="raw", format="images")
    digest = first.digest
    image = io.BytesIO((tmp_path / next(first.samples()).image).read_bytes())
    second, _ = ingest(tmp_path, source="raw", format="images")
    assert second.digest == digest
    assert (tmp_path / next(second.samples()).image).read_bytes() == image.getvalue()


def test_a_name_that_is_not_utf8_is_kept_under_an_escaped_id(tmp_path: Path) -> None:
    from hostile import NOT_UTF8, jpeg, write_named

    source = tmp_path / "raw"
    write_named(source, NOT_UTF8, jpeg((8, 6), "red"))
    write_named(source, b"caf\xe9/x.jpg", jpeg((4, 4), "blue"))
    write_named(source, b"ok.jpg", jpeg((8, 6), "green"))
    dataset, _ = ingest(tmp_path, source="raw", format="images")
    assert dataset.table.column("id").to_pylist() == ["bad%FF%FEname.jpg", "caf%E9/x.jpg", "ok.jpg"]
    sample = next(dataset.samples())
    assert sample.source == "raw/bad%FF%FEname.jpg" and (sample.width, sample.height) == (8, 6)
    assert (tmp_path / sample.image).read_bytes() == jpeg((8, 6), "red")
    again, _ = ingest(tmp_path, source="raw", format="images")
    assert again.digest == dataset.digest


def test_label_file_names_that_are_not_text_are_ids_too(tmp_path: Path) -> None:
    from hostile import jpeg, write_named

    source = tmp_path / "raw"
    write_named(source, b"images/x\xff.jpg", jpeg((8, 6)))
    # JSON can spell what no UTF-8 text holds: "\udcff" is the byte 0xFF of a file name
    # (as Python reads names), "\ud800" a lone surrogate that names nothing
    document = {
        "images": [
            {"id": 1, "file_name": "x\udcff.jpg", "width": 8, "height": 6},
            {"id": 2, "file_name": "y\ud800.jpg", "width": 8, "height": 6},
        ],
        "annotations": [],
        "categories": [{"id": 1, "name": "a"}],
    }
    (source / "annotations.json").write_text(json.dumps(document))
    dataset, _ = ingest(tmp_path, source="raw")
    assert dataset.table.column("id").to_pylist() == ["x%FF.jpg"]
    assert removed_reasons(dataset) == {"y%ED%A0%80.jpg": "missing"}


def test_a_file_gone_since_the_listing_is_removed_as_missing(tmp_path: Path) -> None:
    from pixelpipe.sources import open_tree
    from stages._ingest.keys import stamp_local
    from stages._ingest.worker import Failed, Job, Settings, probe_chunk

    (tmp_path / "raw").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "raw" / "a.png")
    tree = open_tree(str(tmp_path / "raw"))
    job = Job("a.png", stamp_local(tmp_path / "raw" / "a.png"))
    (tmp_path / "raw" / "a.png").unlink()
    (result,) = probe_chunk(tree.access, Settings(10**8, False, 95), [job])
    assert isinstance(result, Failed) and result.reason == "missing"
    assert "not found when read" in result.detail
    assert result.transient and not result.cacheable, "a file that went away is not cached"


BROKEN_EXIF = [
    "hopper_bad_exif.jpg",
    "exif_typeerror.jpg",
    "broken_exif_dpi.jpg",
    "exif-dpi-zerodivision.jpg",
    "exif_gps_typeerror.jpg",
    "empty_gps_ifd.jpg",
    "invalid-exif.jpg",
    "sugarshack_bad_mpo_header.jpg",
    "apng/syntax_num_frames_invalid.png",
    "crash-86214e58da443d2b80820cff9677a38a33dcbbca.tif",
]


def test_pillow_warnings_are_one_line_per_image_never_stderr_noise(
    corpora: Path, project: Path, run: Any
) -> None:
    source = project / "data" / "raw" / "exif"
    source.mkdir(parents=True)
    for name in BROKEN_EXIF:
        shutil.copy(corpora / "corrupt/pillow" / name, source)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"].update(source="data/raw/exif", format="images")
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = run(["pixelpipe", "run", "ingest"], project, PIXELPIPE_WORKERS="2")
    assert "site-packages" not in result.stderr and "Warning:" not in result.stderr
    said = [line for line in result.stderr.splitlines() if "pixelpipe.ingest: ingest: " in line]
    assert [line for line in said if "hopper_bad_exif.jpg" in line] == [
        "pixelpipe.ingest: ingest: hopper_bad_exif.jpg: Corrupt EXIF data. Expecting to read "
        "12 bytes but only got 2."
    ]
    warned = {line.split(": ")[2] for line in said if line.count(": ") >= 3 and ".jp" in line}
    warned |= {line.split(": ")[2] for line in said if ".png: " in line or ".tif: " in line}
    assert warned == {
        "hopper_bad_exif.jpg",
        "sugarshack_bad_mpo_header.jpg",
        "syntax_num_frames_invalid.png",
        "crash-86214e58da443d2b80820cff9677a38a33dcbbca.tif",
    }
    report = json.loads((project / "reports" / "ingest.json").read_text())
    assert report["image_warnings"] == 4 and report["samples"] == len(BROKEN_EXIF)
