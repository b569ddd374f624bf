"""Stage kind name -> implementation.

Built-in kinds are the modules of the ``stages`` package, by module name (``dedupe`` is
``stages/dedupe.py``), discovered without importing them. Any other kind is named
``module:attr`` and imported from the project (its root is on ``sys.path``). The engine
never imports a stage module by a name written in its own code.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pixelpipe.engine.stage import StageKind
from pixelpipe.errors import PixelpipeError, did_you_mean

BUILTIN_PACKAGE = "stages"


def builtin_names() -> list[str]:
    """Short names of the built-in kinds, sorted."""
    try:
        package = importlib.import_module(BUILTIN_PACKAGE)
    except ImportError:
        return []
    return sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")
    )


def _forget_if_from_elsewhere(module: str, root: Path) -> None:
    """Drop a cached project module that was imported from another project folder."""
    cached = sys.modules.get(module)
    origin = getattr(cached, "__file__", None)
    if cached is None or origin is None or Path(origin).resolve().is_relative_to(root.resolve()):
        return
    base = root.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
        for name in [n for n in sys.modules if n == module or n.startswith(f"{module}.")]:
            del sys.modules[name]


def _import(module: str, kind: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise PixelpipeError(
                f"stage kind '{kind}': no module named '{exc.name}' "
                "(is it on the path, relative to the project root?)"
            ) from None
        raise PixelpipeError(f"stage kind '{kind}': importing {module} failed: {exc}") from None
    except Exception as exc:  # a user's module that fails at import time
        raise PixelpipeError(
            f"stage kind '{kind}': importing {module} failed: {type(exc).__name__}: {exc}"
        ) from None


def _kinds_in(module: ModuleType) -> list[StageKind[Any]]:
    return [v for v in vars(module).values() if isinstance(v, StageKind)]


def resolve(kind: str, root: Path | None = None) -> StageKind[Any]:
    """Find the stage kind named ``kind``.

    Args:
        kind: A built-in short name (``dedupe``) or ``module:attr``.
        root: The project root; a ``module:attr`` module in it wins over one cached from
            another project (a process may load several projects).

    Raises:
        PixelpipeError: With a did-you-mean when the name is unknown.
    """
    if ":" in kind:
        module_name, _, attr = kind.partition(":")
        if root is not None:
            _forget_if_from_elsewhere(module_name, root)
        module = _import(module_name, kind)
        value = getattr(module, attr, None)
        if value is None:
            names = [k for k, v in vars(module).items() if isinstance(v, StageKind)]
            raise PixelpipeError(
                f"stage kind '{kind}': module {module_name} has no '{attr}'"
                + did_you_mean(attr, names)
            )
        if not isinstance(value, StageKind):
            raise PixelpipeError(
                f"stage kind '{kind}': {attr} is a {type(value).__name__}, not a stage "
                "(decorate the step with @pixelpipe.stage)"
            )
        return value
    names = builtin_names()
    if kind not in names:
        raise PixelpipeError(
            f"unknown stage kind '{kind}'"
            + did_you_mean(kind, names)
            + ("" if did_you_mean(kind, names) else f"; built-in kinds: {', '.join(names)}")
        )
    module = _import(f"{BUILTIN_PACKAGE}.{kind}", kind)
    found = [k for k in _kinds_in(module) if k.name == kind]
    if len(found) != 1:
        raise PixelpipeError(
            f"stage kind '{kind}': {module.__name__} must define exactly one stage named "
            f"'{kind}', found {len(found)}"
        )
    return found[0]


def ensure_on_path(root: str) -> None:
    """Put the project root first on ``sys.path`` so ``module:attr`` kinds import."""
    if root not in sys.path:
        sys.path.insert(0, root)
