"""The content key of each source image, found without reading the image where possible.

The per-item cache reuses an image's result when its key is unchanged; the key is the
file's path in the source plus a *stamp* of its content:

- a local file: ``os.stat``'s size, modification time (ns) and inode, as DVC's state
  database does; a file rewritten in place gets a new modification time, one replaced
  gets a new inode;
- a remote file: what the listing says of it (size with ETag, checksum, generation or
  modification time: :func:`pixelpipe.sources.stamp`); when the listing says nothing
  stable, ``fs.info`` is asked, and when that says nothing stable either, the file is
  read and hashed (by the workers). The source's URL is part of a remote stamp.

A file that cannot be stamped (gone, unreadable) gets a stamp starting with
:data:`~stages._ingest.worker.VOLATILE`; its result is never cached.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from pixelpipe import Executor, chunk_size
from pixelpipe.fileaccess import FileAccess, retrying
from pixelpipe.sources import Tree, stamp
from stages._ingest.worker import VOLATILE, Job, Shipped, local_stamp


def stamp_local(path: Path) -> str:
    """A local file's stamp, from ``os.stat`` (symlinks followed)."""
    try:
        return local_stamp(os.stat(path))
    except OSError as exc:
        return f"{VOLATILE}{type(exc).__name__}:{exc.errno}"


def stamp_remote(access: FileAccess, rel: str) -> str:
    """A remote file's stamp from ``fs.info``, else the sha256 of its bytes.

    Raises:
        SourceUnavailable: When the source fails for good.
    """
    path = access.fs_path(rel)
    url = f"{access.display or access.root}/{rel}"
    try:
        info = retrying(f"reading {url}", lambda: access.fs.info(path))
        stable = stamp(info)
        if stable:
            return stable
        digest = hashlib.sha256()
        with access.open(rel) as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        return f"{VOLATILE}{type(exc).__name__}:{exc.errno}"
    return f"sha256={digest.hexdigest()}"


def stamp_chunk(access: FileAccess, rels: list[str]) -> list[str]:
    """:func:`stamp_remote` for each file of a chunk (runs on the workers)."""
    return [stamp_remote(access, rel) for rel in rels]


def make_jobs(
    tree: Tree,
    paths: list[str],
    executor: Executor,
    guard: Callable[[Iterator[str]], Iterator[str]] = lambda found: found,
) -> list[Job]:
    """The work item of each image (by its path in ``tree``), with its content stamp.

    Args:
        tree: The source.
        paths: The images' paths in it.
        executor: Runs the ``fs.info`` (or hashing) of remote files the listing says
            nothing stable of; tells whether workers share the source's disk.
        guard: Wraps those results (turns a source that failed for good into one line).
    """
    access = tree.access
    if tree.local:
        jobs = []
        for rel in paths:
            local = access.local_path(rel)
            assert local is not None
            key = stamp_local(local)
            shipped = None if executor.shared_disk else Shipped(str(local), key)
            jobs.append(Job(rel, key, shipped))
        return jobs
    unknown = [rel for rel in paths if rel not in tree.stamps]
    found: dict[str, str] = {}
    if unknown:
        fn = functools.partial(stamp_chunk, access)
        size = chunk_size(len(unknown), executor.workers, 64)
        found = dict(zip(unknown, guard(executor.map_chunks(fn, unknown, size)), strict=True))
    # a modification time names a version only within one bucket: the source is in the key
    where = f"@{tree.display}"
    return [Job(rel, (tree.stamps.get(rel) or found[rel]) + where) for rel in paths]
