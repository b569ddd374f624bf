"""What a step gets besides its inputs and params: paths, seeds, workers, logs, progress."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pixelpipe.executor import Executor
from pixelpipe.progress import Advance, progress

IMAGES_DIR = "images"


@dataclass(frozen=True)
class ImageStore:
    """Content-addressed image storage of one stage output (picklable, for workers).

    Images go to ``<output>/images/<sha[:2]>/<sha><ext>``; the path returned is where the
    image will be once the output is renamed into place, relative to the project root.

    Attributes:
        write_dir: The output directory being written (temporary).
        final_dir: The output directory relative to the project root (``data/ingest``).
    """

    write_dir: Path
    final_dir: str

    def _place(self, sha: str, ext: str) -> tuple[Path, str]:
        rel = f"{IMAGES_DIR}/{sha[:2]}/{sha}{ext.lower()}"
        return self.write_dir / rel, f"{self.final_dir}/{rel}"

    def put_stream(self, stream: BinaryIO, ext: str) -> tuple[str, str]:
        """Store bytes read from ``stream``; returns ``(manifest path, sha256)``.

        The bytes are hashed while copied, so a file is read once. Identical content is
        stored once.
        """
        self.write_dir.joinpath(IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        tmp = self.write_dir / IMAGES_DIR / f".incoming-{os.getpid()}-{id(stream)}"
        digest = hashlib.sha256()
        with tmp.open("wb") as out:
            while block := stream.read(1 << 20):
                digest.update(block)
                out.write(block)
        sha = digest.hexdigest()
        target, rel = self._place(sha, ext)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
        return rel, sha

    def put_file(self, path: Path, ext: str | None = None) -> tuple[str, str]:
        """Store a copy of a local file; returns ``(manifest path, sha256)``."""
        with path.open("rb") as stream:
            return self.put_stream(stream, ext if ext is not None else path.suffix)

    def put_bytes(self, data: bytes, ext: str) -> tuple[str, str]:
        """Store encoded image bytes; returns ``(manifest path, sha256)``."""
        sha = hashlib.sha256(data).hexdigest()
        target, rel = self._place(sha, ext)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return rel, sha


def derive_seed(*key: object) -> int:
    """A 64-bit seed from a key such as ``(stage seed, sample id, copy)``; stable everywhere."""
    text = "\x1f".join(str(k) for k in key)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


@dataclass
class StageContext:
    """Everything a step may use besides its inputs and params.

    Attributes:
        stage: The stage's name in the pipeline.
        kind: The stage's kind.
        root: The project root; relative paths in params are relative to it.
        output_dir: The directory the runner will rename into place; write files here.
        final_dir: Where the output will be, relative to the project root.
        configs: Config files the pipeline gives the stage, by name (absolute paths).
        seed: The stage seed (the ``seed`` param when the stage has one, else 0).
        executor: Maps work over chunks on workers.
        log: The stage's logger.
    """

    stage: str
    kind: str
    root: Path
    output_dir: Path
    final_dir: str
    configs: Mapping[str, Path]
    seed: int
    executor: Executor
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("pixelpipe"))

    @property
    def images(self) -> ImageStore:
        """The content-addressed image store of this output."""
        return ImageStore(self.output_dir, self.final_dir)

    def rng(self, *key: object) -> np.random.Generator:
        """A generator seeded from (stage seed, ``*key``), e.g. ``ctx.rng(sample.id, copy)``."""
        return np.random.default_rng(derive_seed(self.seed, *key))

    def progress(self, total: int, desc: str) -> AbstractContextManager[Advance]:
        """Progress of ``total`` items: a bar on a terminal, log lines otherwise."""
        return progress(total, f"{self.stage}: {desc}", self.log)

    def resolve(self, path: str) -> Path:
        """A path from params, relative to the project root unless absolute."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.root / candidate
