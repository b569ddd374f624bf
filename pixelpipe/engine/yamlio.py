"""Safe YAML loading that remembers where every key came from.

The reading itself is :func:`pixelpipe.safeyaml.parse`, shared with the format readers:
plain YAML only (no Python or custom tags, named with their line when found), duplicate
keys are errors as in DVC's strict YAML, alias bombs and recursive aliases are refused.
Each loaded document comes with a map from key path to line, so validation errors can
name the line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpipe.errors import PixelpipeError, Problem
from pixelpipe.safeyaml import KeyPath, dotted, parse

__all__ = ["KeyPath", "Located", "dotted", "load_file", "load_text"]


@dataclass
class Located:
    """A loaded YAML document with the line of each key path.

    Attributes:
        data: The plain Python value (dicts, lists, scalars).
        file: The file name to show in messages.
        lines: 1-based line of each key path (the key itself for mapping entries).
    """

    data: Any
    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path`` or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: KeyPath, message: str, prefix: KeyPath = ()) -> Problem:
        """A :class:`Problem` at ``prefix + path`` in this document."""
        full = tuple(prefix) + tuple(path)
        return Problem(message, file=self.file, line=self.line_of(full), key=dotted(full) or None)


def load_text(text: str, file: str) -> Located:
    """Parse YAML text safely, returning the data and the line of every key.

    Args:
        text: The YAML source.
        file: Name shown in error messages.

    Raises:
        PixelpipeError: On a syntax error, a tag that is not plain YAML, a duplicate key,
            an alias bomb or a recursive alias, with the file and line.
    """
    parsed = parse(text, file)
    return Located(data=parsed.data, file=file, lines=parsed.lines)


def load_file(path: Path, shown_as: str | None = None) -> Located:
    """Read and parse a YAML file; ``shown_as`` is the name used in messages."""
    name = shown_as or os.fspath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PixelpipeError(Problem("file not found", file=name)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PixelpipeError(Problem(f"cannot read: {exc}", file=name)) from None
    return load_text(text, name)
