"""The MLflow tracking store of a project: where it is, opening it safely, failing loudly.

Where: ``MLFLOW_TRACKING_URI`` when set, else an SQLite store ``mlflow.db`` in the project
with artifacts under ``mlruns/`` (both git-ignored). ``PIXELPIPE_TRACKING=off`` turns
tracking off; MLflow is then never imported (importing it takes seconds).

One store, made once: MLflow's SQLite store creates its schema (a chain of Alembic
migrations) the first time a process opens it, and two processes doing that at once leave it
broken for good (``table _alembic_tmp_experiments already exists`` on every later open). So a
pixelpipe process holds an exclusive lock (``fcntl.flock``) on ``<database>.lock``, beside the
database, for as long as it uses an SQLite store (:func:`tracking_session`): the schema is
made once, and pixelpipe's writes never race each other.

Failing loudly: tracking that is on and fails (a broken store, a server that does not answer)
raises a :class:`~pixelpipe.errors.PixelpipeError` on one line naming the store (without
credentials) and the opt-out. Retries and timeouts of HTTP calls are bounded
(:data:`ENV_DEFAULTS`), so a dead server costs seconds, not minutes.

No credentials recorded: every URL pixelpipe writes into MLflow (dataset sources, tags,
params) or names in a tracking error goes through :func:`public_text`: no user info, no
fragment, no query parameter whose name says it is a credential (signature, token, key...).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pixelpipe.errors import PixelpipeError, is_secret_param, url_userinfo

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TRACKING_ENV = "PIXELPIPE_TRACKING"
"""Set to ``off`` (or ``0``, ``false``, ``no``) to log no MLflow runs."""
_OFF = frozenset({"0", "off", "false", "no", "disable", "disabled"})
DB_FILE = "mlflow.db"
LOCK_SUFFIX = ".lock"
"""The lock of an SQLite store is the database's path plus this (``mlflow.db.lock``)."""
LOCK_TIMEOUT = 120.0
"""Seconds to wait for another process's use of the store before failing."""
ARTIFACTS_DIR = "mlruns"

ENV_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
"""MLflow settings of pixelpipe's own processes (stage runs, release): no usage telemetry
sent to MLflow's servers from a pipeline run, and bounds on HTTP retries and timeouts
(MLflow's own defaults retry for minutes). A variable already set in the environment wins."""

_URL = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]*")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def tracking_enabled() -> bool:
    """False when ``PIXELPIPE_TRACKING`` turns tracking off."""
    return os.environ.get(TRACKING_ENV, "on").strip().lower() not in _OFF


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI``, else the project's SQLite store ``mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(root / DB_FILE).resolve().as_posix()}"


def store_exists(root: Path) -> bool:
    """True when runs can be in a store: a tracking URI is set, or ``mlflow.db`` exists."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI")) or (root / DB_FILE).is_file()


def public_url(url: str) -> str:
    """``url`` without credentials: no user info, no fragment, no secret query parameter.

    ``https://user:TOKEN@host/a?page=2&sig=X#frag`` becomes ``https://host/a?page=2``: the
    place stays, the key goes (what is a credential is :mod:`pixelpipe.errors`' rule, which
    masks them in messages). Text that is not a ``scheme://`` URL comes back unchanged.
    """
    if not _SCHEME.match(url):
        return url
    info = url_userinfo(url)
    if info is not None:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://{rest[len(info) + 1 :]}"
    base, sep, query = url.split("#", 1)[0].partition("?")
    kept = [item for item in query.split("&") if item and not _secret_item(item)]
    return f"{base}?{'&'.join(kept)}" if sep and kept else base


def _secret_item(item: str) -> bool:
    from urllib.parse import unquote_plus

    return is_secret_param(unquote_plus(item.partition("=")[0]))


def public_text(text: str) -> str:
    """``text`` with every ``scheme://`` URL in it passed through :func:`public_url`."""
    return _URL.sub(lambda match: public_url(match.group()), text)


def first_line(exc: BaseException) -> str:
    """The first line of an error, without credentials, for a one-line message."""
    text = str(exc).strip().splitlines()
    line = public_text(text[0]) if text else ""
    line = line if len(line) <= 300 else line[:297] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def tracking_failed(what: str, uri: str, exc: BaseException) -> PixelpipeError:
    """The one-line error of tracking that is on and failed."""
    database = sqlite_file(uri)
    fix = (
        f"move {database.name} aside if it is broken (the next run makes a new one)"
        if database is not None
        else "check the server and MLFLOW_TRACKING_URI"
    )
    return PixelpipeError(
        f"{what}: MLflow tracking failed at {public_url(uri)} ({first_line(exc)}); {fix}, "
        f"or set {TRACKING_ENV}=off to run without tracking"
    )


def prepare_mlflow() -> None:
    """Apply :data:`ENV_DEFAULTS`."""
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def _quiet_mlflow() -> None:
    """Keep MLflow's and Alembic's info chatter off the log (after MLflow set its levels)."""
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def sqlite_file(uri: str) -> Path | None:
    """The database file of an ``sqlite:///PATH`` URI (SQLAlchemy's form), else ``None``."""
    if not uri.startswith("sqlite:///"):
        return None
    database = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    return Path(database).absolute()


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold the lock of an SQLite store (nothing to hold for other stores)."""
    database = sqlite_file(uri)
    if database is None or sys.platform == "win32":
        yield
        return
    import fcntl

    lock = database.with_name(database.name + LOCK_SUFFIX)
    with lock.open("a+b") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{lock} was held by another process for {LOCK_TIMEOUT:.0f}s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def tracking_session(root: Path, what: str) -> Iterator[MlflowClient]:
    """An MLflow client on the project's store, under the store's lock.

    Args:
        root: The project root.
        what: Who tracks, for the error (``stage 'dedupe'``, ``release v2``).

    Raises:
        PixelpipeError: When opening or using the store fails (:func:`tracking_failed`).
    """
    uri = tracking_uri(root)
    prepare_mlflow()
    try:
        with _store_lock(uri):
            from mlflow.tracking import MlflowClient

            _quiet_mlflow()
            yield MlflowClient(tracking_uri=uri)
    except PixelpipeError:
        raise
    except Exception as exc:
        raise tracking_failed(what, uri, exc) from exc
