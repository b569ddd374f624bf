"""The one error type a user mistake raises, and its location.

Every problem a person can fix (a typo in YAML, a bad param, a missing input) is a
:class:`PixelpipeError`. The CLI prints each :class:`Problem` on one line as
``FILE:LINE key.path: message`` and exits non-zero, with no traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


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
        return f"{where}: {self.message}" if where else self.message


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
