"""A hostile YOLO dataset file through `pixelpipe convert` and an ingest run: one clear line.

Each case runs through both real entry points (a subprocess, its address space bounded so
that an alias bomb fails instead of taking the machine) and must exit 1 with one error
line naming the file, the line or key, and what is wrong; no traceback, nothing run.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from bounded import bounded, error_lines
from cocofiles import coco_file
from PIL import Image

PIXELPIPE = str(Path(sys.executable).parent / "pixelpipe")
HEAD = "train: images/train\n"


def bomb(levels: int = 9) -> str:
    """Ten nested anchors of ten aliases each: ``*a8`` expands to 10^9 leaves."""
    rows = [f"a0: &a0 [{', '.join(['lol'] * 10)}]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


CASES = [
    # The billion laughs as the class names: refused on the line where the aliases pass
    # the limit (the fifth anchor, line 6), not after filling the memory.
    (
        HEAD + bomb() + "names: *a8\n",
        r"yolo/data\.yaml:6: YAML expands to more than 100000 nodes through aliases "
        r"\(an alias bomb\?\)$",
    ),
    # A Python tag that would run a command: the file, the line and the tag (it was "no
    # YOLO dataset file" when the format was detected).
    (
        HEAD + "names: [cat]\nx: !!python/object/apply:os.system ['touch pwned']\n",
        r"yolo/data\.yaml:3: invalid YAML: tag '!!python/object/apply:os\.system' is not "
        r"allowed \(only plain YAML is accepted: no tags\)$",
    ),
    # A Python tag on the names themselves.
    (
        HEAD + "names: !!python/name:os.system\n",
        r"yolo/data\.yaml:2: invalid YAML: tag '!!python/name:os\.system' is not allowed",
    ),
    # Names that contain themselves (walking them never ends).
    (HEAD + "names: &n [cat, *n]\n", r"yolo/data\.yaml:2: alias \*n is inside the node it names"),
    # `names` twice: YAML would silently keep the second.
    (HEAD + "names: [cat]\nnames: [dog]\n", r"yolo/data\.yaml:3 names: duplicate key$"),
    # A class index past the manifest's signed 64-bit ids (was an OverflowError in ingest).
    (
        HEAD + "names: {0: cat, 9223372036854775808: dog}\n",
        r"yolo/data\.yaml names: class index 9223372036854775808 does not fit in a signed "
        r"64-bit integer$",
    ),
    # A class index of 10^30 written as a string of digits.
    (
        HEAD + "names: {0: cat, '1" + "0" * 30 + "': dog}\n",
        r"yolo/data\.yaml names: class index '1000000000000000000000000000000' does not fit",
    ),
    # A fractional class index (was silently truncated to 1).
    (HEAD + "names: {0: cat, 1.5: dog}\n", r"yolo/data\.yaml names: class index 1\.5 is not a"),
    # `nc` of 5000 digits (Python refuses to convert it: was a ValueError traceback).
    (HEAD + "nc: " + "1" * 5000 + "\nnames: [cat]\n", r"yolo/data\.yaml:2: invalid YAML: '1111"),
]


def _yolo(root: Path, data_yaml: str) -> None:
    (root / "images/train").mkdir(parents=True)
    (root / "labels/train").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "images/train/a.jpg")
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (root / "data.yaml").write_text(data_yaml)


def _project(root: Path) -> None:
    (root / "pipelines").mkdir()
    (root / "pipelines/default.yaml").write_text("stages:\n  ingest:\n    kind: ingest\n")
    (root / "params.yaml").write_text("ingest:\n  source: yolo\n")


@pytest.mark.parametrize("entry", ["convert", "ingest"])
@pytest.mark.parametrize(("data_yaml", "message"), CASES)
def test_hostile_data_yaml_is_one_clear_line(
    tmp_path: Path, entry: str, data_yaml: str, message: str
) -> None:
    _yolo(tmp_path / "yolo", data_yaml)
    if entry == "convert":
        lines = error_lines([PIXELPIPE, "convert", "yolo", "out", "--to", "coco"], tmp_path)
    else:
        _project(tmp_path)
        lines = error_lines([PIXELPIPE, "run", "ingest"], tmp_path)
    assert len(lines) == 1 and re.match(message, lines[0]), lines
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "yolo/pwned").exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "data/ingest").exists()


def test_a_yaml_that_cannot_be_read_beside_the_dataset_file_is_not_read(tmp_path: Path) -> None:
    """The root YAML with ``names`` is the dataset file; another one is never built."""
    _yolo(tmp_path / "yolo", HEAD + "names: [cat]\n")
    (tmp_path / "yolo/extra.yaml").write_text(
        "x: !!python/object/apply:os.system ['touch pwned']\n"
    )
    result = bounded([PIXELPIPE, "convert", "yolo", "out", "--to", "coco"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(coco_file(tmp_path / "out").read_text())["categories"] == [
        {"id": 1, "name": "cat", "supercategory": ""}  # YOLO's 0, numbered from 1 for COCO
    ]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "yolo/pwned").exists()


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        # A superscript digit: str.isdigit() says yes, int() refuses (was a ValueError).
        ("\u00b2", None),
        # 5000 digits: more than Python converts (was a ValueError).
        ("7" * 5000, r"yolo/obj\.data:1: classes is 7{40} but the names file has 1$"),
    ],
)
def test_darknet_classes_python_cannot_convert(
    tmp_path: Path, classes: str, message: str | None
) -> None:
    root = tmp_path / "yolo"
    (root / "data").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "data/a.jpg")
    (root / "data/a.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (root / "obj.names").write_text("cat\n")
    (root / "train.txt").write_text("data/a.jpg\n")
    (root / "obj.data").write_text(
        f"classes = {classes}\nnames = obj.names\ntrain = train.txt\n", encoding="utf-8"
    )
    args = [PIXELPIPE, "convert", "yolo", "out", "--to", "coco"]
    if message is None:
        result = bounded(args, tmp_path)
        assert result.returncode == 0, result.stderr
    else:
        lines = error_lines(args, tmp_path)
        assert len(lines) == 1 and re.match(message, lines[0]), lines
