"""Reading an export back: the class names it declares and its labels per class name."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from pixelpipe.formats import detect
from pixelpipe.sources import open_tree


def read_back(folder: Path, fmt: str) -> tuple[set[str], Counter[str]]:
    """The class names an export declares and its labels per class name.

    The Hugging Face export is read from its shards' own metadata; every other format with
    pixelpipe's reader of it.
    """
    if fmt == "hf":
        shards = sorted((folder / "data").glob("*.parquet"))
        meta = json.loads(pq.read_schema(shards[0]).metadata[b"huggingface"])
        names = meta["info"]["features"]["objects"]["feature"]["category"]["names"]
        counts: Counter[str] = Counter()
        for shard in shards:
            for row in pq.read_table(shard, columns=["objects"]).column("objects").to_pylist():
                counts.update(names[o["category"]] for o in row)
        return set(names), counts
    labels = detect.read(open_tree(str(folder)), fmt)
    by_id = labels.category_names()
    counts = Counter(by_id[a.category_id] for item in labels.items for a in item.annotations)
    return set(by_id.values()), counts
