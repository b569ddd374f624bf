"""The one error type a user mistake raises, and its location.

Every problem a person can fix (a typo in YAML, a bad param, a missing input) is a
:class:`PixelpipeError`. The CLI prints each :class:`Problem` on one line as
``FILE:LINE key.path: message`` and exits non-zero, with no traceback.

Nothing pixelpipe shows a person holds a credential: :func:`redact` hides the user info
of every URL and the values of query parameters that are signatures, tokens or keys. A
problem is redacted when it is rendered, and the ``pixelpipe`` log handlers format through
:class:`RedactingFormatter`, so no call site has to remember it.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MASK = "***"
_STOP = "\\s'\"<>`"  # what ends a URL inside a message: a space, a quote, a bracket
# The user info of a URL: ``user:secret@`` before the host (the last ``@`` before the path),
# or ``KEY:sec/ret@`` when a secret holds a raw ``/`` (AWS secret keys may): a ``:`` not
# followed by a port number, then anything up to an ``@`` before the query.
_USERINFO = re.compile(
    rf"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://)"
    rf"([^/?#{_STOP}]*|[^/?#@:\[{_STOP}]*:(?!\d+(?:[/?#{_STOP}]|$))[^?#@{_STOP}]*)@"
)
# A query parameter: after ``?`` or ``&``, up to the next ``&``, ``#``, space or quote.
_PARAM = re.compile(rf"([?&])([A-Za-z0-9_.~%-]+)=([^&#{_STOP}]*)")
# Parameter names that carry a credential: X-Amz-Signature, X-Amz-Credential,
# X-Amz-Security-Token, Signature, sig (Azure SAS), token, access_token, AWSAccessKeyId,
# key, api_key, client_secret, password, X-Goog-Credential, ... (case-insensitive).
_SECRET_NAME = re.compile(r"sig|token|secret|passw|pwd|credential|key|auth", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """One thing wrong, and where.

    Attributes:
        message: What is wrong, for a person.
        file: The file it is in, as the user named it (relative paths stay relative).
        line: 1-based line number in ``file``, when known.
        key: Dotted key path inside the file (``stages.dedupe.kind``), when known.
    """

    message: str
    file: str | None = None
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.key:
            where = f"{where} {self.key}" if where else self.key
        return redact(f"{where}: {self.message}" if where else self.message)


class PixelpipeError(Exception):
    """A mistake the user can fix; carries one or more :class:`Problem`.

    Args:
        problems: A message, a problem, or several problems reported together.
    """

    def __init__(self, problems: str | Problem | Sequence[Problem]) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def is_secret_param(name: str) -> bool:
    """True when a query parameter called ``name`` carries a credential (signature, token...)."""
    return bool(_SECRET_NAME.search(name))


def url_userinfo(url: str) -> str | None:
    """The user info of ``url`` (``user:secret`` in ``s3://user:secret@bucket/x``), or ``None``.

    A secret may hold a raw ``/`` (AWS secret keys may), which ends the authority early:
    in ``s3://KEY:abc/def@bucket/x`` the user info is ``KEY:abc/def``. So when a ``:``
    that is not followed by a port number comes before the first ``/``, everything up to
    the next ``@`` before the query counts as user info.
    """
    found = _USERINFO.match(url)
    return found.group(2) if found else None


def _redact_param(found: re.Match[str]) -> str:
    sep, name, value = found.groups()
    return f"{sep}{name}={MASK}" if value and is_secret_param(name) else found.group(0)


def redact(text: str) -> str:
    """``text`` with every credential hidden, and everything else as it was.

    The user info of a URL becomes ``***`` (``s3://KEY:SECRET@bucket/x`` ->
    ``s3://***@bucket/x``) and so does the value of a query parameter whose name says it is
    a credential (``?X-Amz-Signature=abc&X-Amz-Date=1`` -> ``?X-Amz-Signature=***&X-Amz-Date=1``).

    Args:
        text: A message, a log line or a traceback.

    Returns:
        The text, safe to show.
    """
    if "://" not in text and "=" not in text:
        return text
    return _PARAM.sub(_redact_param, _USERINFO.sub(rf"\1{MASK}@", text))


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line (message and traceback) goes through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as :class:`logging.Formatter` does, then redact it."""
        return redact(super().format(record))
