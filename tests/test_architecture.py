"""The package layering (pyproject's import-linter contracts), no cycles, no module over 500 lines.

The contracts run over the real tree, and over a copy of it with one deliberate violation per
row, to show each contract can fail.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pixelpipe", "stages")
MAX_LINES = 500
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the packages under ``root`` with ``root``'s pyproject."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def module_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in modules:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_the_layering_contracts_hold() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_import_cycle_between_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert module_cycles(graph) == []


def copy_tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(
            REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "templates")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "contract", "named"),
    [
        # The engine runs a stage it names: it must find kinds through the registry.
        ("pixelpipe/engine/runner.py", "import stages.dedupe", "The engine knows no", "runner"),
        # The engine reads a format itself.
        ("pixelpipe/engine/loader.py", "import pixelpipe.formats.coco", "The engine", "loader"),
        # Image maths reaching into the engine for its executor.
        ("pixelpipe/imaging/hamming.py", "import pixelpipe.engine", "is layered", "hamming"),
        # Label maths doing I/O through the dataset contract.
        ("pixelpipe/quality/boxes.py", "import pixelpipe.dataset", "is layered", "boxes"),
        # A stage that bypasses the public API.
        ("stages/publish.py", "import pixelpipe.engine.runner", "Stages import", "publish"),
        # The engine going through the public API, which imports the versions package.
        ("pixelpipe/engine/compile.py", "import pixelpipe", "is layered", "compile"),
        # A cycle between two sibling modules of the engine.
        ("pixelpipe/engine/spec.py", "import pixelpipe.engine.loader", "No import cycles", ".spec"),
        # A cycle between two helper packages of the stages.
        ("stages/_dedupe/decide.py", "import stages._validate", "No import cycles", "._dedupe"),
    ],
)
def test_a_deliberate_violation_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str, named: str
) -> None:
    root = copy_tree(tmp_path)
    if "_validate" in line:  # make it a cycle: validate's rules import the dedupe helpers too
        target = root / "stages/_validate/rules.py"
        target.write_text(target.read_text() + "\nimport stages._dedupe.decide  # noqa\n")
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert broken, result.stdout
    assert contract in result.stdout.split("Contracts:")[0]
    assert named in result.stdout


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    spec = root / "pixelpipe/engine/spec.py"
    spec.write_text(spec.read_text() + "\nimport pixelpipe.engine.loader  # noqa\n")
    code = (
        "import grimp, json, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_architecture import module_cycles\n"
        "print(json.dumps(module_cycles(grimp.build_graph('pixelpipe', 'stages', cache_dir=None))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "pixelpipe.engine.loader" in result.stdout and "pixelpipe.engine.spec" in result.stdout


def python_files() -> list[Path]:
    return sorted(p for name in PACKAGES for p in (REPO / name).rglob("*.py"))


def test_no_module_over_500_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in python_files()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_package_says_what_it_owns() -> None:
    for init in sorted((REPO / "pixelpipe").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 15, f"{init.relative_to(REPO)} needs a docstring"
