"""The content-addressed image store and the project's object store behind it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pixelpipe.dataset.images import ImageStore, collect_objects, dvc_cache_dir


def store(tmp_path: Path, output: str = "out") -> ImageStore:
    return ImageStore(tmp_path / output, "data/x", tmp_path / ".pixelpipe" / "objects")


def test_an_image_is_stored_once_and_linked_into_each_output(tmp_path: Path) -> None:
    data = b"\xff\xd8 not really a jpeg"
    sha = hashlib.sha256(data).hexdigest()
    rel, got = store(tmp_path, "one").put_bytes(data, ".JPG")
    assert (rel, got) == (f"data/x/images/{sha[:2]}/{sha}.jpg", sha)
    store(tmp_path, "two").put_file(tmp_path / "one" / "images" / sha[:2] / f"{sha}.jpg")
    obj = tmp_path / ".pixelpipe" / "objects" / sha[:2] / sha
    first = tmp_path / "one" / "images" / sha[:2] / f"{sha}.jpg"
    second = tmp_path / "two" / "images" / sha[:2] / f"{sha}.jpg"
    assert obj.stat().st_ino == first.stat().st_ino == second.stat().st_ino
    assert obj.stat().st_nlink == 3
    assert not os.access(obj, os.W_OK) or os.geteuid() == 0  # read-only: never edited in place
    assert sorted(p.name for p in obj.parent.parent.iterdir()) == [sha[:2]]  # no leftovers


def test_link_puts_a_stored_image_into_an_output_without_its_bytes(tmp_path: Path) -> None:
    _, sha = store(tmp_path, "one").put_bytes(b"abc", ".png")
    assert store(tmp_path, "two").link(sha, ".png") == f"data/x/images/{sha[:2]}/{sha}.png"
    assert (tmp_path / "two" / "images" / sha[:2] / f"{sha}.png").read_bytes() == b"abc"
    assert store(tmp_path, "two").link("0" * 64, ".png") is None  # never stored, or collected


def test_without_an_object_store_files_are_written_into_the_output(tmp_path: Path) -> None:
    plain = ImageStore(tmp_path / "out", "data/x")
    rel, sha = plain.put_bytes(b"abc", ".png")
    assert (tmp_path / "out" / rel.removeprefix("data/x/")).stat().st_nlink == 1
    assert plain.link(sha, ".png") is None


def test_gc_deletes_only_objects_nothing_links(tmp_path: Path) -> None:
    _, kept = store(tmp_path, "one").put_bytes(b"kept", ".png")
    _, orphan = store(tmp_path, "two").put_bytes(b"orphan", ".png")
    (tmp_path / "two" / "images" / orphan[:2] / f"{orphan}.png").unlink()
    (tmp_path / ".pixelpipe" / "objects" / ".incoming-999999999-x").write_bytes(b"half")
    assert collect_objects(tmp_path) == (1, len(b"orphan") + len(b"half"))
    assert (tmp_path / ".pixelpipe" / "objects" / kept[:2] / kept).exists()
    assert not (tmp_path / ".pixelpipe" / "objects" / orphan[:2] / orphan).exists()
    assert not (tmp_path / ".pixelpipe" / "objects" / ".incoming-999999999-x").exists()


def test_in_a_dvc_project_the_bytes_go_where_dvc_caches_them(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    autostage = true\n")
    cache = dvc_cache_dir(tmp_path)
    assert cache == tmp_path / ".dvc" / "cache"
    data = b"pixels DVC will cache"
    md5 = hashlib.md5(data).hexdigest()
    one = ImageStore(tmp_path / "one", "data/x", tmp_path / ".pixelpipe" / "objects", cache)
    rel, sha = one.put_bytes(data, ".jpg")
    cached = cache / "files" / "md5" / md5[:2] / md5[2:]
    output = tmp_path / "one" / rel.removeprefix("data/x/")
    assert cached.read_bytes() == data and cached.stat().st_ino == output.stat().st_ino
    pointer = tmp_path / ".pixelpipe" / "objects" / sha[:2] / sha
    assert pointer.is_symlink() and pointer.resolve() == cached.resolve()
    output.unlink()
    cached.unlink()  # `dvc gc` dropped it
    two = ImageStore(tmp_path / "two", "data/x", pointer.parents[1], cache)
    assert two.link(sha, ".jpg") is None  # the caller computes the image again
    assert collect_objects(tmp_path) == (1, 0)  # the dangling symlink
    assert not pointer.is_symlink()


def test_dvc_cache_dir_follows_the_config(tmp_path: Path) -> None:
    assert dvc_cache_dir(tmp_path) is None  # not a DVC project
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[cache]\n    dir = ../../shared-cache\n")
    assert dvc_cache_dir(tmp_path) == tmp_path / ".dvc" / ".." / ".." / "shared-cache"
    (tmp_path / ".dvc" / "config.local").write_text("[cache]\n    dir = /mnt/cache\n")
    assert dvc_cache_dir(tmp_path) == Path("/mnt/cache")
