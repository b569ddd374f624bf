"""The ``pixelpipe`` command: one typer app made of one module per command group.

``pipeline`` (compile, run, stages, show), ``project`` (init, demo), ``convert``,
``quality`` (agreement, consensus), ``review`` (import),
``versions`` (release, versions, checkout, get, diff) and ``cache`` (info, gc); ``console``
holds what they share.
This package is the top of the import graph: it may import every other part of pixelpipe,
and nothing imports it. Commands import their work lazily, so ``pixelpipe --help`` is fast.

What the command prints when something goes wrong: a user mistake (:class:`PixelpipeError`)
one ``error:`` line per problem, exit 1; a usage mistake (unknown command or option, missing
argument) the usage line and one ``error:`` line with typer's did-you-mean, exit 2; anything
else its traceback, exit 1. All of it, and every log line, goes through
:func:`pixelpipe.errors.redact`, so no credential is ever printed, ``PIXELPIPE_DEBUG=1``
(tracebacks of user mistakes too) included.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

import typer
from rich.console import Console
from rich.logging import RichHandler

from pixelpipe.cli import cache, convert, pipeline, project, quality, review, versions
from pixelpipe.errors import PixelpipeError, RedactingFormatter, redact

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Declarative, versioned pipelines for computer-vision datasets.",
    pretty_exceptions_enable=False,
)
for group in (pipeline, project, convert, quality, versions, cache):
    app.add_typer(group.app)
app.add_typer(review.app)  # a group of its own: `pixelpipe review import`


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
        handler.setFormatter(RedactingFormatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RedactingFormatter("%(name)s: %(message)s"))
    root.addHandler(handler)


def _print_traceback() -> None:
    print(redact(traceback.format_exc()), end="", file=sys.stderr)


def _usage_error(exc: typer.TyperException) -> int:
    """Print typer's error (a usage mistake: the usage line, then one ``error:`` line).

    Returns:
        Its exit code: 2 for a usage mistake.
    """
    # `pixelpipe` alone: typer printed the help already (typer's own check, by class name,
    # as its rich_utils does: the class lives in typer's private vendored click).
    if type(exc).__name__ != "NoArgsIsHelpError":
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            print(ctx.get_usage(), file=sys.stderr)
        print(f"error: {redact(exc.format_message())}", file=sys.stderr)
    return exc.exit_code


def main() -> None:
    """Entry point: user mistakes print one line each and exit 1, without a traceback.

    Usage mistakes (typer's vendored click errors, all :class:`typer.TyperException`) print
    the usage line and the error, and exit 2.
    """
    debug = bool(os.environ.get("PIXELPIPE_DEBUG"))
    _setup_logging(verbose=debug)
    try:
        code = app(standalone_mode=False)
    except PixelpipeError as exc:
        if debug:
            _print_traceback()
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
    except typer.TyperException as exc:
        sys.exit(_usage_error(exc))
    except Exception:  # a bug: its traceback, with no credential in it
        _print_traceback()
        sys.exit(1)
    # Without standalone mode, typer returns the code of a `typer.Exit` instead of raising.
    sys.exit(code if isinstance(code, int) else 0)
