"""Where datasets are read from: a local folder or any fsspec URL, listed once.

A :class:`Tree` is a folder of files (``data/raw/demo``, ``/mnt/sets/coco``,
``s3://bucket/prefix``, ``remote://NAME/prefix``...) listed once, read through fsspec.
The format readers in :mod:`pixelpipe.formats` only see relative posix paths inside it.

Rules:

- Credentials come from the usual places (environment variables such as
  ``AWS_ACCESS_KEY_ID``/``AWS_ENDPOINT_URL``, ``~/.aws`` profiles, a DVC remote's
  ``config.local``) and never from params. Every URL pixelpipe records or prints goes
  through :func:`public_url`, which drops user info and the query string.
- ``remote://NAME/path`` names a DVC remote of the project (``dvc remote add NAME
  s3://bucket`` plus ``dvc remote modify NAME endpointurl ...``), so DVC and pixelpipe read
  the same bucket through the same settings; DVC tracks it as an external dependency.
- A local tree never leads outside its root: a symlink to a file or folder outside is
  not followed (it is reported, see :attr:`Tree.links_out`) unless ``follow_symlinks``.
- Files are named by ids (:func:`pixelpipe.fileaccess.name_id`): a name that is not UTF-8
  is written with ``%XX`` escapes; reads of remote trees retry transient failures.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pixelpipe.errors import PixelpipeError, Problem, is_secret_param, url_userinfo
from pixelpipe.fileaccess import FileAccess as FileAccess
from pixelpipe.fileaccess import SourceUnavailable as SourceUnavailable
from pixelpipe.fileaccess import name_id as name_id
from pixelpipe.fileaccess import retrying

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: str) -> bool:
    """True for ``scheme://...`` (``file://`` included), false for a plain path."""
    return bool(_URL.match(location))


def public_url(location: str) -> str:
    """``location`` without credentials: user info and the query string are dropped.

    Args:
        location: A path or URL.

    Returns:
        The same location, safe to log, record in manifests and show in errors.
    """
    if not is_url(location):
        return location
    info = url_userinfo(location)
    if info is not None:  # also a secret holding a "/", which urlsplit takes for the path
        scheme, rest = location.split("://", 1)
        location = f"{scheme}://{rest[len(info) + 1 :]}"
    parts = urlsplit(location)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def credential_problem(location: str) -> str | None:
    """Why ``location`` must not be written in params, or ``None`` when it is clean."""
    if not is_url(location):
        return None
    info = url_userinfo(location)
    scheme = location.split("://", 1)[0].lower()
    info = info if info is not None else urlsplit(location).netloc.rpartition("@")[0] or None
    if info is not None and (":" in info or scheme not in ("ssh", "sftp")):
        return "the URL holds credentials; give them through the environment or a profile"
    query = location.partition("?")[2].partition("#")[0]
    if any(is_secret_param(name) for name, _ in parse_qsl(query, keep_blank_values=True)):
        return "the URL's query looks like a signature or token; use the environment instead"
    return None


def safe_relative(name: str) -> str | None:
    """``name`` as a clean relative posix path, or ``None`` when it could escape a folder.

    Backslashes count as separators; absolute paths, drive letters, ``..`` parts and
    empty names are refused; ``.`` parts and repeated slashes are removed.
    """
    text = name.replace("\\", "/")
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text) or "\x00" in text:
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def join(folder: str, name: str) -> str | None:
    """``folder/name`` inside a tree (``folder`` relative, may be ``""``), or ``None``.

    ``None`` when ``name`` is absolute or climbs out of ``folder`` with ``..``.
    """
    rel = safe_relative(name)
    if rel is None:
        return None
    return name_id(posixpath.join(folder, rel) if folder else rel)


@dataclass
class Tree:
    """A folder of files, listed once.

    Attributes:
        access: Opens its files.
        display: The root for people: a path, or a URL without credentials.
        files: Relative posix paths of the files, sorted (hidden files and folders,
            whose name starts with ``.``, are left out and counted in ``hidden``).
        links_out: Symlinks leading outside the root (not followed), with a reason.
        hidden: How many hidden files and folders were left out.
        hint: When the location named a file, its relative path (the tree is its folder).
        stamps: Remote trees: what the listing says of each file that identifies its
            content (:func:`stamp`), by relative path; a file the listing says nothing
            stable of has none. Local trees: empty (``os.stat`` tells more).
    """

    access: FileAccess
    display: str
    files: list[str]
    links_out: dict[str, str] = field(default_factory=dict)
    hidden: int = 0
    hint: str | None = None
    stamps: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._files = set(self.files)
        dirs: set[str] = {""}
        for rel in self.files:
            parent = posixpath.dirname(rel)
            while parent not in dirs:
                dirs.add(parent)
                parent = posixpath.dirname(parent)
        self._dirs = dirs

    @property
    def local(self) -> bool:
        """True for a folder on this machine."""
        return self.access.local_root is not None

    def exists(self, rel: str) -> bool:
        """True when ``rel`` is a (listed) file."""
        return rel in self._files

    def is_dir(self, rel: str) -> bool:
        """True when ``rel`` is a folder holding at least one listed file (``""``: root)."""
        return rel in self._dirs

    def children(self, folder: str = "") -> list[str]:
        """Names of the files and folders directly in ``folder``, sorted."""
        prefix = f"{folder}/" if folder else ""
        names = {
            rel[len(prefix) :].split("/", 1)[0] for rel in self.files if rel.startswith(prefix)
        }
        return sorted(names)

    def under(self, folder: str = "") -> Iterator[str]:
        """Files below ``folder`` (recursively), sorted; ``""`` is the whole tree."""
        if not folder:
            yield from self.files
            return
        prefix = f"{folder}/"
        for rel in self.files:
            if rel.startswith(prefix):
                yield rel

    def shown(self, rel: str) -> str:
        """How to name ``rel`` in messages: ``<root>/<rel>``."""
        return f"{self.display.rstrip('/')}/{rel}" if rel else self.display

    def uri(self, rel: str) -> str:
        """Where ``rel`` came from, for the manifest's ``source`` column."""
        return self.shown(rel)

    def read_bytes(self, rel: str) -> bytes:
        """The bytes of ``rel``.

        Raises:
            PixelpipeError: When it cannot be read.
        """
        try:
            return self.access.read_bytes(rel)
        except OSError as exc:
            raise PixelpipeError(
                Problem(f"cannot read: {type(exc).__name__}: {exc}", file=self.shown(rel))
            ) from None

    def read_text(self, rel: str) -> str:
        """The text of ``rel`` (UTF-8, a BOM is skipped).

        Raises:
            PixelpipeError: When it cannot be read or is not UTF-8.
        """
        data = self.read_bytes(rel)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PixelpipeError(
                Problem(f"not UTF-8 text (byte {exc.start})", file=self.shown(rel))
            ) from None

    def status(self, rel: str) -> str:
        """``ok`` (a listed file), ``unsafe`` (behind a link out of the root) or ``missing``."""
        if rel in self._files:
            return "ok"
        for link in self.links_out:
            if rel == link or rel.startswith(f"{link}/"):
                return "unsafe"
        return "missing"


def _kind(entry: os.DirEntry[str]) -> str:
    """``dir``, ``file``, ``broken`` (a symlink to nothing, or a loop) or a special file.

    Symlinks are followed: a link to a FIFO is a FIFO.
    """
    try:
        if entry.is_dir(follow_symlinks=True):
            return "dir"
        if entry.is_file(follow_symlinks=True):
            return "file"
        mode = entry.stat(follow_symlinks=True).st_mode
    except OSError:  # a link to nothing, or "Too many levels of symbolic links"
        return "broken"
    kinds = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"))
    return next((name for test, name in kinds if test(mode)), "device")


def _walk_local(
    root: Path, follow_symlinks: bool, shown: str
) -> tuple[list[str], dict[str, str], int]:
    """Files (ids of :func:`name_id`), links and special files not read, hidden count.

    A symlink that leads nowhere is listed as a file (reading it fails, so it is
    accounted for); FIFOs, sockets and devices are never read (a FIFO blocks forever).
    """
    files: list[str] = []
    links_out: dict[str, str] = {}
    hidden = 0
    real_root = root.resolve()

    def inside(path: Path) -> bool:
        try:
            return path.resolve().is_relative_to(real_root)
        except (OSError, RuntimeError):  # a symlink loop: it leads nowhere, inside or out
            return path.absolute().is_relative_to(root.absolute())

    def visit(folder: Path, rel: str, ancestors: frozenset[Path]) -> None:
        nonlocal hidden
        real = folder.resolve()
        if real in ancestors:  # a symlink loop
            return
        ancestors = ancestors | {real}
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            links_out[rel or "."] = f"folder cannot be listed: {exc.strerror}"
            return
        names = {entry.name for entry in entries}
        for entry in entries:
            name = name_id(entry.name)
            child = f"{rel}/{name}" if rel else name
            if name != entry.name and name in names:
                raise PixelpipeError(
                    f"{shown.rstrip('/')}/{child}: two files have this name, one written so "
                    "and one whose name is not UTF-8 (written with %XX for its bytes); "
                    "rename one of them"
                )
            if entry.name.startswith("."):
                hidden += 1
                continue
            path = Path(entry.path)
            if entry.is_symlink() and not follow_symlinks and not inside(path):
                links_out[child] = "a symlink to a place outside the source folder"
                continue
            kind = _kind(entry)
            if kind == "dir":
                visit(path, child, ancestors)
            elif kind in ("file", "broken"):
                files.append(child)
            else:
                links_out[child] = f"a special file ({kind}), never read"

    visit(root, "", frozenset())
    return sorted(files), links_out, hidden


def _dvc_remote_fs(location: str, project: Path) -> tuple[Any, str]:
    """Resolve ``remote://NAME/path`` through the project's DVC config."""
    dvc_dir = project / ".dvc"
    if not dvc_dir.is_dir():
        raise PixelpipeError(
            f"{public_url(location)}: remote:// names a DVC remote, but {project} is not a "
            "DVC project (no .dvc folder)"
        )
    try:
        from dvc.config import Config
        from dvc.fs import get_cloud_fs

        config = Config(dvc_dir=str(dvc_dir))
        cls, conf, fs_path = get_cloud_fs(config, url=location)
        return cls(**conf).fs, str(fs_path)
    except PixelpipeError:
        raise
    except Exception as exc:  # DVC's errors: unknown remote, missing plugin, bad config
        name = urlsplit(location).netloc
        raise PixelpipeError(
            f"{public_url(location)}: cannot use DVC remote '{name}': {exc}"
        ) from None


def open_filesystem(location: str, project: Path | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and path of a URL (``remote://`` through DVC's config).

    Raises:
        PixelpipeError: For an unknown scheme or a missing filesystem package.
    """
    if location.startswith("remote://"):
        return _dvc_remote_fs(location, project or Path.cwd())
    import fsspec

    options: dict[str, Any] = {"skip_instance_cache": True}
    if location.split("://", 1)[0].lower() in ("s3", "s3a") and not os.environ.get(
        "AWS_MAX_ATTEMPTS"
    ):
        # One request per try: pixelpipe's retries (with backoff) are the ones that count,
        # not botocore's five attempts inside each of them.
        options["config_kwargs"] = {"retries": {"total_max_attempts": 1}}
    try:
        fs, path = fsspec.core.url_to_fs(location, **options)
    except (ImportError, ValueError) as exc:
        raise PixelpipeError(f"{public_url(location)}: cannot open: {exc}") from None
    return fs, str(path)


def open_tree(
    location: str,
    base: Path | None = None,
    *,
    follow_symlinks: bool = False,
    project: Path | None = None,
) -> Tree:
    """List the folder (or a file's folder) at ``location``.

    Args:
        location: A path (relative to ``base``) or a URL (``s3://``, ``gs://``,
            ``http(s)://``, ``remote://NAME/path``, ``file://``...).
        base: Folder that relative paths are relative to (default: the current folder).
        follow_symlinks: Follow symlinks that lead outside the folder.
        project: The DVC project whose remotes ``remote://`` names (default: ``base``).

    Returns:
        The listed tree. When ``location`` is a file, the tree is its folder and
        :attr:`Tree.hint` names the file.

    Raises:
        PixelpipeError: When the location does not exist, holds nothing, or cannot be
            listed (with the reason, never with credentials).
    """
    base = base or Path.cwd()
    shown = public_url(location)
    if not is_url(location) or location.startswith("file://"):
        path = Path(location[len("file://") :] if location.startswith("file://") else location)
        path = path.expanduser()
        path = path if path.is_absolute() else base / path
        if path.is_file():
            hint: str | None = path.name
            path = path.parent
            shown = str(Path(shown).parent) if not is_url(location) else shown
        else:
            hint = None
        if not path.is_dir():
            raise PixelpipeError(f"source folder not found: {shown}")
        listed, escaping, hidden_count = _walk_local(path, follow_symlinks, shown)
        import fsspec.implementations.local

        access = FileAccess(
            fsspec.implementations.local.LocalFileSystem(), str(path), path, shown.rstrip("/")
        )
        return Tree(access, shown.rstrip("/") or shown, listed, escaping, hidden_count, hint)
    fs, root = open_filesystem(location, project or base)
    root = root.rstrip("/")
    names = _find(fs, root, shown)
    hint = None
    if list(names) == [root]:  # the location is a file: the tree is its folder
        root, hint = posixpath.dirname(root), posixpath.basename(root)
        shown = posixpath.dirname(shown.rstrip("/"))
        names = _find(fs, root, shown)
    prefix = f"{root}/"
    files: list[str] = []
    stamps: dict[str, str] = {}
    links_out: dict[str, str] = {}
    hidden = 0
    for name, info in names.items():
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix) :]
        if safe_relative(rel) != rel:
            links_out[rel] = "an object key that is not a clean relative path"
            continue
        if any(part.startswith(".") for part in rel.split("/")):
            hidden += 1
            continue
        files.append(rel)
        if stable := stamp(info):
            stamps[rel] = stable
    if not files and not links_out:
        raise PixelpipeError(f"source not found or empty: {shown}")
    access = FileAccess(fs, root, None, shown.rstrip("/"))
    return Tree(access, shown.rstrip("/"), files, links_out, hidden, hint, stamps)


_STAMP_KEYS = {
    "etag": "etag",
    "e_tag": "etag",
    "md5hash": "md5",
    "content-md5": "md5",
    "content_md5": "md5",
    "md5": "md5",
    "crc32c": "crc32c",
    "checksum": "checksum",
    "digest": "checksum",
    "sha256": "sha256",
    "generation": "generation",
    "versionid": "version",
    "version_id": "version",
    "lastmodified": "mtime",
    "last_modified": "mtime",
    "mtime": "mtime",
    "updated": "mtime",
}


def stamp(info: Any) -> str:
    """What a listing (``fs.find(detail=True)``, ``fs.info``) says that identifies a file's content.

    The size plus every ETag, checksum, generation, version and modification time the
    filesystem gives (S3, GCS, Azure, HTTP headers), as ``key=value`` text; ``""`` when it
    gives none of them (the size alone does not tell two versions of a file apart).
    """
    if not isinstance(info, dict):
        return ""
    fields: dict[str, str] = {}
    for key, value in info.items():
        name = _STAMP_KEYS.get(str(key).lower())
        if name is not None and value not in (None, ""):
            fields.setdefault(name, str(value))
    if not fields:
        return ""
    size = info.get("size", info.get("Size"))
    return ";".join([f"size={size}", *(f"{k}={v}" for k, v in sorted(fields.items()))])


def _find(fs: Any, root: str, shown: str) -> dict[str, Any]:
    """Every file below ``root`` (or ``root`` itself when it is a file), sorted, with its info.

    The info is what the listing says of the file (see :func:`stamp`).

    Transient failures are retried (:func:`pixelpipe.fileaccess.retrying`).
    """

    def find() -> dict[str, Any]:
        found = fs.find(root, withdirs=False, detail=True)
        if found or not fs.isfile(root):
            return dict(found)
        return {root: fs.info(root)}

    try:
        found = retrying(f"listing {shown}", find)
    except PixelpipeError:
        raise
    except Exception as exc:  # permission, missing bucket...
        raise PixelpipeError(
            f"cannot list {shown}: {type(exc).__name__}: {_clean_message(str(exc))}"
        ) from None
    return {str(name): found[name] for name in sorted(found, key=str)}


def _clean_message(text: str) -> str:
    """An exception message with any URL in it made public."""
    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda m: public_url(m.group(0)), text)
