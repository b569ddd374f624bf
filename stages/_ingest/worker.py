"""The ingest work item: read one source image, probe it, turn it upright; write nothing.

Runs on the executor's workers. A worker reads the file's bytes once (hashing them), then
probes them in memory (header, EXIF orientation, pixel limit, an optional full decode) and
re-encodes an EXIF-rotated photo upright. It never writes a file: what it returns goes to
the parent, which puts the image into the output (``stages/_ingest/parent.py``):

- a local file, read by the worker from the shared disk, comes back as its sha256 and what
  probing told; the parent copies the file into the image store itself;
- a local file the worker cannot see (a Dask cluster elsewhere) is read by the parent as
  the chunk is sent (:class:`Shipped`), so only the chunks in flight are in memory;
- a remote file (read through fsspec, with retries) and a photo turned upright come back
  with their bytes, which the parent stores.

Because the bytes are read before Pillow sees them, a failure to read (the file is gone,
an I/O error, a network failure) is told apart from what the content decides (not an
image, truncated, too large): only the latter is kept in the per-item cache.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from pixelpipe import PixelpipeError
from pixelpipe.fileaccess import FileAccess
from pixelpipe.formats.pixels import Probe, pillow_warnings, probe, upright

MISSING_LOCAL = "not found when read: a link to nothing, or deleted since the listing"
MISSING_REMOTE = "gone since the source was listed"
VOLATILE = "!"
"""Prefix of a content stamp that names no content (the file could not be read when the
key was made): results of such items are never cached."""


@dataclass(frozen=True)
class Settings:
    """What every work item needs (picklable): the params that decide a result.

    Attributes:
        max_pixels: More pixels than this is ``too_large``, refused before decoding.
        decode: Also decode each image (``truncated``).
        jpeg_quality: Quality of the JPEG or WebP written for an EXIF-rotated photo.
    """

    max_pixels: int
    decode: bool
    jpeg_quality: int


@dataclass(frozen=True)
class Failed:
    """An image that cannot be used, with the removal's reason and detail.

    Attributes:
        reason: ``unreadable``, ``truncated``, ``too_large``, ``missing``...
        detail: A sentence for people.
        transient: The failure was reading the file, not its content (gone since the
            listing, an I/O or network error): it may not happen next time, so it is
            not cached.
    """

    reason: str
    detail: str
    transient: bool = False

    @property
    def cacheable(self) -> bool:
        """Whether the per-item cache may keep this result."""
        return not self.transient


@dataclass
class Probed:
    """A usable image: what it will be stored as, and what probing it told.

    Attributes:
        sha256: The sha256 of the bytes to store (the upright copy of an EXIF photo).
        ext: The extension to store them under.
        probe: Stored size, EXIF orientation, format.
        warnings: What Pillow warned about (probing and turning it), each once.
        broken: ``(reason, detail)`` when its header read but turning it upright failed.
        data: The bytes to store, when the parent cannot read them itself (a remote file,
            an upright copy); the parent drops them as it takes the result, so the cache
            never keeps pixels.
        steady: False when the file changed between the listing and the read: the result
            is used but not cached under the listing's key.
    """

    sha256: str
    ext: str
    probe: Probe
    warnings: tuple[str, ...]
    broken: tuple[str, str] | None = None
    data: bytes | None = field(default=None, repr=False)
    steady: bool = True

    @property
    def cacheable(self) -> bool:
        """Whether the per-item cache may keep this result."""
        return self.steady


Result = Probed | Failed
Read = tuple[bytes, bool] | Failed
"""A file's bytes and whether it is still what its stamp says, or why it could not be read."""


def local_stamp(info: os.stat_result) -> str:
    """The content stamp of a local file: size, modification time and inode (no read)."""
    return f"size={info.st_size};mtime_ns={info.st_mtime_ns};inode={info.st_ino}"


def _oserror(exc: OSError) -> str:
    """An OSError for people, without the file's absolute path."""
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def read_local(path: Path, stamp: str) -> Read:
    """A local file's bytes, and whether its stamp after reading is still ``stamp``."""
    try:
        with path.open("rb") as stream:
            data = stream.read()
            now = local_stamp(os.fstat(stream.fileno()))
    except FileNotFoundError:
        return Failed("missing", MISSING_LOCAL, transient=True)
    except OSError as exc:
        return Failed("unreadable", _oserror(exc), transient=True)
    return data, now == stamp


@dataclass(frozen=True)
class Received:
    """A local file's bytes as the parent read them for a worker without the source's disk."""

    read: Read

    def content(self) -> Read:
        """The bytes (or why they could not be read)."""
        return self.read


@dataclass(frozen=True)
class Shipped:
    """A local file to send to a worker that cannot read it: pickling it reads it.

    The executor pickles a chunk as it sends it, so the bytes are read in the parent
    then, and only for the chunks in flight; the worker gets a :class:`Received`. In
    the parent's own process (no pickling) the file is read when asked.
    """

    path: str
    stamp: str

    def content(self) -> Read:
        """The bytes (or why they could not be read)."""
        return read_local(Path(self.path), self.stamp)

    def __reduce__(self) -> tuple[type[Received], tuple[Read]]:
        return Received, (self.content(),)


@dataclass(frozen=True)
class Job:
    """One image for a worker.

    Attributes:
        path: Its path in the source tree (an id of :func:`pixelpipe.sources.name_id`).
        stamp: What identifies its content without reading it (see ``keys``).
        shipped: Its bytes, for workers that do not share the source's disk.
    """

    path: str
    stamp: str
    shipped: Shipped | Received | None = None


def _read(access: FileAccess, job: Job) -> Read:
    if job.shipped is not None:
        return job.shipped.content()
    local = access.local_path(job.path)
    if local is not None:
        return read_local(local, job.stamp)
    try:
        return access.read_bytes(job.path), True
    except FileNotFoundError:
        return Failed("missing", MISSING_REMOTE, transient=True)
    except OSError as exc:
        return Failed("unreadable", _oserror(exc), transient=True)


def probe_one(access: FileAccess, settings: Settings, job: Job) -> Result:
    """Read, hash, probe and (for an EXIF photo) turn one image upright.

    Raises:
        SourceUnavailable: When a remote source fails for good (not this image's fault).
    """
    read = _read(access, job)
    if isinstance(read, Failed):
        return read
    data, steady = read
    steady = steady and not job.stamp.startswith(VOLATILE)
    probed = probe(io.BytesIO(data), settings.max_pixels, settings.decode)
    if isinstance(probed, tuple):
        return Failed(*probed, transient=not steady)
    ext = Path(job.path).suffix
    said = list(probed.warnings)
    broken: tuple[str, str] | None = None
    keep: bytes | None = data if access.local_root is None else None
    if probed.orientation != 1:
        try:
            with pillow_warnings() as more:
                keep, ext = upright(io.BytesIO(data), settings.jpeg_quality)
            said += [m for m in more if m not in said]
        except PixelpipeError:
            raise
        except Exception as exc:  # a photo whose header read but whose pixels do not
            broken = ("unreadable", f"{type(exc).__name__}: {exc}")
            keep = None
    sha = hashlib.sha256(keep if keep is not None else data).hexdigest()
    return Probed(sha, ext, probed, tuple(said), broken, keep, steady)


def probe_chunk(access: FileAccess, settings: Settings, jobs: list[Job]) -> list[Result]:
    """:func:`probe_one` for each job of a chunk (the executor's chunk function)."""
    return [probe_one(access, settings, job) for job in jobs]
