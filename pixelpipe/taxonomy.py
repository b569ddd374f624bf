"""Class hierarchies: the taxonomy file (``configs/taxonomy/*.yaml``) and the tree's maths.

A taxonomy is a mapping keyed by class name, so a class named twice is a duplicate key
(refused by :mod:`pixelpipe.safeyaml` with its line)::

    leaf_only: true                 # annotators must pick the most specific class
    classes:
      vehicle: {description: Anything that carries people or goods.}
      car: {parent: vehicle, synonyms: [automobile]}
      sedan: {parent: car}
      animal: {}

:func:`load` reads and checks a file and reports every problem at once, each as
``FILE:LINE classes.car.parent: message``; :func:`check` is the same as a stage's config
check. :func:`from_categories` builds the taxonomy a class map's ``parent`` fields give
(COCO's ``supercategory``). :class:`Taxonomy` answers what stages and the label maths ask:
the class a synonym names, a class's ancestors and depth, its ancestor at a depth (for
flattening), and partial credit by the depth of the lowest common ancestor.

Pure: imports only :mod:`pixelpipe.errors` and :mod:`pixelpipe.safeyaml`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from pixelpipe.errors import PixelpipeError, Problem, did_you_mean
from pixelpipe.safeyaml import KeyPath, Parsed, dotted, parse

TOP_KEYS = ("description", "leaf_only", "classes")
"""The keys of a taxonomy file."""
CLASS_KEYS = ("parent", "synonyms", "description")
"""The keys of one class."""
_SHAPE = "a taxonomy is a mapping with 'classes': class name -> {parent, synonyms, description}"


@dataclass(frozen=True)
class TaxonomyClass:
    """One class of a taxonomy.

    Attributes:
        name: The class name (what annotations and the class map should use).
        parent: The name of its parent class; ``None`` for a root.
        description: What belongs in the class, for annotators.
        synonyms: Other names of the class (old names, other tools' names).
    """

    name: str
    parent: str | None = None
    description: str = ""
    synonyms: tuple[str, ...] = ()


def _cycles(parents: Mapping[str, str | None]) -> list[list[str]]:
    """Each cycle of ``parents`` (name -> parent), once, from its first member in order.

    A parent that is not a key ends the walk (it is checked elsewhere).
    """
    rank = {name: i for i, name in enumerate(parents)}
    state: dict[str, int] = {}  # 1: on the current walk, 2: done
    found: list[list[str]] = []
    for start in parents:
        path: list[str] = []
        node: str | None = start
        while node is not None and node in parents and node not in state:
            state[node] = 1
            path.append(node)
            node = parents[node]
        if node is not None and state.get(node) == 1:
            cycle = path[path.index(node) :]
            first = min(range(len(cycle)), key=lambda i: rank[cycle[i]])
            found.append(cycle[first:] + cycle[:first])
        for name in path:
            state[name] = 2
    return found


def _arrow(cycle: list[str]) -> str:
    return " -> ".join(f"'{n}'" for n in [*cycle, cycle[0]])


@dataclass(frozen=True)
class Taxonomy:
    """A tree (or forest) of classes, with synonyms.

    Every method that takes a class name takes a synonym too. :meth:`ancestors`,
    :meth:`depth`, :meth:`at_depth`, :meth:`is_leaf` and :meth:`children` raise
    ``KeyError`` for a name that is neither (check with :meth:`canonical` first);
    :meth:`common_depth` and :meth:`credit` count an unknown name as sharing nothing.

    Attributes:
        classes: The classes by name, in file order.
        leaf_only: Whether annotators must pick a class without subclasses.
        source: The file as shown in messages (empty when built in code).

    Raises:
        ValueError: When the classes are not a forest: a key that is not its class's
            name, an unknown parent, a cycle, or a synonym that is a class or names two.
    """

    classes: Mapping[str, TaxonomyClass]
    leaf_only: bool = False
    source: str = ""
    _names: Mapping[str, str] = field(init=False, repr=False, compare=False)
    _depths: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _children: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        classes = dict(self.classes)
        names = {name: name for name in classes}
        children: dict[str, list[str]] = {name: [] for name in classes}
        for key, cls in classes.items():
            if key != cls.name:
                raise ValueError(f"class '{cls.name}' is filed under '{key}'")
            if cls.parent is not None:
                if cls.parent not in classes:
                    raise ValueError(f"class '{key}' has an unknown parent '{cls.parent}'")
                children[cls.parent].append(key)
            for synonym in cls.synonyms:
                if synonym != key and names.setdefault(synonym, key) != key:
                    raise ValueError(f"synonym '{synonym}' of '{key}' names '{names[synonym]}'")
        cycles = _cycles({name: cls.parent for name, cls in classes.items()})
        if cycles:
            raise ValueError(f"parents form a cycle: {_arrow(cycles[0])}")
        depths: dict[str, int] = {}
        for start in classes:
            path: list[str] = []
            node: str | None = start
            while node is not None and node not in depths:
                path.append(node)
                node = classes[node].parent
            depth = depths[node] if node is not None else 0
            for name in reversed(path):
                depth += 1
                depths[name] = depth
        object.__setattr__(self, "classes", MappingProxyType(classes))
        object.__setattr__(self, "_names", MappingProxyType(names))
        object.__setattr__(self, "_depths", MappingProxyType(depths))
        object.__setattr__(
            self, "_children", MappingProxyType({k: tuple(v) for k, v in children.items()})
        )

    def __reduce__(self) -> tuple[type[Taxonomy], tuple[dict[str, TaxonomyClass], bool, str]]:
        """Pickle as the constructor's arguments (a worker of the executor may get one)."""
        return (Taxonomy, (dict(self.classes), self.leaf_only, self.source))

    def _known(self, name: str) -> str:
        found = self._names.get(name)
        if found is None:
            where = f" {self.source}" if self.source else ""
            raise KeyError(f"'{name}' is not a class or synonym of the taxonomy{where}")
        return found

    def canonical(self, name: str) -> str | None:
        """The class ``name`` is (a class name, or the class a synonym names); ``None``."""
        return self._names.get(name)

    def names(self) -> list[str]:
        """Every class name, then every synonym, in file order (for did-you-mean hints)."""
        return list(self._names)

    def ancestors(self, name: str) -> list[str]:
        """The class's ancestors, root first, the class itself last (canonical names)."""
        chain: list[str] = []
        node: str | None = self._known(name)
        while node is not None:
            chain.append(node)
            node = self.classes[node].parent
        return chain[::-1]

    def depth(self, name: str) -> int:
        """How deep the class is: a root is 1, its children 2..."""
        return self._depths[self._known(name)]

    def levels(self) -> int:
        """The depth of the deepest class (0 for a taxonomy without classes)."""
        return max(self._depths.values(), default=0)

    def at_depth(self, name: str, depth: int) -> str:
        """The class's ancestor at ``depth`` (the class itself when it is no deeper).

        Raises:
            ValueError: When ``depth`` is below 1.
        """
        if depth < 1:
            raise ValueError(f"depth starts at 1 (the roots), got {depth}")
        chain = self.ancestors(name)
        return chain[min(depth, len(chain)) - 1]

    def children(self, name: str) -> tuple[str, ...]:
        """The class's direct subclasses, in file order."""
        return self._children[self._known(name)]

    def is_leaf(self, name: str) -> bool:
        """True when the class has no subclasses."""
        return not self.children(name)

    def common_depth(self, a: str, b: str) -> int:
        """The depth of the lowest common ancestor of ``a`` and ``b``; 0 when there is none."""
        if self.canonical(a) is None or self.canonical(b) is None:
            return 0
        shared = 0
        for x, y in zip(self.ancestors(a), self.ancestors(b), strict=False):
            if x != y:
                break
            shared += 1
        return shared

    def credit(self, a: str, b: str) -> float:
        """Partial credit for labelling ``b`` where ``a`` is right, or the reverse.

        ``common_depth(a, b) / max(depth(a), depth(b))``: 1.0 for the same class (or a
        synonym of it), 0.0 for classes under different roots or an unknown class.
        """
        if a == b:
            return 1.0
        first, second = self.canonical(a), self.canonical(b)
        if first is None or second is None:
            return 0.0
        if first == second:
            return 1.0
        return self.common_depth(first, second) / max(self.depth(first), self.depth(second))


class _Reader:
    """Checks a parsed taxonomy file, collecting every problem with its line and key."""

    def __init__(self, parsed: Parsed, file: str) -> None:
        self.data = parsed.data
        self.lines = parsed.lines
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, path: KeyPath, message: str) -> None:
        line, at = None, path
        while line is None:
            line = self.lines.get(at)
            if not at:
                break
            at = at[:-1]
        self.problems.append(Problem(message, file=self.file, line=line, key=dotted(path) or None))

    def read(self) -> Taxonomy:
        data = self.data
        if not isinstance(data, dict):
            self.problem((), _SHAPE)
            raise PixelpipeError(self.problems)
        for key in data:
            if str(key) not in TOP_KEYS:
                self.problem((str(key),), f"unknown key '{key}'" + did_you_mean(str(key), TOP_KEYS))
        leaf_only = data.get("leaf_only", False)
        if not isinstance(leaf_only, bool):
            self.problem(("leaf_only",), f"leaf_only is true or false, got {leaf_only!r}")
        if not isinstance(data.get("description", ""), str):
            self.problem(("description",), "description is text")
        raw = data.get("classes")
        classes: dict[str, TaxonomyClass] = {}
        if "classes" not in data:
            self.problem(("classes",), "required key is missing: " + _SHAPE)
        elif not isinstance(raw, dict):
            self.problem(("classes",), f"{_SHAPE}, got {_kind(raw)}")
        elif not raw:
            self.problem(("classes",), "no classes: name at least one class")
        else:
            classes = self._classes(raw)
        if self.problems:
            raise PixelpipeError(sorted(self.problems, key=lambda p: (p.line or 0, p.key or "")))
        return Taxonomy(classes, leaf_only=bool(leaf_only), source=self.file)

    def _classes(self, raw: dict[Any, Any]) -> dict[str, TaxonomyClass]:
        """Every well-formed class; problems with the others and between classes."""
        classes: dict[str, TaxonomyClass] = {}
        for key, value in raw.items():
            path: KeyPath = ("classes", str(key))
            if not isinstance(key, str):
                self.problem(path, f"a class name is text, got {_kind(key)} {key!r}: quote it")
            elif not key.strip():
                self.problem(path, "a class name cannot be empty")
            elif key != key.strip():
                self.problem(path, f"class name {key!r} starts or ends with a space")
            else:
                read = self._class(key, {} if value is None else value, path)
                if read is not None:
                    classes[key] = read
        owner: dict[str, str] = {}  # synonym -> the class that names it
        for name, cls in classes.items():
            for index, synonym in enumerate(cls.synonyms):
                path = ("classes", name, "synonyms", index)
                if synonym == name:
                    self.problem(path, f"synonym '{synonym}' is the class's own name")
                elif synonym in classes:
                    self.problem(path, f"synonym '{synonym}' is also a class")
                elif owner.setdefault(synonym, name) != name:
                    self.problem(path, f"synonym '{synonym}' already names '{owner[synonym]}'")
                elif synonym in cls.synonyms[:index]:
                    self.problem(path, f"synonym '{synonym}' is listed twice")
        for name, cls in classes.items():
            parent = cls.parent
            path = ("classes", name, "parent")
            if parent is None or (parent in classes and parent != name):
                continue
            if parent == name:
                self.problem(path, "a class cannot be its own parent")
            elif parent in owner:
                self.problem(path, f"parent '{parent}' is a synonym of '{owner[parent]}'")
            else:
                hint = did_you_mean(parent, classes) or "; a parent is a class of this file"
                self.problem(path, f"unknown parent '{parent}'{hint}")
        parents = {n: c.parent for n, c in classes.items() if c.parent != n}
        for cycle in _cycles(parents):
            self.problem(("classes", cycle[0], "parent"), f"parents form a cycle: {_arrow(cycle)}")
        return classes

    def _class(self, name: str, value: object, path: KeyPath) -> TaxonomyClass | None:
        """One class entry, or ``None`` when it is not a mapping."""
        if not isinstance(value, dict):
            hint = f" (did you mean {{parent: {value}}}?)" if isinstance(value, str) else ""
            self.problem(
                path, f"a class is a mapping of {', '.join(CLASS_KEYS)}, got {value!r}{hint}"
            )
            return None
        for key in value:
            if str(key) not in CLASS_KEYS:
                self.problem(
                    (*path, str(key)), f"unknown key '{key}'" + did_you_mean(str(key), CLASS_KEYS)
                )
        parent = value.get("parent")
        if parent is not None and (not isinstance(parent, str) or not parent.strip()):
            self.problem((*path, "parent"), f"a parent is a class name, got {parent!r}")
            parent = None
        description = value.get("description")
        if description is not None and not isinstance(description, str):
            self.problem((*path, "description"), f"description is text, got {description!r}")
            description = None
        return TaxonomyClass(
            name,
            parent,
            description or "",
            self._synonyms(value.get("synonyms"), (*path, "synonyms")),
        )

    def _synonyms(self, raw: object, path: KeyPath) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            hint = f" (write [{raw}])" if isinstance(raw, str) else ""
            self.problem(path, f"synonyms is a list of names, got {raw!r}{hint}")
            return ()
        kept: list[str] = []
        for index, item in enumerate(raw):
            if not isinstance(item, str) or not item.strip():
                self.problem((*path, index), f"a synonym is a name, got {item!r}")
            else:
                kept.append(item)
        return tuple(kept)


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def load(path: Path, shown: str | None = None) -> Taxonomy:
    """Read and check a taxonomy file.

    Args:
        path: The file.
        shown: Its name in messages (relative to the project root); ``path`` when omitted.

    Returns:
        The taxonomy.

    Raises:
        PixelpipeError: With every problem of the file, each with its line and key path:
            YAML that is not plain or has duplicate keys (a class named twice), unknown
            keys (with a did-you-mean), values of the wrong type, empty names, unknown
            parents, cycles, and synonyms that are classes or name two classes.
    """
    file = shown if shown is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PixelpipeError(Problem("a taxonomy is UTF-8 text", file=file)) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PixelpipeError(Problem(f"cannot read the taxonomy: {reason}", file=file)) from None
    return _Reader(parse(text, file), file).read()


def check(path: Path, shown: str) -> None:
    """The config check of a stage's ``taxonomy`` config: :func:`load`, for its errors.

    Args:
        path: The file.
        shown: Its name in messages.

    Raises:
        PixelpipeError: As :func:`load`.
    """
    load(path, shown)


class CategoryLike(Protocol):
    """What :func:`from_categories` reads of a class-map entry."""

    @property
    def name(self) -> str:
        """The class name."""

    @property
    def parent(self) -> str | None:
        """The parent's name (COCO's ``supercategory``), if any."""


def from_categories(categories: Iterable[CategoryLike], source: str = "") -> Taxonomy:
    """The taxonomy a class map's ``parent`` fields give (COCO's ``supercategory``).

    A parent equal to the class's own name (COCO's ``person`` in ``person``) or empty is
    no parent; a parent that is not a class becomes a root class of its own, placed
    before its first child. A class listed twice keeps its first entry.

    Args:
        categories: The class map (anything with ``name`` and ``parent``).
        source: What the class map is, for messages.

    Returns:
        The taxonomy, classes in class-map order.

    Raises:
        PixelpipeError: When the parents form a cycle, or a class is listed twice with
            different parents.
    """
    parents: dict[str, str | None] = {}
    problems: list[Problem] = []
    for category in categories:
        parent = category.parent or None
        parent = None if parent == category.name else parent
        first = parents.setdefault(category.name, parent)
        if first != parent:
            problems.append(
                Problem(
                    f"class '{category.name}' is listed with parents '{first}' and '{parent}'",
                    file=source or None,
                )
            )
    cycles = _cycles(parents)
    problems += [
        Problem(f"the parents of the class map form a cycle: {_arrow(c)}", file=source or None)
        for c in cycles
    ]
    if problems:
        raise PixelpipeError(problems)
    ordered: dict[str, TaxonomyClass] = {}
    for name, parent in parents.items():
        if parent is not None and parent not in parents and parent not in ordered:
            ordered[parent] = TaxonomyClass(parent)
        ordered[name] = TaxonomyClass(name, parent)
    return Taxonomy(ordered, source=source)
