"""Put a version's data in the workspace (:func:`checkout`) and return (:func:`checkout_head`).

The code does not move (git ``HEAD`` and the working tree stay as they are). The checkout
note in the git folder remembers which version is out and the files written
(:func:`checked_out`); neither function overwrites a file whose content is not in the DVC
cache (:func:`unsaved_files`) unless forced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from pixelpipe.engine.compile import DVC_FILE
from pixelpipe.errors import PixelpipeError
from pixelpipe.versions.target import Target, resolve
from pixelpipe.versions.vcs import (
    HEAD,
    default_remote,
    dvc,
    failure,
    head,
    marker_path,
    project_root,
    read_marker,
    write_marker,
)

log = logging.getLogger("pixelpipe.versions")

LOCK_FILE = "dvc.lock"


def checked_out(root: Path) -> str | None:
    """The version whose data :func:`checkout` put in the workspace, or ``None`` at HEAD.

    A note whose files have all changed since (the outputs were rebuilt by ``dvc repro`` or
    restored by ``dvc checkout``) no longer counts.
    """
    root = project_root(root)
    marker = read_marker(root)
    if not marker:
        return None
    files: dict[str, list[int]] = marker.get("files") or {}
    for rel, stat in files.items():
        path = root / rel
        if path.is_file() and _stat(path) == stat:
            return str(marker["version"])
    return None if files else str(marker["version"])


def cached_outputs(dvc_yaml: str) -> list[str]:
    """Paths of the cached outputs (``outs``, and cached metrics and plots) of ``dvc.yaml``."""
    try:
        stages = (yaml.safe_load(dvc_yaml) or {}).get("stages") or {}
    except yaml.YAMLError:
        raise PixelpipeError(f"{DVC_FILE} is not valid YAML") from None
    found: list[str] = []
    for entry in stages.values():
        for section, default in (("outs", True), ("metrics", True), ("plots", True)):
            for out in entry.get(section) or []:
                if isinstance(out, str):
                    path, cache = out, default
                elif isinstance(out, dict) and len(out) == 1:
                    path, options = next(iter(out.items()))
                    cache = bool((options or {}).get("cache", default))
                else:
                    continue
                if cache:
                    found.append(str(path))
    return list(dict.fromkeys(found))


def _files(root: Path, out: str) -> Iterator[tuple[str, Path]]:
    path = root / out
    if path.is_file():
        yield out, path
        return
    if not path.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            yield full.relative_to(root).as_posix(), full


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _cache_dir(root: Path) -> Path:
    text = dvc(root, "cache", "dir").stdout.strip().splitlines()
    return Path(text[-1]) if text else root / ".dvc" / "cache"


def changed_outputs(root: Path) -> set[str]:
    """Outputs that ``dvc status`` says differ from ``dvc.lock`` or are missing from the cache."""
    status = json.loads(dvc(root, "status", "--json").stdout.strip() or "{}")
    changed: set[str] = set()
    for entries in status.values():
        for entry in entries or []:
            if isinstance(entry, dict):
                changed.update(str(p) for p in (entry.get("changed outs") or {}))
    return changed


def unsaved_files(root: Path, outputs: Iterable[str]) -> list[str]:
    """Files of ``outputs`` in the workspace whose content is not in the DVC cache.

    Outputs known to be unchanged since pixelpipe or DVC wrote them from the cache are not
    read; any other file is hashed and looked up in the cache, as DVC does before it
    deletes a file.
    """
    root = project_root(root)
    marker = read_marker(root)
    suspects: list[tuple[str, Path]] = []
    if marker is not None:
        known: dict[str, list[int]] = marker.get("files", {})
        for out in outputs:
            suspects += [(rel, p) for rel, p in _files(root, out) if known.get(rel) != _stat(p)]
    else:
        changed = changed_outputs(root)
        for out in outputs:
            if out in changed:
                suspects += list(_files(root, out))
    if not suspects:
        return []
    cache = _cache_dir(root) / "files" / "md5"
    unsaved = []
    for rel, path in suspects:
        md5 = _md5(path)
        if not (cache / md5[:2] / md5[2:]).is_file():
            unsaved.append(rel)
    return unsaved


def some(paths: Sequence[str], limit: int = 3) -> str:
    """The first ``limit`` paths, comma-separated, and how many more there are."""
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _refuse_unsaved(root: Path, outputs: Iterable[str], what: str) -> None:
    unsaved = unsaved_files(root, outputs)
    if unsaved:
        one = len(unsaved) == 1
        it = "it" if one else "them"
        raise PixelpipeError(
            f"unsaved changes: {some(unsaved)} {'is' if one else 'are'} not in the DVC cache "
            f"and {what} would overwrite {it}; copy {it} elsewhere (or `dvc commit` {it} "
            f"into the pipeline's data), or pass --force to discard {it}"
        )


@dataclass(frozen=True)
class Checkout:
    """What :func:`checkout` did.

    Attributes:
        label: The version (or revision) now in the workspace; ``HEAD`` after returning.
        commit: Its commit.
        restored: The outputs written.
        removed: The outputs deleted (not part of that state).
    """

    label: str
    commit: str
    restored: list[str]
    removed: list[str]


def checkout(root: Path, name: str, *, force: bool = False) -> Checkout:
    """Put the data outputs of version ``name`` in the workspace, byte for byte.

    The code does not move: git's ``HEAD`` and working tree stay as they are. ``HEAD``
    returns to the data ``dvc.lock`` names (:func:`checkout_head`). Data comes from the DVC
    cache, else from the DVC remote.

    Args:
        root: The project.
        name: A version, or any git revision; ``HEAD`` to return.
        force: Overwrite files whose content is not in the DVC cache.

    Raises:
        PixelpipeError: On an unknown version, unsaved files, or data that cannot be fetched.
    """
    root = project_root(root)
    if name == HEAD:
        return checkout_head(root, force=force)
    target = resolve(root, name, workspace=False)
    assert target.commit is not None
    marker = read_marker(root)
    wanted = cached_outputs(target.read_text(DVC_FILE))
    locked = _locked_outputs(target)
    current = cached_outputs((root / DVC_FILE).read_text(encoding="utf-8"))
    current = list(dict.fromkeys(current + list((marker or {}).get("outputs", []))))
    if not force:
        _refuse_unsaved(root, current, f"`pixelpipe checkout {name}`")
    _fetch_into_cache(target, wanted)
    staged: list[tuple[str, Path]] = []
    try:
        for out in wanted:
            if out not in locked:
                continue
            dest = root / out
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.checkout-{os.getpid()}")
            remove(tmp)
            target.get(out, tmp)
            staged.append((out, tmp))
        restored = []
        for out, tmp in staged:
            _swap(tmp, root / out)
            restored.append(out)
    finally:
        for _, tmp in staged:
            remove(tmp)
    removed = []
    for out in current:
        if out not in restored and (root / out).exists():
            remove(root / out)
            removed.append(out)
    files = {rel: _stat(p) for out in restored for rel, p in _files(root, out)}
    write_marker(
        root,
        {"version": name, "commit": target.commit, "outputs": restored, "files": files},
    )
    return Checkout(label=name, commit=target.commit, restored=restored, removed=removed)


def _fetch_into_cache(target: Target, outputs: Sequence[str]) -> None:
    """Download what the local DVC cache lacks of a state's data from the DVC remote.

    Checkout then copies from the cache, and the data it puts in the workspace is saved (in
    the cache), as after ``dvc pull``. Best effort: when this fails (no remote, remote down),
    copying reads what the cache has and reports what is missing.
    """
    from dvc.repo import Repo

    try:
        with Repo(str(target.root)) as repo:
            remotes = list(repo.config.get("remote") or {})
            default = (repo.config.get("core") or {}).get("remote")
            remote = default or (remotes[0] if len(remotes) == 1 else None)
            if remote and not _in_cache(Path(repo.cache.local.path), target, outputs):
                repo.fetch(revs=[target.commit], workspace=False, remote=remote)
    except Exception as exc:
        log.debug("fetching %s from the DVC remote failed: %s", target.label, exc)


def _in_cache(cache: Path, target: Target, outputs: Sequence[str]) -> bool:
    """Whether every object of the state's ``outputs`` is in the cache (``files/md5``)."""

    def has(md5: str) -> bool:
        return (cache / md5[:2] / md5[2:]).is_file()

    lock = yaml.safe_load(target.read_text(LOCK_FILE)) or {}
    for entry in (lock.get("stages") or {}).values():
        for out in entry.get("outs") or []:
            if not isinstance(out, dict) or out.get("path") not in outputs:
                continue
            md5 = str(out.get("md5", ""))
            if not md5 or not has(md5):
                return False
            if md5.endswith(".dir"):
                listing = json.loads((cache / md5[:2] / md5[2:]).read_text(encoding="utf-8"))
                if not all(has(str(item["md5"])) for item in listing):
                    return False
    return True


def _locked_outputs(target: Target) -> set[str]:
    """Outputs the state's ``dvc.lock`` records (a stage that never ran has none)."""
    try:
        lock = yaml.safe_load(target.read_text(LOCK_FILE)) or {}
    except PixelpipeError:
        return set()
    return {
        str(out["path"])
        for entry in (lock.get("stages") or {}).values()
        for out in entry.get("outs") or []
        if isinstance(out, dict) and "path" in out
    }


def remove(path: Path) -> None:
    """Delete a file, link or folder, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _swap(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` with renames only."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        remove(old)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        remove(old)


def checkout_head(root: Path, *, force: bool = False) -> Checkout:
    """Return the workspace data to what ``dvc.lock`` names (``pixelpipe checkout HEAD``).

    Args:
        root: The project.
        force: Overwrite files whose content is not in the DVC cache.

    Raises:
        PixelpipeError: On unsaved files, or data neither in the cache nor on the remote.
    """
    root = project_root(root)
    marker = read_marker(root)
    wanted = cached_outputs((root / DVC_FILE).read_text(encoding="utf-8"))
    extra = [o for o in (marker or {}).get("outputs", []) if o not in wanted]
    if not force:
        _refuse_unsaved(root, wanted + extra, "`pixelpipe checkout HEAD`")
    flags = ["--force"] if force or marker else []
    result = dvc(root, "checkout", *flags, check=False)
    if result.returncode != 0:
        if "unsaved" in (result.stderr + result.stdout):
            raise PixelpipeError(failure(["dvc", "checkout"], result) + "; or pass --force")
        remote = default_remote(root)
        if remote is None:
            raise PixelpipeError(failure(["dvc", "checkout"], result))
        dvc(root, "pull", "-r", remote, *flags)
    removed = []
    for out in extra:
        if (root / out).exists():
            remove(root / out)
            removed.append(out)
    if marker is not None:
        marker_path(root).unlink(missing_ok=True)
    return Checkout(label=HEAD, commit=head(root), restored=wanted, removed=removed)
