"""The README opens with the two commands, and CI runs exactly those."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```sh\n(.+?)\n```", readme)
    assert len(commands) >= 2
    run_demo, run_tests = commands[:2]
    assert "pixelpipe demo" in run_demo and "dvc repro" in run_demo
    assert "pytest" in run_tests
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert run_demo in ci and run_tests in ci
