"""What every command group shares: the output consoles, the project root, common options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
# Tables printed into a pipe or a file are not squeezed to 80 columns.
wide = out if out.is_terminal else Console(highlight=False, width=140)
PipelineOption = Annotated[
    str, typer.Option("--pipeline", "-p", help="Pipeline file, relative to the project root.")
]


def project_root() -> Path:
    """The project the command works on: the current directory."""
    return Path.cwd()
