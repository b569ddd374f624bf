"""Hostile input: every file of the corrupt corpus and generated cases, through ingest and convert.

The source holds a copy of ``corpora/corrupt/`` (truncated files, bombs, fuzzer crashes, broken
EXIF...) and cases made here (a name that is not UTF-8, a PNG declaring 30000x30000 pixels, an
empty file, a folder named ``x.jpg``, symlink loops, a link to nothing, a FIFO, text named
``.jpg``...). ``pixelpipe run ingest`` and ``pixelpipe convert`` run on it as a user runs them:
they exit 0, print no traceback and nothing from Pillow, and account for every image found
(in = kept + removed), counted here independently of pixelpipe's own listing.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from hostile import NOT_UTF8, jpeg, png_bomb, write_named

from pixelpipe.formats.base import IMAGE_EXTENSIONS

# What becomes of each generated case (ids are relative to the source root).
EXPECTED = {
    # a name that is not UTF-8: kept, under an id that escapes its bytes
    "generated/bad%FF%FEname.jpg": "kept",
    # a folder whose name is not UTF-8
    "generated/dir%E9/a.jpg": "kept",
    # a folder named like an image: its content is read
    "generated/x.jpg/inner.png": "kept",
    # an upper-case ending
    "generated/UPPER.JPG": "kept",
    # a name with a newline and one with text a console would take for markup
    "generated/new\nline.png": "kept",
    "generated/[bold]odd.jpg": "unreadable",
    # a pixel bomb: the header declares 30000x30000
    "generated/bomb.png": "too_large",
    # nothing at all, the PNG signature alone, a JPEG start marker alone, text named .jpg
    "generated/empty.jpg": "unreadable",
    "generated/signature.png": "unreadable",
    "generated/soi.jpg": "unreadable",
    "generated/notes.jpg": "unreadable",
    # a symlink to itself, and one to a file that is gone (as a file deleted after listing)
    "generated/loop.jpg": "unreadable",
    "generated/vanished.jpg": "missing",
    # a FIFO, and a link to it: reading would block forever, so they are never opened
    "generated/pipe.jpg": "unsafe_path",
    "generated/to_pipe.jpg": "unsafe_path",
    # a symlink out of the source
    "generated/outside.jpg": "unsafe_path",
}


def _generate(folder: Path, outside: Path) -> None:
    folder.mkdir(parents=True)
    write_named(folder, NOT_UTF8, jpeg())
    write_named(folder, b"dir\xe9/a.jpg", jpeg((5, 5)))
    (folder / "x.jpg").mkdir()
    (folder / "x.jpg" / "inner.png").write_bytes(_png())
    (folder / "UPPER.JPG").write_bytes(jpeg((3, 9)))
    (folder / "new\nline.png").write_bytes(_png((7, 2)))
    (folder / "[bold]odd.jpg").write_text("[bold]not an image[/bold]\n")
    (folder / "bomb.png").write_bytes(png_bomb(30000, 30000))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "signature.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "soi.jpg").write_bytes(b"\xff\xd8")
    (folder / "notes.jpg").write_text("These are notes, not a photo.\n")
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "vanished.jpg").symlink_to("gone.jpg")
    (folder / "cycle").symlink_to(".")  # a folder loop: cut, nothing read twice
    os.mkfifo(folder / "pipe.jpg")
    (folder / "to_pipe.jpg").symlink_to("pipe.jpg")
    outside.write_bytes(jpeg())
    (folder / "outside.jpg").symlink_to(outside)
    (folder / ".hidden.jpg").write_bytes(jpeg())  # hidden: never read, not an input
    (folder / "readme.txt").write_text("not an image name: ignored\n")


def _png(size: tuple[int, int] = (4, 4)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, "PNG")
    return buffer.getvalue()


def _images_found(root: Path) -> int:
    """Directory entries that are not folders, not hidden and named like images."""
    count = 0
    for folder, dirs, files in os.walk(root):  # symlinked folders are not entered
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                count += 1
        count += sum(
            1 for d in dirs if d.lower().endswith(IMAGE_EXTENSIONS) and _is_link(folder, d)
        )
    return count


def _is_link(folder: str, name: str) -> bool:
    return os.path.islink(os.path.join(folder, name))


@pytest.fixture
def hostile_source(corpora: Path, tmp_path: Path) -> Path:
    source = tmp_path / "hostile"
    shutil.copytree(corpora / "corrupt", source / "corpus")
    _generate(source / "generated", tmp_path / "outside.jpg")
    return source


def test_ingest_accounts_for_every_hostile_file(
    hostile_source: Path, project: Path, run: Any
) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"].update(source=str(hostile_source), format="images")
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = run(["pixelpipe", "run", "ingest"], project, PIXELPIPE_WORKERS="2")
    assert "Traceback" not in result.stderr and "site-packages" not in result.stderr
    samples = pq.read_table(project / "data/ingest/samples.parquet").column("id").to_pylist()
    removed = pq.read_table(project / "data/ingest/removed.parquet").to_pylist()
    found = _images_found(hostile_source)
    assert found == 118 + len(EXPECTED)  # the corpus's images and the generated cases
    assert len(samples) + len(removed) == found
    reasons = {row["id"]: row["reason"] for row in removed}
    outcome = {sid: "kept" for sid in samples} | reasons
    assert {sid: outcome.get(sid) for sid in EXPECTED} == EXPECTED
    assert all(row["detail"] for row in removed), "every removal says why"
    assert reasons["generated/bomb.png"] == "too_large"


def test_convert_accounts_for_every_hostile_file(
    hostile_source: Path, project: Path, run: Any, tmp_path: Path
) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"].update(source=str(hostile_source), format="images")
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    run(["pixelpipe", "run", "ingest"], project, PIXELPIPE_WORKERS="1")
    kept = pq.read_table(project / "data/ingest/samples.parquet").num_rows
    result = run(
        ["pixelpipe", "convert", str(hostile_source), "out", "--to", "coco", "--from", "images"],
        tmp_path,
    )
    assert result.stderr == "", result.stderr  # no traceback, nothing from Pillow
    written = re.search(r"images -> coco: (\d+) images", result.stdout)
    skipped = re.search(r"^skipped (\d+):$", result.stdout, re.MULTILINE)
    assert written and skipped, result.stdout
    assert int(written.group(1)) + int(skipped.group(1)) == _images_found(hostile_source)
    assert int(written.group(1)) == kept, "convert keeps exactly what ingest keeps"
    assert "too_large: generated/bomb.png" in result.stdout or int(skipped.group(1)) > 10
    assert (tmp_path / "out/images/unassigned/generated/bad%FF%FEname.jpg").is_file()
    assert not list((tmp_path / "out").rglob("bomb.png"))
