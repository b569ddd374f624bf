"""Content-addressed image storage: each image's bytes stored once, by sha256."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
