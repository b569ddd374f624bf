"""Agreement and consensus from label files: each bad input gets a note and a correct result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import cohen_kappa_score

from pixelpipe.errors import PixelpipeError
from pixelpipe.review.inputs import read_inputs
from pixelpipe.review.measure import agreement
from pixelpipe.review.merge import CONSENSUS, consensus

CATS = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def _coco(
    path: Path,
    boxes: dict[str, list[tuple[str, list[float]]]],
    categories: list[dict[str, Any]] = CATS,
) -> str:
    """A COCO file: per image name, its (class, box) labels; every image 100 x 80."""
    ids = {c["name"]: c["id"] for c in categories}
    images = [
        {"id": i, "file_name": name, "width": 100, "height": 80}
        for i, name in enumerate(boxes, start=1)
    ]
    annotations = [
        {"id": i * 100 + n, "image_id": i, "category_id": ids[c], "bbox": b}
        for i, name in enumerate(boxes, start=1)
        for n, (c, b) in enumerate(boxes[name])
    ]
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return str(path)


def test_classes_are_matched_by_name_whatever_each_file_numbers_them(tmp_path: Path) -> None:
    swapped = [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]
    a = _coco(tmp_path / "alice.json", {"a.jpg": [("cat", [0, 0, 10, 10])]})
    b = _coco(tmp_path / "bob.json", {"a.jpg": [("cat", [0, 0, 10, 10])]}, swapped)
    gathered, _ = read_inputs([a, b])
    result = agreement(gathered)
    assert result["box_f1"] == 1.0
    assert result["boxes"]["pairs"]["alice|bob"]["label_mismatch"] == 0


def test_bad_inputs_get_a_note_each_and_a_correct_result(tmp_path: Path) -> None:
    alice = _coco(
        tmp_path / "alice.json",
        {
            "a.jpg": [("cat", [0, 0, 10, 10]), ("dog", [50, 50, 0, 0])],  # a zero-area box
            "b.jpg": [("cat", [0, 0, 20, 20])],
            "only_alice.jpg": [("cat", [0, 0, 5, 5])],  # an image bob's file lacks
        },
        [*CATS, {"id": 3, "name": "bird"}],
    )
    bob = _coco(tmp_path / "bob.json", {"a.jpg": [("cat", [1, 0, 10, 10])], "b.jpg": []})
    carol = _coco(tmp_path / "carol.json", {"a.jpg": [], "b.jpg": []})  # drew nothing
    gathered, _ = read_inputs([alice, bob, carol])
    result = agreement(gathered)
    notes = " ".join(result["notes"])
    assert "only some of the annotators" in notes
    assert "zero" in notes and "area" in notes
    assert "carol" in notes  # an annotator with no boxes
    # alice-bob: on a.jpg and b.jpg, 2 of alice's 3 boxes and bob's 1 match once
    pair = result["boxes"]["pairs"]["alice|bob"]
    assert pair["matched"] == 1
    assert pair["images"] == 2
    # carol saw a.jpg and b.jpg and drew nothing: every box of the others counts against her
    assert result["boxes"]["pairs"]["alice|carol"]["f1"] == 0.0


def test_a_tie_goes_to_review_and_is_never_broken(tmp_path: Path) -> None:
    a = _coco(tmp_path / "alice.json", {"a.jpg": [("cat", [0, 0, 10, 10])]})
    b = _coco(tmp_path / "bob.json", {"a.jpg": [("dog", [0, 0, 10, 10])]})
    gathered, _ = read_inputs([a, b])
    merged = consensus(gathered, {"cat": 1, "dog": 2}, quorum=0.5)
    assert merged.labels["a.jpg"] == []
    (entry,) = merged.review
    assert entry["reason"] == "tie"
    assert entry["votes"] == {"alice": "cat", "bob": "dog"}


def test_consensus_keeps_who_drew_each_box(tmp_path: Path) -> None:
    files = [
        _coco(tmp_path / f"{name}.json", {"a.jpg": [("cat", [0, 0, 10 + i, 10])]})
        for i, name in enumerate(("alice", "bob", "carol"))
    ]
    gathered, _ = read_inputs(files)
    merged = consensus(gathered, {"cat": 1, "dog": 2}, quorum=1.0)
    (box,) = merged.labels["a.jpg"]
    assert box.annotator == CONSENSUS
    assert box.score == 1.0
    assert box.attributes["annotators"] == ["alice", "bob", "carol"]
    assert box.bbox == pytest.approx((0.0, 0.0, 11.0, 10.0))  # the mean box
    assert not merged.review


LABEL_STUDIO = [
    {
        "id": n,
        "data": {"image": f"/data/upload/1/0a1b2c3d-img{n}.jpg"},
        "annotations": [
            {
                "id": 10 * n + k,
                "completed_by": {"id": k, "email": who},
                "was_cancelled": False,
                "result": [
                    {
                        "id": f"r{n}{k}",
                        "type": "choices",
                        "from_name": "class",
                        "to_name": "image",
                        "value": {"choices": [label]},
                    }
                ],
            }
            for k, (who, label) in enumerate(pair)
        ],
    }
    for n, pair in enumerate(
        [
            (("ann@x.org", "cat"), ("ben@x.org", "cat")),
            (("ann@x.org", "dog"), ("ben@x.org", "dog")),
            (("ann@x.org", "cat"), ("ben@x.org", "dog")),
            (("ann@x.org", "dog"), ("ben@x.org", "dog")),
            (("ann@x.org", "cat"), ("ben@x.org", "cat")),
        ]
    )
]


def test_image_labels_from_label_studio_and_the_kappa_of_scikit_learn(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(LABEL_STUDIO))
    gathered, _ = read_inputs([str(path)])
    result = agreement(gathered)
    assert result["statistics_over"] == "image_labels"
    assert gathered.annotators == ["ann@x.org", "ben@x.org"]
    ann = ["cat", "dog", "cat", "dog", "cat"]
    ben = ["cat", "dog", "dog", "dog", "cat"]
    assert result["cohen_kappa_mean"] == pytest.approx(cohen_kappa_score(ann, ben))
    assert result["percent_agreement"] == pytest.approx(0.8)


def test_a_csv_of_image_labels_merges_by_majority(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "item,annotator,label\n"
        "a.jpg,ann,cat\na.jpg,ben,cat\na.jpg,cy,dog\n"
        "b.jpg,ann,dog\nb.jpg,ben,cat\n"
    )
    gathered, _ = read_inputs([str(path)])
    merged = consensus(gathered, {"cat": 0, "dog": 1}, quorum=0.5)
    (label,) = merged.labels["a.jpg"]
    assert label.category_id == 0
    assert label.attributes["image_label"] is True
    # b.jpg: one vote each of two annotators: a tie, sent to review
    assert merged.labels["b.jpg"] == []
    assert [e["reason"] for e in merged.review] == ["tie"]


def test_a_dataset_directory_goes_alone(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "samples.parquet").write_bytes(b"")
    a = _coco(tmp_path / "alice.json", {"a.jpg": []})
    with pytest.raises(PixelpipeError, match="is a dataset directory: give it alone"):
        read_inputs([str(tmp_path / "data"), a])


def test_a_gold_csv_names_its_own_annotator_and_blank_labels_are_missing(tmp_path: Path) -> None:
    votes = tmp_path / "votes.csv"
    votes.write_text("item,annotator,label\na.jpg,ann,cat\nb.jpg,ann,\nc.jpg,ann,dog\n")
    gold = tmp_path / "truth.csv"
    gold.write_text("item,annotator,label\na.jpg,expert,cat\nb.jpg,expert,dog\nc.jpg,expert,cat\n")
    gathered, truth = read_inputs([str(votes)], gold=str(gold))
    assert truth is not None and truth.annotators == ["expert"]
    scores = agreement(gathered, gold=truth)["annotators"]["ann"]["gold"]["image_labels"]
    assert scores["errors"] == {"missing": 1, "extra": 0, "mismatching_label": 1}
    assert scores["accuracy"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("files", "gold", "message"),
    [
        # two files called alice.json in two folders would merge into one annotator
        ({"x/alice.json": "coco", "y/alice.json": "coco"}, None, "both name the annotator 'alice'"),
        # a gold set is one annotator
        ({"a.json": "coco"}, "two.csv", "a gold set has one annotator, this file names 2"),
        # an input that lists no image would vanish from every figure
        ({"a.json": "coco", "empty.csv": "empty"}, None, "empty.csv: lists no image"),
    ],
)
def test_inputs_that_would_mislead_are_refused(
    tmp_path: Path, files: dict[str, str], gold: str | None, message: str
) -> None:
    (tmp_path / "two.csv").write_text("item,annotator,label\na.jpg,ann,cat\na.jpg,ben,cat\n")
    paths = []
    for name, kind in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "coco":
            _coco(path, {"a.jpg": [("cat", [0, 0, 10, 10])]})
        else:
            path.write_text("item,annotator,label\n")
        paths.append(str(path))
    with pytest.raises(PixelpipeError, match=message):
        read_inputs(paths, gold=str(tmp_path / gold) if gold else None)
