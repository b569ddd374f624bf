"""Every publish export loads in the real consumer, with the manifest's counts.

Three datasets go through ingest, split and publish (coco, yolo, voc, hf, cvat,
labelstudio) once each: the demo, and coco256 and BCCD from the shared corpora. Each export
is then loaded by what reads it in practice: pycocotools, supervision, Hugging Face
``datasets`` and Datumaro (in its own venv, see ``consumers.py``). Every consumer must find
the manifest's images per split and boxes per split and class, less what a format leaves
out by design (YOLO's crowd boxes). Label Studio is read back with pixelpipe's reader; the
conventions of Ultralytics, FiftyOne and Detectron2 (too heavy to install) are checked as
tables. Sample ids with folders (the demo's ``unlabelled/retina.jpg``) are written flat in
YOLO and VOC (``unlabelled__retina.jpg``): supervision lists only the files right in a
folder, and Datumaro's YOLO import takes a subfolder for a subset.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import consumers
import pytest
from consumers import Expected, by_split_class, datumaro_counts_many, expected_counts
from steps import ingest, serial_context

from pixelpipe.dataset import Dataset, write_dataset
from pixelpipe.engine.registry import resolve

Rule = Callable[[Path, Expected], list[str]]
DATASETS = ("demo", "coco256", "bccd")
FORMATS = ["coco", "yolo", "voc", "hf", "cvat", "labelstudio"]
INGEST: dict[str, dict[str, Any]] = {
    "demo": {},  # data/raw/demo, auto-detected COCO
    "coco256": {
        "source": "detection/coco256",
        "format": "coco",
        "annotations": ["coco_json/instances_train2017.json"],
        "images": "images/train2017",
    },
    "bccd": {"source": "detection/bccd_voc/BCCD", "format": "voc"},
}
SPLIT: dict[str, dict[str, Any]] = {
    "demo": {},  # hash split with near-duplicate grouping, the defaults
    "coco256": {"method": "stratified", "near_distance": None},
    "bccd": {"existing": "keep", "near_distance": None},  # its VOC ImageSets
}


@dataclass
class Published:
    """One dataset published in every format.

    Attributes:
        name: ``demo``, ``coco256`` or ``bccd``.
        out: The publish stage's folder (``data/publish``), one folder per format.
        expected: The counts of its manifest.
        metrics: What the publish step reported.
    """

    name: str
    out: Path
    expected: Expected
    metrics: dict[str, Any]


def _step(root: Path, kind_name: str, source: Path, **params: Any) -> tuple[Dataset, Any]:
    """Run one stage kind in-process on ``source`` and write its dataset, as the runner."""
    kind = resolve(kind_name)
    validated = kind.params(**params)
    out = root / "data" / kind_name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ctx = serial_context(root, kind_name, out)
    result = kind.step([Dataset(source)], validated, ctx)
    write_dataset(
        out,
        result.output,
        stage=kind_name,
        kind=kind_name,
        params=validated.model_dump(mode="json"),
        inputs={},
    )
    return Dataset(out), result.metrics


@pytest.fixture(scope="module", params=DATASETS)
def published(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Published:
    """Ingest, split and publish one dataset in every format (once per module)."""
    name: str = request.param
    root = tmp_path_factory.mktemp(name)
    params = dict(INGEST[name])
    if name == "demo":
        shutil.copytree(request.getfixturevalue("demo_raw"), root / "data" / "raw" / "demo")
    else:
        params["source"] = str(request.getfixturevalue("corpora") / params["source"])
    ingest(root, **params)
    _step(root, "split", root / "data" / "ingest", **SPLIT[name])
    dataset, metrics = _step(root, "publish", root / "data" / "split", formats=FORMATS)
    return Published(name, root / "data" / "publish", expected_counts(dataset), metrics)


@pytest.fixture(scope="module")
def datumaro(published: Published) -> dict[str, dict[str, Any]]:
    """What Datumaro reads from each export of the dataset (one process per dataset)."""
    out = published.out
    return datumaro_counts_many(
        {
            "coco_instances": out / "coco",
            "yolo": out / "yolo",
            "voc_detection": out / "voc",
            "cvat": out / "cvat",
        }
    )


def _yolo_expected(published: Published) -> Counter[tuple[str, str]]:
    """The boxes a YOLO export holds: crowd boxes are left out (``yolo_include_crowd``)."""
    assert published.metrics["yolo_crowd_skipped"] == sum(published.expected.crowd.values())
    assert published.metrics["yolo_boxes_outside"] == 0  # none of these sets has one
    return published.expected.yolo_boxes()


def test_every_format_holds_every_image(published: Published) -> None:
    total = sum(published.expected.images.values())
    assert {f: published.metrics[f"{f}_images"] for f in FORMATS} == dict.fromkeys(FORMATS, total)


# --- pycocotools -------------------------------------------------------------------------


def test_pycocotools_reads_each_split_with_the_manifest_counts(published: Published) -> None:
    from pycocotools.coco import COCO

    coco, exp = published.out / "coco", published.expected
    written = sorted(p.name for p in (coco / "annotations").iterdir())
    assert written == sorted(f"instances_{s}.json" for s in exp.splits)
    for split in exp.splits:
        with contextlib.redirect_stdout(io.StringIO()):
            api = COCO(str(coco / "annotations" / f"instances_{split}.json"))
        cats = {c["id"]: c["name"] for c in api.loadCats(api.getCatIds())}
        assert [cats[i] for i in sorted(cats)] == exp.classes
        assert min(cats) >= 1, "category 0 is the background for Datumaro and Detectron2"
        images = api.loadImgs(api.getImgIds())
        assert len(images) == exp.images[split], split
        missing = [
            i["file_name"]
            for i in images
            if not (coco / "images" / split / i["file_name"]).is_file()
        ]
        assert missing == [], split
        anns = api.loadAnns(api.getAnnIds())
        assert Counter(cats[a["category_id"]] for a in anns) == exp.in_split(exp.boxes, split)
        crowd = Counter(cats[a["category_id"]] for a in anns if a["iscrowd"])
        assert crowd == exp.in_split(exp.crowd, split), split


# --- supervision -------------------------------------------------------------------------


def _sv_counts(dataset: Any) -> tuple[int, Counter[str]]:
    """Images and boxes per class of a ``supervision.DetectionDataset`` (no pixels read)."""
    boxes = Counter(
        dataset.classes[int(c)] for d in dataset.annotations.values() for c in d.class_id
    )
    return len(dataset.image_paths), boxes


def test_supervision_from_coco_per_split(published: Published) -> None:
    import supervision as sv

    coco, exp = published.out / "coco", published.expected
    for split in exp.splits:
        dataset = sv.DetectionDataset.from_coco(
            images_directory_path=str(coco / "images" / split),
            annotations_path=str(coco / "annotations" / f"instances_{split}.json"),
        )
        assert dataset.classes == exp.classes
        assert _sv_counts(dataset) == (exp.images[split], exp.in_split(exp.boxes, split)), split


def test_supervision_from_yolo_per_split(
    published: Published,
) -> None:
    import supervision as sv

    yolo, exp = published.out / "yolo", published.expected
    boxes = _yolo_expected(published)
    for split in exp.splits:
        dataset = sv.DetectionDataset.from_yolo(
            images_directory_path=str(yolo / "images" / split),
            annotations_directory_path=str(yolo / "labels" / split),
            data_yaml_path=str(yolo / "data.yaml"),
        )
        assert dataset.classes == exp.classes
        assert _sv_counts(dataset) == (exp.images[split], exp.in_split(boxes, split)), split


def test_supervision_from_pascal_voc(published: Published) -> None:
    import supervision as sv

    voc, exp = published.out / "voc", published.expected
    dataset = sv.DetectionDataset.from_pascal_voc(
        images_directory_path=str(voc / "JPEGImages"),
        annotations_directory_path=str(voc / "Annotations"),
    )
    assert set(dataset.classes) <= set(exp.classes)
    assert _sv_counts(dataset) == (sum(exp.images.values()), exp.per_class(exp.boxes))


# --- Hugging Face datasets ---------------------------------------------------------------


@pytest.fixture
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh Hugging Face cache in ``tmp_path``, offline; yields the cache folder."""
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets: Any = importlib.import_module("datasets")  # after the variables: it reads them
    # read once at import: set them too, for a session that imported datasets earlier
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")
    yield cache / "datasets"


def test_hf_load_dataset_gives_the_features_and_counts(
    published: Published, hf_offline: Path
) -> None:
    datasets: Any = importlib.import_module("datasets")
    exp = published.expected
    loaded = datasets.load_dataset(str(published.out / "hf"), cache_dir=str(hf_offline))
    assert isinstance(loaded, datasets.DatasetDict)
    assert sorted(loaded) == exp.splits
    for split, table in loaded.items():
        features = table.features
        assert isinstance(features["image"], datasets.Image)
        objects = features["objects"]
        inner = objects.feature if isinstance(objects, datasets.List) else objects
        assert sorted(inner) == ["area", "bbox", "category", "id", "iscrowd"]
        category, labels = inner["category"], features["labels"].feature
        assert isinstance(category, datasets.ClassLabel) and category.names == exp.classes
        assert isinstance(labels, datasets.ClassLabel) and labels.names == exp.classes
        assert table.num_rows == exp.images[split]
        rows = table.select_columns(["image_id", "width", "height", "objects", "labels"])
        boxes: Counter[str] = Counter()
        tags: Counter[str] = Counter()
        crowd: Counter[str] = Counter()
        for row in rows:
            assert (row["width"], row["height"]) == exp.sizes[row["image_id"]]
            assert exp.split_of[row["image_id"]] == split
            boxes.update(exp.classes[o["category"]] for o in row["objects"])
            crowd.update(exp.classes[o["category"]] for o in row["objects"] if o["iscrowd"])
            tags.update(exp.classes[c] for c in row["labels"])
        assert boxes == exp.in_split(exp.boxes, split), split
        assert crowd == exp.in_split(exp.crowd, split), split
        assert tags == exp.in_split(exp.image_labels, split), split
        first = table[0]  # the Image feature decodes the embedded bytes
        assert first["image"].size == exp.sizes[first["image_id"]]


# --- Datumaro ----------------------------------------------------------------------------


def _datumaro(datumaro: dict[str, dict[str, Any]], fmt: str) -> dict[str, Any]:
    result = datumaro[fmt]
    assert "error" not in result, result.get("trace", result.get("error"))
    subsets: dict[str, Any] = result["subsets"]
    return subsets


def _items(subsets: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {name: (s["items"], s["media"]) for name, s in subsets.items()}


def test_datumaro_coco_instances(published: Published, datumaro: dict[str, Any]) -> None:
    exp = published.expected
    subsets = _datumaro(datumaro, "coco_instances")
    assert _items(subsets) == {s: (n, n) for s, n in exp.images.items()}
    assert by_split_class(subsets, "bbox") == +exp.boxes  # one Bbox per object, crowd too


def test_datumaro_yolo(published: Published, datumaro: dict[str, Any]) -> None:
    exp = published.expected
    subsets = _datumaro(datumaro, "yolo")
    assert _items(subsets) == {s: (n, n) for s, n in exp.images.items()}
    assert by_split_class(subsets, "bbox") == +_yolo_expected(published)


def test_datumaro_voc_detection(published: Published, datumaro: dict[str, Any]) -> None:
    exp = published.expected
    subsets = _datumaro(datumaro, "voc_detection")
    want = {s: (n, n) for s, n in exp.images.items()}
    if "train" in want and "val" in want:  # VOC's trainval list, written beside them
        total = want["train"][0] + want["val"][0]
        want["trainval"] = (total, total)
    assert _items(subsets) == want
    boxes = by_split_class(subsets, "bbox")
    assert Counter({k: n for k, n in boxes.items() if k[0] != "trainval"}) == +exp.boxes


def test_datumaro_cvat(published: Published, datumaro: dict[str, Any]) -> None:
    exp = published.expected
    subsets = _datumaro(datumaro, "cvat")
    assert _items(subsets) == {s: (n, n) for s, n in exp.images.items()}
    shapes = Counter(
        {
            (split, kind, name): n
            for kind in ("bbox", "polygon")
            for (split, name), n in by_split_class(subsets, kind).items()
        }
    )
    assert shapes == exp.shapes()  # a box per object, or a polygon per part
    assert by_split_class(subsets, "label") == +exp.image_labels  # <tag>s


# --- Label Studio ------------------------------------------------------------------------


def test_labelstudio_tasks_read_back_with_every_image_and_class(published: Published) -> None:
    from pixelpipe.formats import labelstudio
    from pixelpipe.formats.base import ReadOptions
    from pixelpipe.sources import open_tree

    folder, exp = published.out / "labelstudio", published.expected
    config = ET.parse(folder / "label_config.xml").getroot()
    declared = {
        control.tag: {label.get("value") for label in control}
        for control in config
        if control.tag in ("RectangleLabels", "PolygonLabels", "Choices")
    }
    labels = labelstudio.read(open_tree(str(folder / "tasks.json")), ReadOptions())
    names = labels.category_names()
    assert len(labels.items) == sum(exp.images.values())
    shapes: Counter[tuple[str, str, str]] = Counter()
    objects: set[tuple[str, str, int | None, str]] = set()
    for item in labels.items:
        assert (folder / item.image).is_file(), item.image  # the URL names a file here
        split = item.split or "unassigned"
        for annotation in item.annotations:
            name = names[annotation.category_id]
            shapes[(split, "polygon" if annotation.polygons else "bbox", name)] += 1
            index = labelstudio.annotation_index(annotation.attributes.get("ls_id"))
            objects.add((split, item.image, index, name))  # parts "3", "3.1": object 3
    for kind, control in (("bbox", "RectangleLabels"), ("polygon", "PolygonLabels")):
        used = {name for _, k, name in shapes if k == kind}
        assert used <= declared.get(control, set()), (control, used - declared.get(control, set()))
    assert shapes == exp.shapes()  # Label Studio's regions: a box, or a polygon per part
    assert Counter((split, name) for split, _, _, name in objects) == +exp.boxes


# --- conventions of consumers not installed here -----------------------------------------

YOLO_CONVENTIONS = [
    # Ultralytics check_det_dataset: 'train' and 'val' are required in all data YAMLs
    pytest.param(consumers.yolo_keys, id="train-and-val-keys"),
    # check_class_names: names keys 0..n-1 and len(names) == nc; here the class map's names
    pytest.param(consumers.yolo_names, id="names-cover-the-classes"),
    # check_det_dataset: train/val/test resolve against `path`, else the yaml's folder
    pytest.param(consumers.yolo_paths, id="split-paths-exist"),
    # img2label_paths: the last /images/ of an image path becomes /labels/
    pytest.param(consumers.yolo_label_dirs, id="labels-beside-images"),
    # verify_image_label: 5 columns, class < nc, coordinates normalized (here strictly 0..1)
    pytest.param(consumers.yolo_lines, id="lines-cls-cx-cy-w-h"),
    # Datumaro's YOLO detector skips a label file whose first line holds '1e-05' or '-0.1'
    pytest.param(consumers.yolo_plain_numbers, id="plain-decimal-numbers"),
    # one label file per image found (an image without one is a background image)
    pytest.param(consumers.yolo_label_files, id="one-label-file-per-image"),
    # what Ultralytics reads per split, duplicate rows dropped (np.unique), = the manifest
    pytest.param(consumers.yolo_counts, id="counts-as-ultralytics-reads"),
    # verify_image_label: images of at least 10x10 pixels, with an image suffix
    pytest.param(consumers.yolo_image_files, id="image-files-accepted"),
]


@pytest.mark.parametrize("rule", YOLO_CONVENTIONS)
def test_yolo_export_keeps_ultralytics_conventions(published: Published, rule: Rule) -> None:
    _yolo_expected(published)  # the crowd boxes left out are the manifest's
    assert rule(published.out / "yolo", published.expected) == []


COCO_CONVENTIONS = [
    # FiftyOne COCODetectionDatasetImporter(data_path="images/<split>",
    # labels_path="annotations/instances_<split>.json"): both exist for each split
    pytest.param(consumers.fiftyone_paths, id="fiftyone-paths"),
    # FiftyOne joins data_path and file_name: every file_name is a file under data_path
    pytest.param(consumers.fiftyone_file_names, id="fiftyone-file-names"),
    # FiftyOne divides boxes by the image's width and height: the true size, per image
    pytest.param(consumers.fiftyone_sizes, id="fiftyone-image-sizes"),
    # Detectron2 load_coco_json: "Annotation ids ... are not unique!" (and image ids)
    pytest.param(consumers.detectron2_ids, id="detectron2-unique-ids"),
    # Detectron2 BoxMode.XYWH_ABS: 4 pixel numbers, w and h >= 0; iscrowd 0/1; no 'ignore'
    pytest.param(consumers.detectron2_boxes, id="detectron2-xywh-abs"),
    # Detectron2 drops an instance whose polygons all have < 6 coordinates; RLE: image size
    pytest.param(consumers.detectron2_segmentation, id="detectron2-segmentation"),
]


@pytest.mark.parametrize("rule", COCO_CONVENTIONS)
def test_coco_export_keeps_fiftyone_and_detectron2_conventions(
    published: Published, rule: Rule
) -> None:
    assert rule(published.out / "coco", published.expected) == []
