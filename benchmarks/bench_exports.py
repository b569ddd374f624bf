"""Writing the exports at scale, against what a user would write with the plain libraries.

Prints one JSON object. ``--images`` synthetic samples (``--boxes`` boxes each, classes and
boxes from one seed, splits 80/10/10) point at real photos of ``../shared/corpora/photos``
(reused in turn, so the image bytes are real JPEGs). Each measurement runs in a process of
its own, so its peak memory is its own:

- ``coco``, ``yolo``, ``voc``, ``cvat``, ``labelstudio``, ``hf``:
  :func:`pixelpipe.formats.export.export` into a fresh folder (what ``publish`` runs per
  format); seconds, peak memory, files written and the bytes they add on disk beyond the
  stored images (every format but ``hf`` hard-links them, adding its labels only);
- ``plain_coco``: one dict per split built in memory and ``json.dump``-ed, images copied
  with ``shutil.copy`` (the script a user writes);
- ``plain_hf``: ``datasets.Dataset.from_generator`` with the same features, then
  ``to_parquet`` per split (what ``datasets`` offers to write Parquet; its cache files
  count on disk too).

    .venv/bin/python benchmarks/bench_exports.py                  # 20,000 images x 8 boxes
    .venv/bin/python benchmarks/bench_exports.py --images 2000 --only coco hf plain_hf
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _memory import PeakMemory

from pixelpipe.dataset import Annotation, Category, Sample
from pixelpipe.formats import hf
from pixelpipe.formats.export import ExportOptions, export

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "photos"
FORMATS = ("coco", "yolo", "voc", "cvat", "labelstudio", "hf")
PLAIN = ("plain_coco", "plain_hf")
CLASSES = [Category(i + 1, f"class_{i}") for i in range(20)]


def photos(limit: int = 200) -> list[Path]:
    """Up to ``limit`` JPEGs of the corpus, in name order."""
    found = sorted(p for p in PHOTOS.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not found:
        raise SystemExit(f"no photos under {PHOTOS} (the corpora sit beside the checkout)")
    return found[:limit]


class Samples:
    """``count`` samples in id order, each made when asked for (``image``: a photo's path).

    Boxes, classes and splits are drawn at once from one seed; a sample is built on each
    access, as publish's manifest-backed sequence decodes rows, so the writers' own memory
    shows.
    """

    def __init__(self, count: int, boxes: int, pool: list[Path], seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.count, self.pool = count, pool
        self.xy = rng.uniform(0, 500, (count, boxes, 2))
        self.wh = rng.uniform(4, 140, (count, boxes, 2))
        self.labels = rng.integers(1, len(CLASSES) + 1, (count, boxes))
        self.draw = rng.uniform(size=count)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(self.count))

    def __getitem__(self, index: int) -> Sample:
        draw = self.draw[index]
        return Sample(
            id=f"{index:08d}.jpg",
            image=str(self.pool[index % len(self.pool)]),
            sha256="0" * 64,
            width=640,
            height=640,
            source="synthetic",
            split="train" if draw < 0.8 else "val" if draw < 0.9 else "test",
            annotations=[
                Annotation(int(c), (float(x), float(y), float(w), float(h)))
                for (x, y), (w, h), c in zip(
                    self.xy[index], self.wh[index], self.labels[index], strict=True
                )
            ],
        )


def disk(folder: Path, stored: set[int]) -> tuple[int, int]:
    """Files under ``folder``, and the bytes they add to what is ``stored`` (inodes).

    A hard link to a stored image adds nothing; each other inode counts once.
    """
    seen = set(stored)
    files = size = 0
    for path in folder.rglob("*"):
        if path.is_file():
            files += 1
            stat = path.stat()
            if stat.st_ino not in seen:
                seen.add(stat.st_ino)
                size += stat.st_size
    return files, size


def plain_coco(data: Samples, out: Path) -> None:
    documents: dict[str, dict[str, Any]] = {}
    for sample in data:
        split = sample.split or "unassigned"
        doc = documents.setdefault(
            split,
            {"images": [], "annotations": [], "categories": [c.to_json() for c in CLASSES]},
        )
        image_id = len(doc["images"]) + 1
        doc["images"].append({"id": image_id, "file_name": sample.id, "width": 640, "height": 640})
        for ann in sample.annotations:
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": ann.category_id,
                    "bbox": list(ann.bbox),
                    "area": ann.bbox[2] * ann.bbox[3],
                    "iscrowd": 0,
                }
            )
        target = out / "images" / split / sample.id
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample.image, target)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split, doc in documents.items():
        with (out / "annotations" / f"instances_{split}.json").open("w") as stream:
            json.dump(doc, stream)


def plain_hf(data: Samples, out: Path) -> None:
    import datasets

    features = datasets.Features.from_dict(hf.features([c.name for c in CLASSES]))
    os.environ["HF_DATASETS_CACHE"] = str(out / "cache")
    for split in ("train", "val", "test"):

        def rows(split: str = split) -> Iterator[dict[str, Any]]:
            for sample in data:
                if sample.split != split:
                    continue
                yield {
                    "image": {"bytes": Path(sample.image).read_bytes(), "path": sample.id},
                    "image_id": sample.id,
                    "width": sample.width,
                    "height": sample.height,
                    "objects": [
                        {
                            "id": i,
                            "bbox": list(a.bbox),
                            "category": a.category_id - 1,
                            "area": a.bbox[2] * a.bbox[3],
                            "iscrowd": False,
                        }
                        for i, a in enumerate(sample.annotations)
                    ],
                    "labels": [],
                }

        dataset = datasets.Dataset.from_generator(
            rows, features=features, cache_dir=str(out / "cache")
        )
        dataset.to_parquet(str(out / "data" / f"{split}.parquet"))


def one(what: str, images: int, boxes: int, out: Path) -> dict[str, Any]:
    """Run one measurement in this process."""
    pool = out.parent / "pool"  # on the export's file system, so exports can hard-link
    pool.mkdir(parents=True)
    copies = [Path(shutil.copy(photo, pool / f"{i:04d}.jpg")) for i, photo in enumerate(photos())]
    data = Samples(images, boxes, copies)
    with PeakMemory() as peak:
        start = time.perf_counter()
        if what == "plain_coco":
            plain_coco(data, out)
        elif what == "plain_hf":
            plain_hf(data, out)
        else:
            export(what, data, CLASSES, out, lambda s: Path(s.image), ExportOptions())
        seconds = time.perf_counter() - start
    files, size = disk(out, {path.stat().st_ino for path in copies})
    return {
        "seconds": round(seconds, 2),
        "peak_mb": round(peak.peak / 2**20),
        "files": files,
        "disk_mb": round(size / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--boxes", type=int, default=8)
    parser.add_argument("--only", nargs="*", choices=[*FORMATS, *PLAIN])
    parser.add_argument("--one", choices=[*FORMATS, *PLAIN], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.images, args.boxes, args.out)))
        return
    pool = photos()
    source_mb = sum(pool[i % len(pool)].stat().st_size for i in range(args.images)) / 2**20
    result: dict[str, Any] = {
        "images": args.images,
        "boxes_per_image": args.boxes,
        "image_mb": round(source_mb, 1),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": {},
    }
    for what in args.only or [*FORMATS, *PLAIN]:
        with tempfile.TemporaryDirectory(prefix="bench-exports-") as tmp:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    what,
                    "--images",
                    str(args.images),
                    "--boxes",
                    str(args.boxes),
                    "--out",
                    str(Path(tmp) / what),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result["runs"][what] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
