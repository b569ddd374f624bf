"""Content-addressed image storage: each image's bytes stored once, by sha256.

A stage output keeps its pixels under ``images/<sha[:2]>/<sha><ext>``. With the project's
object store (``.pixelpipe/objects/``, beside the per-item cache), the bytes are written
once and the output's file is a hard link: a rerun that keeps an image links the same bytes
again, so nothing is copied, and the file keeps its inode and mtime, so DVC does not hash
it again.

In a DVC project the bytes themselves go straight into DVC's cache, under the name DVC
gives them (``files/md5/<md5[:2]>/<md5[2:]>``), and the object store holds a symlink to
them by sha256. When DVC caches the output it finds the file already there and links
the output to it (``cache.type`` hardlink, which ``pixelpipe init`` sets): the output,
DVC's cache and the object store are one set of bytes. Where hard links are impossible
(another file system), the file is copied.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# Re-exported: the store and the stages read pixels with these.
from pixelpipe.pixelio import Pixels as Pixels
from pixelpipe.pixelio import is_url as is_url
from pixelpipe.pixelio import open_pixels as open_pixels

IMAGES_DIR = "images"
OBJECTS_DIR = ".pixelpipe/objects"
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


def objects_dir(root: Path) -> Path:
    """The project's object store (``PIXELPIPE_OBJECTS_DIR`` overrides)."""
    override = os.environ.get("PIXELPIPE_OBJECTS_DIR")
    return Path(override).expanduser() if override else root / OBJECTS_DIR


def read_pixels(pixels: Pixels) -> bytes:
    """The encoded bytes of an image given as :data:`Pixels`."""
    if isinstance(pixels, bytes):
        return pixels
    with open_pixels(pixels) as stream:
        return stream.read()


def dvc_cache_dir(root: Path) -> Path | None:
    """DVC's cache of the project at ``root`` (``cache.dir`` of its config), or ``None``."""
    dvc = root / ".dvc"
    if not dvc.is_dir():
        return None
    from configobj import ConfigObj  # type: ignore[import-untyped]

    folder = dvc / "cache"
    for name in ("config", "config.local"):
        try:
            config = ConfigObj(str(dvc / name), encoding="utf-8", file_error=False)
        except Exception:  # DVC itself reports a broken config
            continue
        configured = config.get("cache", {}).get("dir")
        if configured:
            folder = dvc / Path(configured).expanduser()
    return folder


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copyfile(source, target.with_name(f".{target.name}.{os.getpid()}"))
        os.replace(target.with_name(f".{target.name}.{os.getpid()}"), target)
        source.unlink()


def _target_of(source: str) -> str:
    """The file a symlink points to (os.link on Linux would link the symlink itself)."""
    try:
        return os.path.join(os.path.dirname(source), os.readlink(source))
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # not a symlink
            return source
        raise


def _link_or_copy(source: Path | str, target: Path | str) -> None:
    """Hard-link ``source`` (following a symlink) to ``target``; copy across file systems.

    Runs once per image per output, so it works on strings and makes the folder only when
    the first link into it fails (a million images: every syscall counts).
    """
    real, goal = _target_of(os.fspath(source)), os.fspath(target)
    for attempt in (1, 2):
        try:
            os.link(real, goal)
            return
        except FileExistsError:
            return  # identical content: the same name is the same sha256
        except FileNotFoundError:
            if attempt == 2 or not os.path.exists(real):
                raise
            os.makedirs(os.path.dirname(goal), exist_ok=True)
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            break
    os.makedirs(os.path.dirname(goal), exist_ok=True)
    tmp = f"{goal}.{os.getpid()}.tmp"
    shutil.copyfile(real, tmp)
    os.replace(tmp, goal)


@dataclass(frozen=True)
class ImageStore:
    """Content-addressed image storage of one stage output (picklable, for workers).

    Images go to ``<output>/images/<sha[:2]>/<sha><ext>``; the path returned is where the
    image will be once the output is renamed into place, relative to the project root.

    Attributes:
        write_dir: The output directory being written (temporary).
        final_dir: The output directory relative to the project root (``data/ingest``).
        objects: The project's object store, or ``None`` to write files into the output.
        dvc_cache: DVC's cache, where the object store keeps the bytes (``None``: in the
            object store itself).
    """

    write_dir: Path
    final_dir: str
    objects: Path | None = None
    dvc_cache: Path | None = None

    def _place(self, sha: str, ext: str) -> tuple[Path, str]:
        rel = f"{IMAGES_DIR}/{sha[:2]}/{sha}{ext.lower()}"
        return self.write_dir / rel, f"{self.final_dir}/{rel}"

    def _object(self, sha: str) -> Path | None:
        return None if self.objects is None else self.objects / sha[:2] / sha

    def _incoming(self, name: str) -> Path:
        folder = self.objects if self.objects is not None else self.write_dir / IMAGES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f".incoming-{os.getpid()}-{name}"

    def _settle(self, tmp: Path, sha: str, md5: str, ext: str) -> str:
        """Move a fully written temporary file to its place; returns the manifest path."""
        target, rel = self._place(sha, ext)
        obj = self._object(sha)
        if obj is None:
            _move(tmp, target)
            return rel
        if obj.exists():  # a symlink into DVC's cache counts only when its file is there
            tmp.unlink()
        else:
            os.chmod(tmp, _READ_ONLY)  # never edited in place
            if self.dvc_cache is None:
                _move(tmp, obj)
            else:
                cached = self.dvc_cache / "files" / "md5" / md5[:2] / md5[2:]
                if cached.exists():
                    tmp.unlink()
                else:
                    _move(tmp, cached)
                pointer = obj.with_name(f".{obj.name}.{os.getpid()}")
                pointer.unlink(missing_ok=True)
                obj.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.relpath(cached, obj.parent), pointer)
                os.replace(pointer, obj)
        _link_or_copy(obj, target)
        return rel

    def put_stream(self, stream: BinaryIO, ext: str) -> tuple[str, str]:
        """Store bytes read from ``stream``; returns ``(manifest path, sha256)``.

        The bytes are hashed while copied, so a file is read once. Identical content is
        stored once.
        """
        tmp = self._incoming(str(id(stream)))
        digest, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        with tmp.open("wb") as out:
            while block := stream.read(1 << 20):
                digest.update(block)
                md5.update(block)
                out.write(block)
        sha = digest.hexdigest()
        return self._settle(tmp, sha, md5.hexdigest(), ext), sha

    def put_file(self, path: Path, ext: str | None = None) -> tuple[str, str]:
        """Store a copy of a local file; returns ``(manifest path, sha256)``."""
        with path.open("rb") as stream:
            return self.put_stream(stream, ext if ext is not None else path.suffix)

    def put_bytes(self, data: bytes, ext: str) -> tuple[str, str]:
        """Store encoded image bytes; returns ``(manifest path, sha256)``."""
        sha = hashlib.sha256(data).hexdigest()
        obj = self._object(sha)
        if obj is not None and obj.exists():
            target, rel = self._place(sha, ext)
            _link_or_copy(obj, target)
            return rel, sha
        tmp = self._incoming(sha)
        tmp.write_bytes(data)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return self._settle(tmp, sha, md5, ext), sha

    def link(self, sha: str, ext: str) -> str | None:
        """Put an image already in the object store into this output, without reading it.

        Returns:
            The manifest path, or ``None`` when the object is not there (never stored, or
            collected by ``pixelpipe cache gc``): the caller computes the image again.
        """
        if self.objects is None:
            return None
        rel = f"{IMAGES_DIR}/{sha[:2]}/{sha}{ext.lower()}"
        try:
            _link_or_copy(f"{self.objects}/{sha[:2]}/{sha}", f"{self.write_dir}/{rel}")
        except FileNotFoundError:  # never stored, collected, or gone from DVC's cache
            return None
        return f"{self.final_dir}/{rel}"


def collect_objects(root: Path) -> tuple[int, int]:
    """Delete objects no output links to, and symlinks to files gone from DVC's cache.

    An object in DVC's cache is DVC's to keep or drop (``dvc gc``); the object store holds
    only a symlink to it. An object of its own (no DVC) that nothing links (a link count of
    1) is only a cache entry: a rerun that needs it again stores it again.

    Returns:
        ``(objects deleted, bytes freed)``.
    """
    folder = objects_dir(root)
    deleted = freed = 0
    if not folder.is_dir():
        return 0, 0
    for leftover in folder.glob(".incoming-*"):  # of a process killed while writing
        pid = leftover.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            freed += leftover.stat().st_size
            leftover.unlink(missing_ok=True)
    for path in folder.glob("*/*"):
        if path.is_symlink():
            if not path.exists():
                path.unlink(missing_ok=True)
                deleted += 1
            continue
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if info.st_nlink == 1 and path.is_file():
            path.unlink(missing_ok=True)
            deleted += 1
            freed += info.st_size
    return deleted, freed
