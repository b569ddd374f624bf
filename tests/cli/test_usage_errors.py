"""Usage mistakes: the usage line and one error line, exit 2, never a traceback (issue 11, item 17).

typer vendors click (``typer._click``), so its usage errors are no ``click.ClickException``;
``main`` catches ``typer.TyperException``, their public base class.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shell import launch

USAGE = [
    # a mistyped command names the one meant (the case in the issue)
    (
        ["relese", "v1"],
        "pixelpipe [OPTIONS] COMMAND",
        "No such command 'relese'. Did you mean 'release'?",
    ),
    # an unknown option before any command
    (["--bogus"], "pixelpipe [OPTIONS] COMMAND", "No such option: --bogus"),
    # compile with an unknown option
    (["compile", "--bogus"], "pixelpipe compile [OPTIONS]", "No such option: --bogus"),
    # run with an unknown option
    (["run", "ingest", "--bogus"], "pixelpipe run [OPTIONS]", "No such option: --bogus"),
    # stages with an unknown option
    (["stages", "--bogus"], "pixelpipe stages [OPTIONS]", "No such option: --bogus"),
    # show with an unknown option
    (["show", "data/x", "--bogus"], "pixelpipe show [OPTIONS]", "No such option: --bogus"),
    # demo with an unknown option
    (["demo", "--bogus"], "pixelpipe demo [OPTIONS]", "No such option: --bogus"),
    # init with an unknown option
    (["init", "--bogus"], "pixelpipe init [OPTIONS]", "No such option: --bogus"),
    # convert with an unknown option
    (["convert", "a", "b", "--bogus"], "pixelpipe convert [OPTIONS]", "No such option: --bogus"),
    # release with an unknown option
    (["release", "v1", "--bogus"], "pixelpipe release [OPTIONS]", "No such option: --bogus"),
    # versions with an unknown option
    (["versions", "--bogus"], "pixelpipe versions [OPTIONS]", "No such option: --bogus"),
    # checkout with an unknown option
    (["checkout", "v1", "--bogus"], "pixelpipe checkout [OPTIONS]", "No such option: --bogus"),
    # get with an unknown option
    (["get", "v1", "--bogus"], "pixelpipe get [OPTIONS]", "No such option: --bogus"),
    # diff with an unknown option
    (["diff", "v1", "v2", "--bogus"], "pixelpipe diff [OPTIONS]", "No such option: --bogus"),
    # a near miss of an option names the one meant
    (
        ["run", "ingest", "--wrkers", "2"],
        "pixelpipe run [OPTIONS]",
        "No such option: --wrkers (Possible options: --workers)",
    ),
    # a missing argument
    (["run"], "pixelpipe run [OPTIONS]", "Missing argument 'stage'."),
    # a missing required option
    (["get", "v1"], "pixelpipe get [OPTIONS]", "Missing option '--out'."),
    # a value of the wrong type
    (
        ["run", "ingest", "--workers", "many"],
        "pixelpipe run [OPTIONS]",
        "Invalid value for '--workers'",
    ),
    # an argument too many
    (
        ["versions", "extra"],
        "pixelpipe versions [OPTIONS]",
        "Got unexpected extra argument(s) (extra)",
    ),
    # a URL with credentials given where none is expected is echoed redacted
    (
        ["versions", "s3://KEY:SECRET@bucket/x"],
        "pixelpipe versions [OPTIONS]",
        "Got unexpected extra argument(s) (s3://***@bucket/x)",
    ),
]


@pytest.mark.parametrize(
    ("args", "usage", "error"), USAGE, ids=[" ".join(args) for args, _, _ in USAGE]
)
def test_a_usage_mistake_is_the_usage_line_and_the_error(
    tmp_path: Path, args: list[str], usage: str, error: str
) -> None:
    result = launch(["pixelpipe", *args], tmp_path)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"Usage: {usage}"), lines
    assert lines[1].startswith(f"error: {error}"), lines
    assert result.stdout == ""
    assert "SECRET" not in result.stderr


def test_no_command_prints_the_help() -> None:
    result = launch(["pixelpipe"], Path.cwd())
    assert result.returncode == 2, result
    assert "Usage: pixelpipe [OPTIONS] COMMAND" in result.stdout
    assert "Traceback" not in result.stderr


def test_help_exits_0() -> None:
    result = launch(["pixelpipe", "run", "--help"], Path.cwd())
    assert result.returncode == 0, result
    assert "Run one stage" in result.stdout and result.stderr == ""
