"""Safe YAML loading that remembers where every key came from.

Only plain YAML is accepted (PyYAML's safe constructor: no Python tags, no custom
tags); duplicate keys are errors, as in DVC's strict YAML. Each loaded document
comes with a map from key path to line, so validation errors can name the line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixelpipe.errors import PixelpipeError, Problem

KeyPath = tuple[str | int, ...]


def dotted(path: KeyPath) -> str:
    """Render a key path as ``stages.dedupe.inputs[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


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


class _Loader(yaml.SafeLoader):
    """Safe loader; positions are gathered from the node tree separately."""


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], dups: list[KeyPath]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _walk(value_node, path, lines, dups)
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                dups.append(child)
                lines[("__dup__", *child)] = key_node.start_mark.line + 1
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, dups)


def load_text(text: str, file: str) -> Located:
    """Parse YAML text safely, returning the data and the line of every key.

    Args:
        text: The YAML source.
        file: Name shown in error messages.

    Raises:
        PixelpipeError: On a syntax error, a tag that is not plain YAML, or a duplicate key.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = (exc.problem or str(exc)).strip()
        if isinstance(exc, yaml.constructor.ConstructorError):
            reason = f"{reason} (only plain YAML is accepted: no tags)"
        raise PixelpipeError(Problem(f"invalid YAML: {reason}", file=file, line=line)) from None
    except yaml.YAMLError as exc:
        raise PixelpipeError(Problem(f"invalid YAML: {exc}", file=file)) from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    dups: list[KeyPath] = []
    if node is not None:
        _walk(node, (), lines, dups)
    if dups:
        raise PixelpipeError(
            [
                Problem("duplicate key", file=file, line=lines[("__dup__", *d)], key=dotted(d))
                for d in dups
            ]
        )
    return Located(data=data, file=file, lines=lines)


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
