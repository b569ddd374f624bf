"""What a step gets besides its inputs and params: paths, seeds, workers, logs, progress."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixelpipe.dataset.images import ImageStore
from pixelpipe.engine.executor import Executor
from pixelpipe.engine.progress import Advance, progress


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
