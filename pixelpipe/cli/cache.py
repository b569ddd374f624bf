"""``pixelpipe cache info|gc``: the per-item cache and the object store of a project."""

from __future__ import annotations

from typing import Annotated

import typer

from pixelpipe.cli.console import out, project_root

app = typer.Typer()
cache_app = typer.Typer(
    no_args_is_help=True,
    help="The per-item cache (.pixelpipe/): what reruns reuse instead of decoding again.",
)
app.add_typer(cache_app, name="cache")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


@cache_app.command("info")
def info() -> None:
    """Where the cache is, how many results it holds and their size."""
    from pixelpipe.dataset.images import objects_dir
    from pixelpipe.engine.itemcache import max_bytes, summary

    root = project_root()
    facts = summary(root)
    out.print(
        f"{facts['path']}: {facts['entries']} results, {_size(facts['bytes'])} "
        f"({_size(facts['file_bytes'])} on disk; limit {_size(max_bytes())})"
    )
    objects = objects_dir(root)
    count = size = unlinked = 0
    if objects.is_dir():
        for path in objects.glob("*/*"):
            stat = path.stat()
            count += 1
            size += stat.st_size
            unlinked += stat.st_nlink == 1
    out.print(f"{objects}: {count} images, {_size(size)}; {unlinked} linked by nothing")


@cache_app.command("gc")
def gc(
    max_size: Annotated[
        str,
        typer.Option(
            "--max-size",
            help="Keep at most this much of results, least recently used dropped first "
            "(e.g. 500M, 20G); default PIXELPIPE_CACHE_MAX or 20G.",
        ),
    ] = "",
) -> None:
    """Trim the item cache and delete stored images that no output and no DVC cache link."""
    from pixelpipe.dataset.images import collect_objects
    from pixelpipe.engine.itemcache import gc as collect_items
    from pixelpipe.engine.itemcache import max_bytes, parse_size

    root = project_root()
    limit = parse_size(max_size, "--max-size") if max_size else max_bytes()
    done = collect_items(root, limit)
    deleted, freed = collect_objects(root)
    out.print(
        f"item cache: dropped {done['dropped']} results ({_size(done['freed'])}); "
        f"{done['entries']} left ({_size(done['bytes'])})"
    )
    out.print(f"objects: deleted {deleted} images linked by nothing ({_size(freed)})")
