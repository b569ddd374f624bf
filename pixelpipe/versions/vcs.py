"""git and DVC in subprocesses: the project root, ``HEAD``, the DVC remote, the checkout note.

Nothing here knows about versions. The checkout note is a JSON file in the git folder
(``.git/pixelpipe-checkout.json``) that :mod:`pixelpipe.versions.restore` writes and
:mod:`pixelpipe.versions.releasing` reads; this module only reads and writes it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pixelpipe.errors import PixelpipeError

log = logging.getLogger("pixelpipe.versions")

HEAD = "HEAD"
MARKER_FILE = "pixelpipe-checkout.json"


def run(
    args: Sequence[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd``, capturing its text output; no check of its exit status.

    Raises:
        PixelpipeError: When the program is not installed.
    """
    try:
        return subprocess.run(
            list(args),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise PixelpipeError(f"`{args[0]}` is not installed; pixelpipe needs git and DVC") from None


def failure(args: Sequence[str], result: subprocess.CompletedProcess[str]) -> str:
    """A one-line message for a failed command: the command (flags left out) and its error."""
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    shown = " ".join(a for a in args if not a.startswith("-") or a in ("-a", "-r"))
    detail = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "")
    return f"`{shown}` failed: {detail.removeprefix('ERROR: ').removeprefix('error: ')}"


def git(root: Path, *args: str, stdin: str | None = None) -> str:
    """Run git in ``root``; its stdout, stripped of the final newline.

    Raises:
        PixelpipeError: With git's message when it fails.
    """
    result = run(["git", *args], root, stdin)
    if result.returncode != 0:
        raise PixelpipeError(failure(["git", *args], result))
    return result.stdout.rstrip("\n")


def git_ok(root: Path, *args: str) -> str | None:
    """Run git in ``root``; its stdout, stripped of the final newline, or ``None`` if it fails."""
    result = run(["git", *args], root)
    return result.stdout.rstrip("\n") if result.returncode == 0 else None


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``dvc`` (of this Python environment) in ``root``.

    Raises:
        PixelpipeError: With DVC's message when it fails and ``check`` is set.
    """
    cmd = [sys.executable, "-m", "dvc", *args]
    result = run(cmd, root)
    if check and result.returncode != 0:
        raise PixelpipeError(failure(["dvc", *args], result))
    return result


def project_root(start: Path) -> Path:
    """The DVC project folder at or above ``start``, checked to be inside a git work tree.

    Raises:
        PixelpipeError: Outside a project.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            if git_ok(folder, "rev-parse", "--is-inside-work-tree") != "true":
                raise PixelpipeError(f"{folder} has DVC but no git; versions are git tags")
            return folder
    raise PixelpipeError(
        "not in a pixelpipe project (no .dvc folder here or above); run `pixelpipe init`"
    )


def head(root: Path) -> str:
    """The commit at ``HEAD``.

    Raises:
        PixelpipeError: When nothing is committed yet.
    """
    commit = git_ok(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if not commit:
        raise PixelpipeError("nothing is committed yet; commit the project first")
    return commit


def marker_path(root: Path) -> Path:
    """Where the checkout note is: ``pixelpipe-checkout.json`` in the git folder."""
    return root / git(root, "rev-parse", "--git-path", MARKER_FILE)


def read_marker(root: Path) -> dict[str, Any] | None:
    """The checkout note, or ``None`` when there is none (or it is unreadable)."""
    path = marker_path(root)
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_marker(root: Path, value: Mapping[str, Any]) -> None:
    """Write the checkout note (atomically, by rename)."""
    path = marker_path(root)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def default_remote(root: Path) -> str | None:
    """The DVC remote to push to: the default one, or the only one."""
    names = [
        line.split()[0] for line in dvc(root, "remote", "list").stdout.splitlines() if line.strip()
    ]
    if not names:
        return None
    result = dvc(root, "remote", "default", check=False)
    default = result.stdout.strip()
    if result.returncode == 0 and default:
        return default
    if len(names) == 1:
        return names[0]
    if names:
        log.warning(
            "several DVC remotes and no default (%s): data not pushed; "
            "set one with `dvc remote default NAME`",
            ", ".join(names),
        )
    return None
