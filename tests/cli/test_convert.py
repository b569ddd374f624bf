"""``pixelpipe convert`` to and from the review tools: CVAT and Label Studio folders.

A COCO ``val`` split goes to CVAT, from CVAT to Label Studio, and back to COCO with the
same boxes and split; the formats the command accepts are its readers' and writers' own
lists, in its help and its errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from shell import BIN, fails, launch, sh

from pixelpipe.formats.detect import FORMATS
from pixelpipe.formats.export import EXPORT_FORMATS

PIXELPIPE = str(BIN / "pixelpipe")
BOXES = {
    "a.jpg": [("car", [1.5, 2.25, 10.125, 20.0]), ("dog", [1.0 / 3, 2.0 / 3, 17.0 / 7, 5.0])],
    "b.jpg": [("car", [0.0, 0.0, 30.0, 20.0])],
}
SIZES = {"a.jpg": (64, 48), "b.jpg": (30, 20)}


def _source(root: Path) -> Path:
    """A COCO ``val`` split of two photos and three boxes (category ids 1 and 5)."""
    images = root / "images"
    images.mkdir(parents=True)
    ids = {"car": 1, "dog": 5}
    document: dict[str, list[dict[str, object]]] = {"images": [], "annotations": []}
    for index, (name, (width, height)) in enumerate(sorted(SIZES.items()), start=1):
        Image.new("RGB", (width, height), (index * 60, 20, 200)).save(images / name)
        document["images"].append(
            {"id": index, "file_name": name, "width": width, "height": height}
        )
        for label, box in BOXES[name]:
            number = len(document["annotations"]) + 1
            document["annotations"].append(
                {"id": number, "image_id": index, "category_id": ids[label], "bbox": box}
            )
    document["categories"] = [{"id": i, "name": n} for n, i in ids.items()]
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val.json").write_text(json.dumps(document))
    return root


def _coco_boxes(path: Path) -> dict[str, list[tuple[str, list[float]]]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    names = {c["id"]: c["name"] for c in document["categories"]}
    files = {i["id"]: Path(i["file_name"]).name for i in document["images"]}
    out: dict[str, list[tuple[str, list[float]]]] = {name: [] for name in files.values()}
    for entry in document["annotations"]:
        out[files[entry["image_id"]]].append((names[entry["category_id"]], entry["bbox"]))
    return {name: sorted(boxes) for name, boxes in out.items()}


def test_coco_to_cvat_to_labelstudio_and_back(tmp_path: Path) -> None:
    _source(tmp_path / "src")
    to_cvat = sh([PIXELPIPE, "convert", "src", "cv", "--to", "cvat"], tmp_path)
    assert "coco -> cvat: 2 images, 3 annotations, 2 classes, 2 image files copied" in (
        to_cvat.stdout
    )
    assert sorted(p.name for p in (tmp_path / "cv").iterdir()) == ["annotations.xml", "images"]
    to_ls = sh(
        [PIXELPIPE, "convert", "cv", "ls", "--from", "cvat", "--to", "labelstudio"], tmp_path
    )
    assert "cvat -> labelstudio: 2 images, 3 annotations" in to_ls.stdout
    names = sorted(p.name for p in (tmp_path / "ls").iterdir())
    assert names == ["images", "label_config.xml", "tasks.json"]
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text(encoding="utf-8"))
    assert [t["data"]["split"] for t in tasks] == ["val", "val"]  # COCO's split, via CVAT
    back = sh([PIXELPIPE, "convert", "ls", "back", "--to", "coco"], tmp_path)
    assert "labelstudio -> coco: 2 images, 3 annotations" in back.stdout  # detected
    written = _coco_boxes(tmp_path / "back" / "annotations" / "instances_val.json")
    assert written.keys() == BOXES.keys()
    for name, boxes in BOXES.items():
        assert [n for n, _ in written[name]] == [n for n, _ in sorted(boxes)]
        for (_, ours), (_, theirs) in zip(sorted(boxes), written[name], strict=True):
            assert max(abs(p - q) for p, q in zip(ours, theirs, strict=True)) <= 1e-6


def test_image_url_prefix(tmp_path: Path) -> None:
    _source(tmp_path / "src")
    args = ["--to", "labelstudio", "--image-url-prefix", "s3://bucket/review"]
    sh([PIXELPIPE, "convert", "src", "ls", *args], tmp_path)
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text(encoding="utf-8"))
    urls = [t["data"]["image"] for t in tasks]
    assert urls == ["s3://bucket/review/images/a.jpg", "s3://bucket/review/images/b.jpg"]


ERRORS = [
    # a misspelt target format: every one listed, and the one meant
    (
        ["--to", "lablestudio"],
        f"error: unknown target format 'lablestudio'; known: {', '.join(EXPORT_FORMATS)} "
        "(did you mean 'labelstudio'?)",
    ),
    # a misspelt source format
    (
        ["--to", "coco", "--from", "cvatt"],
        f"error: --from: 'cvatt' is not one of auto, {', '.join(FORMATS)} (did you mean 'cvat'?)",
    ),
    # a target format far from any: the list, no guess
    (
        ["--to", "kitti"],
        f"error: unknown target format 'kitti'; known: {', '.join(EXPORT_FORMATS)}",
    ),
]


@pytest.mark.parametrize(("args", "line"), ERRORS)
def test_a_wrong_format_is_one_line_with_the_formats(
    tmp_path: Path, args: list[str], line: str
) -> None:
    _source(tmp_path / "src")
    assert fails([PIXELPIPE, "convert", "src", "out", *args], tmp_path) == line
    assert not (tmp_path / "out").exists()


def test_help_lists_every_format() -> None:
    result = launch([PIXELPIPE, "convert", "--help"], Path.cwd(), COLUMNS="250")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "coco, yolo, voc, imagefolder, hf, cvat or labelstudio." in text
    assert f"auto, {', '.join(FORMATS[:-1])} or {FORMATS[-1]} (auto: detect it)." in text
    assert "--image-url-prefix" in text
    assert set(EXPORT_FORMATS) >= {"cvat", "labelstudio"}
