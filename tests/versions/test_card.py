"""The dataset card: what it says, and that it is the same bytes for the same data."""

from __future__ import annotations

from pathlib import Path

import pytest
from steps import serial_context

from pixelpipe.dataset import (
    Annotation,
    Category,
    Dataset,
    DatasetBuilder,
    Sample,
    content_digest,
    write_dataset,
)
from pixelpipe.versions.card import CARD_FILE, bar_chart, render_card, write_card

CATEGORIES = [Category(1, "cat"), Category(2, "dog"), Category(3, "bird", parent="animal")]


def sample(number: int, split: str | None, *categories: int) -> Sample:
    return Sample(
        id=f"img{number}.jpg",
        image=f"data/ingest/images/{number:02d}.jpg",
        sha256=f"{number:064x}",
        width=40,
        height=30,
        source=f"data/raw/cats/img{number}.jpg",
        split=split,
        annotations=[Annotation(c, (1.0, 1.0, 5.0, 5.0)) for c in categories],
    )


@pytest.fixture
def upstream(tmp_path: Path) -> Dataset:
    """data/ingest (2 removed) -> data/label (1 removed), written as the runner would."""
    data = tmp_path / "data"
    ingest = DatasetBuilder(CATEGORIES)
    for number in range(6):
        ingest.add(sample(number, None, 1 + number % 3, 1))
    ingest.remove("broken.jpg", "unreadable", "not an image", source="data/raw/cats/broken.jpg")
    ingest.remove("huge.jpg", "too_large", "too many pixels", source="data/raw/cats/huge.jpg")
    info = write_dataset(
        data / "ingest",
        ingest,
        stage="ingest",
        kind="ingest",
        params={"source": "data/raw/cats", "format": "coco"},
        inputs={},
    )
    label = DatasetBuilder(CATEGORIES)
    for number in range(5):
        label.add(sample(number, "val" if number == 0 else "train", 1 + number % 3, 1))
    label.remove(sample(5, None, 3, 1), "too_narrow", "40 px < 50 px")
    write_dataset(
        data / "label",
        label,
        stage="label",
        kind="label_stage:label",
        params={"val_every": 5},
        inputs={"ingest": info["digest"]},
    )
    return Dataset(data / "label")


def published(source: Dataset) -> DatasetBuilder:
    out = DatasetBuilder(source.categories)
    out.add_table(source.table)
    return out


def test_card_says_what_the_dataset_is(upstream: Dataset, tmp_path: Path) -> None:
    output = published(upstream)
    card = render_card(output, [upstream], stage="publish", params={"formats": ["coco"]})
    digest = content_digest(output.samples_table(), output.categories)

    assert card.startswith("# cats\n")  # named after the source folder
    assert f"| Digest | `{digest}` |" in card
    assert "| Images | 5 |" in card
    assert "| Annotations | 10 |" in card
    assert "| Splits | train 4, val 1 |" in card
    # Counts per split and class (instances), images per class, share.
    assert "| id | class | train | val | instances | images | share |" in card
    assert "| 1 | cat | 5 | 2 | 7 | 5 | 70.0% |" in card
    assert "| 3 | bird | 1 | 0 | 1 | 1 | 10.0% |" in card
    assert "| train | 4 | 8 | 80.0% |" in card
    # The chart: one bar per class, the largest full width.
    chart = card.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert chart[0] == "cat   " + "█" * 40 + "  7   70.0%"
    assert chart[2] == "bird  █████▊" + " " * 34 + "  1   10.0%"
    # Sources, pipeline and params of every stage, removals by stage and reason.
    assert "| `ingest` (ingest) | `data/raw/cats` | coco | 6 | 2 |" in card
    assert "`ingest` (ingest) → `label` (label_stage:label) → `publish` (publish)" in card
    assert "label:\n  val_every: 5\npublish:\n  formats:\n  - coco" in card
    assert "| ingest | too_large | 1 |" in card
    assert "| ingest | unreadable | 1 |" in card
    assert "| label | too_narrow | 1 |" in card
    # MLflow: found by digest; no run id, no time, no absolute path.
    assert f"filter_string=\"dataset.digest = '{digest[:36]}'\"" in card
    assert f"`pixelpipe.digest = {digest}`" in card
    assert "not released in this file" in card
    assert str(tmp_path) not in card
    assert card.endswith("\n")


def test_card_is_the_same_bytes_for_the_same_data(upstream: Dataset, tmp_path: Path) -> None:
    first = render_card(published(upstream), [upstream], stage="publish")
    again = render_card(published(upstream), [upstream], stage="publish")
    assert first == again
    # A written dataset gives the card its builder gave.
    written = tmp_path / "data" / "publish"
    write_dataset(
        written,
        published(upstream),
        stage="publish",
        kind="publish",
        params={},
        inputs={"label": upstream.digest},
    )
    assert render_card(Dataset(written), [upstream], stage="publish") == first


def test_name_version_and_unknown_classes(upstream: Dataset) -> None:
    output = published(upstream)
    output.add(sample(9, "test", 7))
    card = render_card(output, [upstream], stage="publish", name="Pets", version="v1.2")
    assert card.startswith("# Pets\n")
    assert "| Version | `v1.2` |" in card
    assert "| 7 | (not in class map) | 1 | 0 | 0 | 1 | 1 | 9.1% |" in card
    assert "| Splits | test 1, train 4, val 1 |" in card


def test_an_empty_dataset_has_a_card(tmp_path: Path) -> None:
    card = render_card(DatasetBuilder(), [], stage="publish")
    assert card.startswith("# publish\n")
    assert "| Images | 0 |" in card
    assert "No source stage upstream." in card
    assert "No sample was removed." in card


def test_write_card_is_the_one_line_a_publish_step_adds(upstream: Dataset, tmp_path: Path) -> None:
    ctx = serial_context(tmp_path, "publish", tmp_path / "out")
    ctx.output_dir.mkdir()
    output = published(upstream)
    path = write_card(ctx, [upstream], output, {"formats": ["coco"]})
    assert path == tmp_path / "out" / CARD_FILE
    expected = render_card(output, [upstream], stage="publish", params={"formats": ["coco"]})
    assert path.read_text(encoding="utf-8") == expected


def test_bar_chart() -> None:
    assert bar_chart([("a", 8), ("bb", 4), ("c", 1)], width=8) == [
        "a   ████████  8   61.5%",
        "bb  ████      4   30.8%",
        "c   █         1    7.7%",
    ]
    assert bar_chart([("x", 0)], width=4) == ["x        0    0.0%"]
    assert bar_chart([]) == []
