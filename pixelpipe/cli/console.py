"""What every command group shares: the output consoles, the project root, common options."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from pixelpipe.engine.workspace import Leftover

out = Console(highlight=False, soft_wrap=True)
# Tables printed into a pipe or a file are not squeezed to 80 columns.
wide = out if out.is_terminal else Console(highlight=False, width=140)
PipelineOption = Annotated[
    str, typer.Option("--pipeline", "-p", help="Pipeline file, relative to the project root.")
]


def project_root() -> Path:
    """The project the command works on: the current directory."""
    return Path.cwd()


def clean_data(announce: bool = True) -> list[Leftover]:
    """Clean up after killed runs in the project's ``data/`` (first thing in a data command).

    See :mod:`pixelpipe.engine.workspace`: the folders of dead processes go, an interrupted
    swap gets its previous output back, folders of running processes stay.

    Args:
        announce: Log a line per leftover (``pixelpipe show`` prints them instead).

    Returns:
        The leftovers found, and what was done to each.
    """
    from pixelpipe.engine.compile import DATA_DIR
    from pixelpipe.engine.workspace import clean_leftovers

    found = clean_leftovers(project_root() / DATA_DIR)
    if announce:
        for leftover in found:
            logging.getLogger("pixelpipe.workspace").info("%s", leftover)
    return found
