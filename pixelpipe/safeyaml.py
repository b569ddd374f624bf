"""Safe YAML for every file a person or a dataset gives pixelpipe: plain data, located, bounded.

Pipeline files, ``params.yaml``, config files and a YOLO ``data.yaml`` are all read with
:func:`parse`. It builds only what YAML's safe schema builds and refuses, as a
:class:`~pixelpipe.errors.PixelpipeError` naming the file and the line:

- a tag outside the safe schema (``!!python/object/apply:os.system``, ``!env``), shown as
  written; nothing is ever built from it;
- a duplicate key (YAML would silently keep the last one); a key that a merge (``<<``)
  brings in and the mapping sets again is an override, not a duplicate;
- aliases that would expand the document by more than :data:`MAX_ALIAS_NODES` nodes (an
  "alias bomb": nested ``&a``/``*a`` anchors that grow to billions of nodes). The size of
  the tree each node expands to is counted while composing, before any value is built,
  so a bomb is refused in the time it takes to read its few lines;
- an alias inside the node it names (a recursive structure), and nesting deeper than
  :data:`MAX_DEPTH` levels, counted through aliases too;
- a value the safe schema cannot build (a bad date), and an integer that does not fit in
  64 bits (nothing downstream - Parquet, JSON, DVC - holds more).

It sits below the engine and the formats (it imports only :mod:`pixelpipe.errors`), so
both read YAML the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from pixelpipe.errors import PixelpipeError, Problem

KeyPath = tuple[str | int, ...]

MAX_ALIAS_NODES = 100_000
"""How many nodes aliases may add to a document (each alias adds the size of its target).

Real files use anchors to share a few settings (hundreds of nodes); a 10^9-leaf bomb
passes this after a few lines."""

MAX_DEPTH = 100
"""How deep a document may nest, counted through aliases (real files nest under 10)."""

_MERGE = "tag:yaml.org,2002:merge"
_CORE = "tag:yaml.org,2002:"
_SAFE_TAGS = frozenset(t for t in yaml.SafeLoader.yaml_constructors if t is not None) | {_MERGE}


@dataclass(frozen=True)
class Parsed:
    """A YAML document read safely.

    Attributes:
        data: The plain Python value (dicts, lists, scalars), ``None`` for an empty file.
        lines: 1-based line of each key path (the key itself for mapping entries).
    """

    data: Any
    lines: dict[KeyPath, int]


def dotted(path: KeyPath) -> str:
    """Render a key path as ``stages.dedupe.inputs[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that pixelpipe will not build (the message is the whole reason)."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(problem=message, problem_mark=mark)


def _shown_tag(tag: str) -> str:
    return f"!!{tag[len(_CORE) :]}" if tag.startswith(_CORE) else tag


def _short(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else f"{text[:40]}...")


class _Loader(yaml.SafeLoader):
    """The safe loader, measuring each node's expanded size and depth as it composes."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.node_shape: dict[yaml.Node, tuple[int, int]] = {}  # node -> (expanded size, depth)
        self.alias_nodes = 0  # nodes added through aliases so far
        self.nesting = 0  # nesting of the node being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            node = self._composed(parent, index)
            shape = self.node_shape.get(node)
            if shape is None:
                raise _Refused(
                    f"alias *{event.anchor} is inside the node it names (a recursive structure)",
                    event.start_mark,
                )
            self.alias_nodes += shape[0]
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _Refused(
                    f"YAML expands to more than {MAX_ALIAS_NODES} nodes through aliases "
                    "(an alias bomb?)",
                    event.start_mark,
                )
            return node
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise _Refused(f"YAML nests deeper than {MAX_DEPTH} levels", event.start_mark)
        node = self._composed(parent, index)
        self.nesting -= 1
        if node.tag not in _SAFE_TAGS:
            raise _Refused(
                f"invalid YAML: tag {_shown_tag(node.tag)!r} is not allowed "
                "(only plain YAML is accepted: no tags)",
                node.start_mark,
            )
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        shapes = [self.node_shape[child] for child in children]
        size = 1 + sum(s for s, _ in shapes)
        depth = 1 + max((d for _, d in shapes), default=0)
        if depth > MAX_DEPTH:
            raise _Refused(f"YAML nests deeper than {MAX_DEPTH} levels", node.start_mark)
        self.node_shape[node] = (size, depth)
        return node

    def _composed(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        node = super().compose_node(parent, index)
        if node is None:  # PyYAML composes a node for every event it is asked for
            raise _Refused("invalid YAML: nothing to read", None)
        return node

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """An integer, refused unless it fits in 64 bits (signed or unsigned)."""
        try:
            value: int | None = super().construct_yaml_int(node)
        except ValueError:  # more digits than Python will convert
            value = None
        if value is None or not -(2**63) <= value < 2**64:
            raise _Refused(
                f"invalid YAML: {_short(node.value)} is not a 64-bit integer", node.start_mark
            )
        return value

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            reason = str(exc).split(";")[0]
            raise _Refused(
                f"invalid YAML: {_shown_tag(node.tag)} value {_short(node.value)} "
                f"cannot be read ({reason})",
                node.start_mark,
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _entries(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node, bool]]:
    """The mapping's entries as built: ``(key, value, explicit)``, merged keys included.

    A key the mapping sets itself wins over a merged one; among merged mappings the
    later one wins, as PyYAML builds them.
    """
    explicit = [(k, v, True) for k, v in node.value if k.tag != _MERGE]
    names = {str(k.value) for k, _, _ in explicit}
    merged: dict[str, tuple[yaml.Node, yaml.Node, bool]] = {}
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE:
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if isinstance(source, yaml.MappingNode):
                for k, v, _ in _entries(source):
                    if str(k.value) not in names:
                        merged[str(k.value)] = (k, v, False)
    return explicit + list(merged.values())


def _walk(root: yaml.Node) -> tuple[dict[KeyPath, int], list[tuple[KeyPath, int]]]:
    """The line of every key path, and the duplicate keys (path, line), in file order."""
    lines: dict[KeyPath, int] = {}
    duplicates: dict[int, tuple[KeyPath, int]] = {}  # by key node, reported once
    stack: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        children: list[tuple[yaml.Node, KeyPath]] = []
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node, explicit in _entries(node):
                key = str(key_node.value)
                child = (*path, key)
                line = key_node.start_mark.line + 1
                if explicit and key in seen:
                    duplicates.setdefault(id(key_node), (child, line))
                seen.add(key)
                lines[child] = line
                children.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, (*path, index)) for index, item in enumerate(node.value)]
        stack.extend(reversed(children))
    return lines, sorted(duplicates.values(), key=lambda d: d[1])


def parse(text: str, file: str) -> Parsed:
    """Parse YAML text safely, returning the data and the line of every key path.

    Args:
        text: The YAML source.
        file: Name shown in error messages.

    Returns:
        The data and the line of every key path.

    Raises:
        PixelpipeError: On a syntax error, a tag, a duplicate key, an alias bomb, a
            recursive alias, too deep a nesting or a value that cannot be built; each
            with the file and line.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines, duplicates = _walk(node) if node is not None else ({}, [])
        if duplicates:
            raise PixelpipeError(
                [
                    Problem("duplicate key", file=file, line=line, key=dotted(path))
                    for path, line in duplicates
                ]
            )
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise PixelpipeError(Problem(str(exc.problem), file=file, line=line)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = (exc.problem or str(exc)).strip()
        raise PixelpipeError(Problem(f"invalid YAML: {reason}", file=file, line=line)) from None
    except yaml.YAMLError as exc:
        raise PixelpipeError(Problem(f"invalid YAML: {exc}", file=file)) from None
    finally:
        loader.dispose()
    return Parsed(data=data, lines=lines)
