"""The two-step near-duplicate decision: hash candidates, then keypoints that must agree."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image, ImageDraw

from pixelpipe.dataset import Dataset
from pixelpipe.engine.runner import run_stage
from pixelpipe.errors import PixelpipeError

PIPELINE = "pipelines/dedupe_test.yaml"
CLOTHING = "photos/clothing"
PHOTO = "00f6e504-7c27-438e-a5d7-bc65e557bb2b.jpg"
# Distinct photos of look-alike garments whose pHashes are 4 and 6 bits apart.
LOOK_ALIKES = [
    ("193e7aff-bfe9-4f2a-a93d-87bbdf7ab8fc.jpg", "565f2bb8-ca9b-4e09-a88d-58fa4eeabb8d.jpg"),
    ("2cbc567c-79b1-4c37-8f31-6a452650bb80.jpg", "2d38c37a-f31c-4715-8c22-2e7f45003236.jpg"),
]
RED_SHIRT = "2acc95a9-ac27-41e6-8061-9b43849db240.jpg"  # a colourful photo
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELPIPE_TRACKING", "off")


def _jpeg(image: Image.Image, path: Path) -> None:
    image.convert("RGB").save(path, "JPEG", quality=90)


@pytest.fixture
def edited(project: Path, corpora: Path, tmp_path: Path) -> Path:
    """One photo with a cropped, two reframed and a watermarked copy, a red shirt and the
    same photo in other colours, and two pairs of distinct look-alike photos (4 and 6 bits
    apart)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    with Image.open(corpora / CLOTHING / PHOTO) as opened:
        photo = opened.convert("RGB")
    width, height = photo.size
    photo.save(folder / "a_photo.png")
    _jpeg(photo.crop((int(width * 0.06), int(height * 0.06), width, height)), folder / "crop.jpg")
    kept = int(height * 0.85)  # reframed: 15% of the height cut, then a thumbnail
    top = (height - kept) // 2
    reframed = photo.crop((0, top, width, top + kept)).resize((300, 300 * kept // width))
    _jpeg(reframed, folder / "reframed.jpg")
    top = (height - width) // 2  # reframed to 1:1: the whole image 20 bits away, its square 0
    _jpeg(photo.crop((0, top, width, top + width)).resize((300, 300)), folder / "square.jpg")
    marked = photo.copy()
    ImageDraw.Draw(marked).rectangle(
        (width * 0.05, height * 0.9, width * 0.4, height * 0.97), fill="black"
    )
    _jpeg(marked, folder / "marked.jpg")
    shutil.copy(corpora / CLOTHING / RED_SHIRT, folder / "red_shirt.jpg")
    with Image.open(corpora / CLOTHING / RED_SHIRT) as opened:
        red, green, blue = opened.convert("RGB").split()  # the shirt in other colours
    _jpeg(Image.merge("RGB", (blue, red, green)), folder / "recoloured.jpg")
    for a, b in LOOK_ALIKES:
        shutil.copy(corpora / CLOTHING / a, folder / a)
        shutil.copy(corpora / CLOTHING / b, folder / b)
    stages = {
        "ingest": {"kind": "ingest"},
        "embed": {"kind": "custom_stages:embed_layout", "inputs": "ingest"},
        "dedupe": {"kind": "dedupe", "inputs": "ingest"},
        "dedupe_features": {"kind": "dedupe", "inputs": "embed"},
    }
    (project / PIPELINE).write_text(yaml.safe_dump({"stages": stages}))
    params = {
        "ingest": {"source": str(folder), "format": "images"},
        "embed": {},
        "dedupe": {},
        "dedupe_features": {},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(FIXTURES / "custom_stages.py", project / "custom_stages.py")
    run_stage(project, "ingest", PIPELINE, workers=1)
    return project


def _run(project: Path, stage: str, dedupe: dict[str, Any]) -> dict[str, Any]:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[stage] = dedupe
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    return run_stage(project, stage, PIPELINE, workers=1)


def _removed(project: Path, stage: str = "dedupe") -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in Dataset(project / "data" / stage).removed().to_pylist()}


def test_defaults_remove_crops_reframes_and_watermarks_and_keep_look_alikes(edited: Path) -> None:
    metrics = _run(edited, "dedupe", {})
    removed = _removed(edited)
    assert set(removed) == {"crop.jpg", "reframed.jpg", "marked.jpg", "square.jpg"}
    for row in removed.values():
        assert row["duplicate_of"] == "a_photo.png"
        assert row["matches"] >= 20 and row["distance"] <= 12
        assert f"{row['matches']} keypoints agree" in row["detail"]
    assert max(r["distance"] for r in removed.values()) > 6  # pHash alone at 6 misses one
    assert metrics["rejected_pairs"] >= len(LOOK_ALIKES) + 1
    assert metrics["colour_variants"] >= 1  # recoloured.jpg: its keypoints agree, not colours
    assert metrics["candidate_pairs"] == (
        metrics["verified_pairs"] + metrics["pairs_by_hash_alone"] + metrics["rejected_pairs"]
    )
    report = (edited / "data" / "dedupe" / "report.html").read_text()
    assert "matches" in report and "Candidates the check refused" in report
    assert LOOK_ALIKES[0][0] in report  # refused, shown with its keypoint count
    assert "colours differ by" in report


def test_without_the_check_the_loose_threshold_pairs_look_alikes(edited: Path) -> None:
    _run(edited, "dedupe", {"verify": False, "max_distance": 12})
    removed = _removed(edited)
    assert any(a in removed or b in removed for a, b in LOOK_ALIKES)
    assert "matches" not in next(iter(removed.values()))  # no second figure without a check


def test_a_vector_column_finds_candidates_and_the_check_still_decides(edited: Path) -> None:
    run_stage(edited, "embed", PIPELINE, workers=1)
    metrics = _run(edited, "dedupe_features", {"features": "layout", "max_cosine_distance": 0.1})
    assert metrics["features"] == "layout" and metrics["feature_search_recall"] == 1.0
    removed = _removed(edited, "dedupe_features")
    assert "marked.jpg" in removed and removed["marked.jpg"]["matches"] >= 20
    assert 0.0 <= removed["marked.jpg"]["cosine_distance"] <= 0.1
    assert "square.jpg" not in removed  # its colour layout is far: no candidate
    assert not any(a in removed or b in removed for a, b in LOOK_ALIKES)


def test_an_unknown_features_column_names_the_key_and_the_close_match(edited: Path) -> None:
    run_stage(edited, "embed", PIPELINE, workers=1)
    with pytest.raises(PixelpipeError, match=r"dedupe_features\.features: .*'layot'.*'layout'"):
        _run(edited, "dedupe_features", {"features": "layot"})


def test_a_vector_with_nan_names_its_sample(edited: Path) -> None:
    params = yaml.safe_load((edited / "params.yaml").read_text())
    params["embed"] = {"broken": "crop.jpg"}
    (edited / "params.yaml").write_text(yaml.safe_dump(params))
    run_stage(edited, "embed", PIPELINE, workers=1)
    with pytest.raises(PixelpipeError, match=r"features: column 'layout': .*'crop\.jpg'.*NaN"):
        _run(edited, "dedupe_features", {"features": "layout"})


def test_without_the_colour_test_a_recoloured_copy_is_a_duplicate(edited: Path) -> None:
    metrics = _run(edited, "dedupe", {"max_colour_difference": None})
    assert metrics["colour_variants"] == 0
    removed = _removed(edited)  # the same size: the first source path is kept
    assert removed["red_shirt.jpg"]["duplicate_of"] == "recoloured.jpg"
