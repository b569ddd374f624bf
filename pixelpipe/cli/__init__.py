"""The ``pixelpipe`` command: one typer app made of one module per command group.

``pipeline`` (compile, run, stages, show), ``project`` (init, demo), ``convert`` and
``versions`` (release, versions, checkout, get, diff); ``console`` holds what they share.
This package is the top of the import graph: it may import every other part of pixelpipe,
and nothing imports it. Commands import their work lazily, so ``pixelpipe --help`` is fast.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

import typer
from rich.console import Console
from rich.logging import RichHandler

from pixelpipe.cli import convert, pipeline, project, versions
from pixelpipe.errors import PixelpipeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Declarative, versioned pipelines for computer-vision datasets.",
    pretty_exceptions_enable=False,
)
for group in (pipeline, project, convert, versions):
    app.add_typer(group.app)


def _setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger("pixelpipe")
    root.setLevel(level)
    root.handlers.clear()
    root.propagate = False
    if sys.stderr.isatty() and not os.environ.get("CI"):
        handler: logging.Handler = RichHandler(
            console=Console(stderr=True), show_path=False, show_time=False
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root.addHandler(handler)


def main() -> None:
    """Entry point: user mistakes print one line each and exit 1, without a traceback."""
    _setup_logging(verbose=bool(os.environ.get("PIXELPIPE_DEBUG")))
    try:
        app(standalone_mode=False)
    except PixelpipeError as exc:
        if os.environ.get("PIXELPIPE_DEBUG"):
            traceback.print_exc()
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
