"""Opening the files of a source: ids of names that are not UTF-8, retries over a network.

:class:`FileAccess` opens the files of one :class:`pixelpipe.sources.Tree` by id.

Ids (:func:`name_id`): a file name that is UTF-8 is its own id; in a name that is not,
each byte that is not part of valid UTF-8 is written ``%XX`` and each ``%`` as ``%25``
(``urllib.parse.unquote_to_bytes`` reverses it). A local file is opened by its id
(:meth:`FileAccess.local_path` finds the name on disk).

Retries: every read of a remote source goes through :func:`retrying` or
:class:`RetryingReader`:

- transient failures (a refused or reset connection, a timeout, HTTP 5xx or 429, S3's
  ``SlowDown``) are retried with exponential backoff: 0.5 s, 1 s, 2 s... (at most 8 s
  between tries), ``PIXELPIPE_READ_TRIES`` tries in all (default 4), and no new try starts
  once 120 s have passed since the first;
- permanent failures of one file (not found, access denied) are raised at once as the
  ``OSError`` they are, so the caller can quarantine that file;
- anything else, and a transient failure that outlasts the retries, is a
  :class:`SourceUnavailable`: one line naming the URL, what failed and how often it was
  tried, raised so the whole job stops (a bucket that went away is not a bad image).

Libraries below may retry some failures themselves; a "try" here is one of their whole
attempts. For ``s3://`` URLs :func:`pixelpipe.sources.open_filesystem` turns botocore's
own retries off (unless ``AWS_MAX_ATTEMPTS`` is set), so a try is one request.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import unquote_to_bytes

from pixelpipe.errors import PixelpipeError

T = TypeVar("T")

TRIES_ENV = "PIXELPIPE_READ_TRIES"
DEFAULT_TRIES = 4
FIRST_WAIT = 0.5
LONGEST_WAIT = 8.0
GIVE_UP_AFTER = 120.0

_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EPIPE,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EHOSTUNREACH,
    errno.ENOTCONN,
}
# s3fs turns SlowDown, 503 and 409 into EBUSY and 500 into EREMOTEIO.
_BUSY_ERRNOS = {errno.EBUSY, errno.EAGAIN, getattr(errno, "EREMOTEIO", 121)}
# Network failures of libraries that are not OSError (botocore, aiohttp, fsspec, urllib3).
_TRANSIENT_NAMES = {
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyConnectionError",
    "ResponseStreamingError",
    "IncompleteReadError",
    "ClientConnectionError",
    "ClientPayloadError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "FSTimeoutError",
    "IncompleteRead",
    "ProtocolError",
}


class SourceUnavailable(PixelpipeError):
    """Reading a source failed for a reason that is not one file's: the job must stop."""


def tries() -> int:
    """``PIXELPIPE_READ_TRIES`` (at least 1), else :data:`DEFAULT_TRIES`.

    Raises:
        PixelpipeError: When it is not a whole number of at least 1.
    """
    raw = os.environ.get(TRIES_ENV, "")
    if not raw:
        return DEFAULT_TRIES
    if not raw.isdigit() or int(raw) < 1:
        raise PixelpipeError(f"{TRIES_ENV}: must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, outermost first (each once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (aiohttp, requests, botocore), if any."""
    for name in ("status", "status_code", "code"):
        value = getattr(exc, name, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        value = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(value, int):
            return value
    return None


def is_transient(exc: BaseException) -> bool:
    """True when trying again later may work: a network or service failure.

    The whole chain of causes counts: fsspec's HTTP reports a 503 as a ``FileNotFoundError``
    raised from it.
    """
    for error in _chain(exc):
        if isinstance(error, ConnectionError | TimeoutError):
            return True
        if isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS | _BUSY_ERRNOS:
            return True
        status = _status(error)
        if status is not None and (status >= 500 or status == 429):
            return True
        if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(error).__mro__):
            return True
    return False


def reason(exc: BaseException) -> str:
    """What failed, in a few words: ``Connection refused``, ``HTTP 503``, ``SlowDown ...``."""
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS:
            return os.strerror(error.errno)
        if isinstance(error, TimeoutError):
            return "timed out"
    for error in _chain(exc):
        status = _status(error)
        if status is not None:
            return f"HTTP {status}"
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    text = re.sub(r"\s+", " ", text).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def retrying(what: str, action: Callable[[], T]) -> T:
    """``action()``, tried again on transient failures with exponential backoff.

    Args:
        what: What is being done, for the error: ``reading s3://bucket/a.jpg``.
        action: The read.

    Returns:
        What ``action`` returns.

    Raises:
        OSError: A permanent failure of this one file (not found, access denied...).
        SourceUnavailable: A transient failure on every try, or any other failure.
    """
    limit = tries()
    started = time.monotonic()
    wait = FIRST_WAIT
    for attempt in range(1, limit + 1):
        try:
            return action()
        except PixelpipeError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                if isinstance(exc, OSError):
                    raise
                raise SourceUnavailable(f"{what} failed ({reason(exc)})") from None
            out_of_time = time.monotonic() + wait - started > GIVE_UP_AFTER
            if attempt == limit or out_of_time:
                raise SourceUnavailable(
                    f"{what} failed after {attempt} {'try' if attempt == 1 else 'tries'} "
                    f"({reason(exc)})"
                ) from None
        time.sleep(wait)
        wait = min(wait * 2, LONGEST_WAIT)
    raise AssertionError("unreachable")  # pragma: no cover


class RetryingReader(io.RawIOBase):
    """A remote file whose opening, seeks and reads are each :func:`retrying`.

    A read that fails reopens the file at the same offset, so a connection reset in the
    middle of a large file costs one block, not the file.

    Args:
        opener: Opens the file (``fs.open(path, "rb")``); must return a seekable stream.
        url: The file's public URL, for errors.
    """

    def __init__(self, opener: Callable[[], IO[bytes]], url: str) -> None:
        super().__init__()
        self._opener = opener
        self._what = f"reading {url}"
        self._position = 0
        self._stream: IO[bytes] | None = retrying(self._what, opener)

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """Always true."""
        return True

    def _attempt(self, action: Callable[[IO[bytes]], T]) -> T:
        def once() -> T:
            if self._stream is None:
                self._stream = self._opener()
                if self._position:
                    self._stream.seek(self._position)
            try:
                return action(self._stream)
            except BaseException:
                self._drop()
                raise

        return retrying(self._what, once)

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes into ``buffer``."""
        view = memoryview(buffer).cast("B")
        data = self._attempt(lambda stream: stream.read(len(view)))
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` (from the start, the current position or the end)."""
        if whence == io.SEEK_CUR:
            offset, whence = self._position + offset, io.SEEK_SET
        self._position = self._attempt(lambda stream: stream.seek(offset, whence))
        return self._position

    def tell(self) -> int:
        """The current offset."""
        return self._position

    def _drop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close too
                stream.close()

    def close(self) -> None:
        """Close the remote file."""
        self._drop()
        super().close()


def name_id(name: str) -> str:
    """A file name as valid text, for ids, manifests and messages; see ``docs/formats.md``.

    A name that is UTF-8 is its own id, unchanged. Python reads the bytes of a name that
    is not as stand-ins (``surrogateescape``), which no UTF-8 file, Parquet column or log
    can hold: those bytes are written ``%XX`` and the name's own ``%`` as ``%25``, so
    ``urllib.parse.unquote_to_bytes(id)`` gives the exact bytes back. Two names share an id
    only when one is UTF-8 text that reads like the escape of the other (``a%FF.jpg`` beside
    the bytes ``a<0xFF>.jpg``); a listing refuses such a pair.
    """
    if not _has_stand_ins(name):
        return name
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from JSON text ("\\ud800")
        raw = name.encode("utf-8", "surrogatepass")
    return "".join(
        "%25" if c == "%" else f"%{ord(c) - 0xDC00:02X}" if "\udc80" <= c <= "\udcff" else c
        for c in raw.decode("utf-8", "surrogateescape")
    )


def _has_stand_ins(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _on_disk(folder: Path, part: str) -> str:
    """The real name of the entry of ``folder`` whose id is ``part`` (see :func:`name_id`)."""
    if "%" not in part:
        return part
    raw = unquote_to_bytes(part)
    if not _has_stand_ins(os.fsdecode(raw)) or os.path.lexists(folder / part):
        return part  # UTF-8 text, or a name that merely looks escaped
    return os.fsdecode(raw)


@dataclass(frozen=True)
class FileAccess:
    """Opens files of one tree; small and picklable, for worker processes.

    Reads of a remote tree are retried on transient failures (:mod:`pixelpipe.retry`).

    Attributes:
        fs: The fsspec filesystem.
        root: The tree's root in ``fs`` terms (no trailing slash).
        local_root: The root as a local path, for local trees.
        display: The root for people (a URL without credentials), for errors.
    """

    fs: Any
    root: str
    local_root: Path | None = None
    display: str = ""

    def fs_path(self, rel: str) -> str:
        """The path of ``rel`` in ``fs`` terms."""
        return f"{self.root}/{rel}" if rel else self.root

    def local_path(self, rel: str) -> Path | None:
        """The local path of ``rel`` (an id of :func:`name_id`), or ``None`` for a remote tree."""
        if self.local_root is None:
            return None
        if "%" not in rel:
            return self.local_root / rel
        path = self.local_root
        for part in rel.split("/"):
            path = path / _on_disk(path, part)
        return path

    def open(self, rel: str) -> IO[bytes]:
        """Open ``rel`` for reading bytes.

        Raises:
            OSError: When this file cannot be read (not found, access denied...).
            SourceUnavailable: When a remote source fails on every try.
        """
        local = self.local_path(rel)
        if local is not None:
            return local.open("rb")
        path = self.fs_path(rel)
        url = f"{self.display or self.root}/{rel}" if rel else self.display or self.root
        raw = RetryingReader(lambda: self.fs.open(path, "rb"), url)
        return io.BufferedReader(raw, buffer_size=1 << 20)

    def read_bytes(self, rel: str) -> bytes:
        """The content of ``rel`` (errors as :meth:`open`)."""
        with self.open(rel) as stream:
            return stream.read()
