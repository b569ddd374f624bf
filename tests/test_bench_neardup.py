"""benchmarks/bench_neardup.py: its decision rule, its edits, its bad options, a tiny run."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from bench_neardup import (  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
    EDITS,
    accepted,
    encode,
    main,
)

from pixelpipe.imaging.verify import Verified  # noqa: E402


@pytest.mark.parametrize(
    ("distance", "verified", "threshold", "expected"),
    [
        (10, (20, 300, -1.0, None), 12, True),  # enough inliers within the candidate distance
        (13, (400, 300, -1.0, None), 12, False),  # verified, but never a candidate at 12
        (10, (19, 300, -1.0, None), 12, False),  # one inlier short: a look-alike
        (10, (80, 300, 8.0, None), 12, True),  # verified, colours alike
        (10, (80, 300, 38.0, None), 12, False),  # verified, but one print in two colours
        (6, (0, 49, -1.0, None), 12, True),  # too plain to verify: the hash decides, at <= 6
        (7, (0, 49, -1.0, None), 12, False),  # too plain and beyond 6: not a duplicate
        (6, (0, 49, -1.0, None), 4, False),  # too plain, but outside a tighter distance
        (0, (0, 0, -1.0, "OSError: broken"), 12, False),  # unreadable: pairs with nothing
    ],
)
def test_the_two_step_rule(
    distance: int, verified: Verified, threshold: int, expected: bool
) -> None:
    assert accepted(distance, verified, threshold) is expected


@pytest.mark.parametrize(
    ("edit", "size", "mode"),
    [
        ("resize_25%", (100, 133), "RGB"),  # a quarter of each side
        ("jpeg_q30", (400, 533), "RGB"),  # pixels kept, quality 30
        ("grayscale", (400, 533), "L"),  # one channel
        ("watermark", (400, 533), "RGB"),  # drawn over, size kept
        ("crop_5%", (380, 506), "RGB"),  # 5% of each side removed in total
        ("crop_10%", (360, 480), "RGB"),  # 10% of each side removed in total
        ("crop_20%", (320, 426), "RGB"),  # 20% of each side removed in total
        ("squash_16:10", (400, 250), "RGB"),  # width kept, height squashed to 16:10
        ("reframe_4:5", (240, 300), "RGB"),  # centre 400x500, then a 300 px thumbnail
        ("reframe_16:10", (300, 188), "RGB"),  # centre 400x250, then a 300 px thumbnail
        ("reframe_1:1", (300, 300), "RGB"),  # centre 400x400, then a 300 px thumbnail
    ],
)
def test_edits_have_their_size_and_are_seeded(edit: str, size: tuple[int, int], mode: str) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (533, 400, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    fn, quality = EDITS[edit]
    first = encode(fn(image, np.random.default_rng(7)), quality)
    again = encode(fn(image, np.random.default_rng(7)), quality)
    assert first == again
    with Image.open(io.BytesIO(first)) as copy:
        assert (copy.size, copy.mode) == (size, mode)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--thresholds", "4", "32"], "--thresholds: 32 is not from 0 to 31"),  # past half the bits
        (["--thresholds", "-1"], "--thresholds: -1 is not from 0 to 31"),  # negative
        (["--every", "0"], "--every must be at least 1, got 0"),  # would edit nothing
        (["--workers", "0"], "--workers must be at least 1, got 0"),  # no pool
        (["--limit", "-3"], "--limit must be at least 0, got -3"),  # negative count
    ],
)
def test_bad_options_are_refused_with_the_option_named(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(args)
    assert message in capsys.readouterr().err


def test_a_folder_without_photos_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["--photos", str(tmp_path)])
    assert f"--photos: no .jpg photos in {tmp_path}" in capsys.readouterr().err


def _run(corpora: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """The JSON report, and what was printed after it."""
    script = [sys.executable, str(BENCHMARKS / "bench_neardup.py")]
    sample = ["--limit", "6", "--every", "3", "--photos", str(corpora / "photos" / "clothing")]
    done = subprocess.run(
        [*script, *sample, *extra],
        capture_output=True,
        text=True,
        check=True,
    )
    report, end = json.JSONDecoder().raw_decode(done.stdout)
    return report, done.stdout[end:]


def test_a_tiny_run_reports_recall_false_pairs_and_cost(corpora: Path, tmp_path: Path) -> None:
    tables = tmp_path / "neardup.md"
    report, after = _run(corpora, "--workers", "2", "--markdown", str(tables))
    assert not after.strip()  # the tables went to the file
    thresholds = [str(t) for t in report["thresholds"]]
    assert thresholds == ["4", "6", "8", "10", "12", "14"]
    assert (report["photos"], report["edited_photos"]) == (6, 2)
    edits = report["recall"]["edits"]
    assert list(edits) == list(EDITS)
    real = report["recall"]["real"]
    assert real["forest: 5 versions, all pairs"]["pairs"] == 10
    assert {r["kind"] for r in real.values()} == {"match", "expected_miss", "distinct"}
    for row in [*edits.values(), *real.values()]:
        phash, both = (
            [row["phash"][t] for t in thresholds],
            [row["two_step"][t] for t in thresholds],
        )
        assert all(0.0 <= share <= 1.0 for share in phash + both)
        assert phash == sorted(phash) and both == sorted(both)  # a larger distance accepts more
        assert both[-1] <= row["verified_share"] or row["min_inliers"] < 50  # checked, or plain
    assert all(row["pairs"] == 2 for row in edits.values())
    false = report["false_pairs"]
    assert list(false["per_threshold"]) == thresholds
    for counts in false["per_threshold"].values():
        assert counts["two_step_pairs"] <= false["candidate_pairs"]
        assert 0.0 <= counts["two_step_photo_share"] <= 1.0
        assert 0.0 <= counts["phash_photo_share"] <= 1.0
    assert sum(false["inliers_histogram"].values()) == false["candidate_pairs"]
    assert report["cost"]["same_results_serial_and_pooled"] is True
    text = tables.read_text()
    for heading in ("## Recall on edited copies", "## False pairs among 6", "## Cost"):
        assert heading in text
    # the same results on one worker, and printed after the JSON without a file
    again, after = _run(corpora, "--workers", "1", "--markdown")
    assert (again["recall"], again["false_pairs"]) == (report["recall"], report["false_pairs"])
    assert after.strip().startswith("## Recall on edited copies")
