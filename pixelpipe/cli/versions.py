"""``pixelpipe release|versions|checkout|get|diff``: tagged dataset versions.

The work is done by :mod:`pixelpipe.versions`; this module parses the command line and
prints. It imports nothing heavy at import time (the main CLI imports it on every call).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pixelpipe.cli.console import clean_data

app = typer.Typer()
# Wide when piped (CI logs, files): tables are not cut at 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force", help="Overwrite workspace data that is not saved in the DVC cache (it is lost)."
    ),
]


def _root() -> Path:
    return Path.cwd()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def _short(digest: str | None) -> str:
    return (digest or "")[:19]


def _splits(counts: dict[str, Any]) -> str:
    splits = counts.get("splits") or {}
    return " ".join(f"{k} {v}" for k, v in splits.items())


@app.command()
def release(
    version: Annotated[str, typer.Argument(help="The version to tag, e.g. v1.2.")],
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="What this version is.")
    ] = None,
    pipeline: Annotated[
        str, typer.Option("--pipeline", "-p", help="Pipeline file, relative to the project root.")
    ] = "pipelines/default.yaml",
) -> None:
    """Tag the committed, up-to-date dataset as VERSION (and push its data to the DVC remote)."""
    from pixelpipe.versions import release as do_release

    clean_data()
    done = do_release(_root(), version, message, pipeline)
    v = done.version
    counts = v.counts
    out.print(
        f"released [bold]{v.name}[/] at {v.commit[:12]}: {v.stage} {_short(v.digest)}, "
        f"{counts.get('samples', '?')} samples, {counts.get('annotations', '?')} annotations"
    )
    if done.remote:
        out.print(f"pushed the data to DVC remote '{done.remote}'")
    else:
        out.print("no DVC remote configured: the data is in the local DVC cache only")
    if done.tagged_runs:
        from pixelpipe.versions.runs import version_filter

        out.print(
            f"tagged {done.tagged_runs} MLflow run(s); find them with {version_filter(v.name)}"
        )
    out.print(f"share it: git push origin {v.name}")


@app.command()
def versions(json_: JsonOption = False) -> None:
    """List the released versions: tag, date, digest, counts, MLflow run."""
    from pixelpipe.versions import checked_out, list_versions

    clean_data()
    found = list_versions(_root())
    if json_:
        _print_json([v.to_json() for v in found])
        return
    if not found:
        out.print("no version released yet; `pixelpipe release VERSION` makes one")
        return
    current = checked_out(_root())
    table = Table("version", "date", "digest", "samples", "annotations", "splits", "MLflow run")
    for v in found:
        mark = " (checked out)" if v.name == current else ""
        table.add_row(
            v.name + mark,
            v.date[:19].replace("T", " "),
            _short(v.digest),
            str(v.counts.get("samples", "")),
            str(v.counts.get("annotations", "")),
            _splits(v.counts),
            v.run_id or "",
        )
    out.print(table)


@app.command()
def checkout(
    version: Annotated[str, typer.Argument(help="A version, or HEAD to return.")],
    force: ForceOption = False,
) -> None:
    """Put the data of VERSION in the workspace (the code stays); `checkout HEAD` returns."""
    from pixelpipe.versions import HEAD
    from pixelpipe.versions import checkout as do_checkout

    clean_data()
    done = do_checkout(_root(), version, force=force)
    if done.label == HEAD:
        out.print(f"the workspace data is back at HEAD ({done.commit[:12]})")
    else:
        out.print(
            f"the workspace data is now {done.label} ({done.commit[:12]}): "
            f"{', '.join(done.restored) or 'nothing'}; the code did not move"
        )
        out.print("`pixelpipe checkout HEAD` returns to the data of your commit")
    if done.removed:
        out.print(f"removed (not part of {done.label}): {', '.join(done.removed)}")


@app.command()
def get(
    version: Annotated[str, typer.Argument(help="A version (or git revision, or 'workspace').")],
    out_dir: Annotated[Path, typer.Option("--out", help="A new folder to write it to.")],
) -> None:
    """Export the published dataset of VERSION to a folder, without touching the workspace."""
    from pixelpipe.versions import get as do_get

    clean_data()
    done = do_get(_root(), version, out_dir)
    out.print(
        f"wrote {done.label} ({done.stage}, {_short(done.digest)}, {done.samples} samples) "
        f"to {out_dir}"
    )


def _examples(ids: list[Any], limit: int) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f", ... (+{len(ids) - limit})" if len(ids) > limit else "")


JsonFile = Annotated[
    Path | None,
    typer.Argument(
        help="After --json: write the JSON to this file (atomically) and print as usual.",
        show_default=False,
    ),
]


@app.command()
def diff(
    a: Annotated[
        str,
        typer.Argument(help="A version, git revision, 'workspace' or (--stats) dataset folder."),
    ],
    b: Annotated[str, typer.Argument(help="Another one.")],
    file: JsonFile = None,
    json_: Annotated[
        bool,
        typer.Option("--json", help="Print JSON instead; `--json FILE` writes it to FILE."),
    ] = False,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Test B against A for drift: class mix, boxes, image properties (the drift "
            "stage's tests and item cache).",
        ),
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="With --stats: write the HTML report here.")
    ] = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="With --stats: exit 1 when anything drifted.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Ids shown per change in the table.")] = 5,
) -> None:
    """What changed between two versions: images, labels, splits, classes, exports, removals.

    `--stats`: whether B drifted from A (the reference), test by test; `--json FILE` writes
    the verdicts to FILE.
    """
    from pixelpipe.errors import PixelpipeError

    if file is not None and not json_:
        raise PixelpipeError(f"{file}: a third argument is the file of --json; add --json")
    if not stats and (report is not None or fail_on_drift):
        raise PixelpipeError("--report and --fail-on-drift go with --stats")
    clean_data()
    if stats:
        _stats(a, b, file if json_ else None, json_ and file is None, report, fail_on_drift)
        return
    from pixelpipe.versions import diff as do_diff

    result = do_diff(_root(), a, b)
    if json_ and file is None:
        _print_json(result)
        return
    if file is not None:
        from pixelpipe.versions.drift import write_json

        write_json(file, result)
    sa, sb = result["a"], result["b"]
    out.print(
        f"[bold]{sa['name']}[/] {_short(sa['digest'])} ({sa['samples']} images, "
        f"{sa['annotations']} annotations) -> [bold]{sb['name']}[/] {_short(sb['digest'])} "
        f"({sb['samples']} images, {sb['annotations']} annotations)"
    )
    if result["identical"]:
        out.print("identical content")
        return
    images, anns, splits = result["images"], result["annotations"], result["splits"]
    table = Table("change", "count", "examples", title="images", title_justify="left")
    for label, ids in (
        ("added", images["added"]),
        ("removed", images["removed"]),
        ("changed content", images["changed"]),
        ("changed labels", anns["images_changed"]),
        ("moved split", [f"{m['id']} ({m['from']}->{m['to']})" for m in splits["moved"]]),
    ):
        table.add_row(label, str(len(ids)), _examples(ids, limit))
    out.print(table)
    out.print(
        f"annotations: +{anns['instances_added']} -{anns['instances_removed']}; "
        f"splits {_fmt_counts(splits['a'])} -> {_fmt_counts(splits['b'])}"
    )
    classes = Table(
        "id",
        "class",
        sa["name"],
        sb["name"],
        "delta",
        "share",
        title="classes",
        title_justify="left",
    )
    for c in result["classes"]:
        classes.add_row(
            str(c["id"]),
            c["name"],
            str(c["a"]),
            str(c["b"]),
            f"{c['delta']:+d}",
            f"{c['share_a']:.1%} -> {c['share_b']:.1%} ({c['share_delta'] * 100:+.1f} pt)",
        )
    out.print(classes)
    files = result["files"]
    if any(files.values()):
        exports = Table("change", "count", "examples", title="exported files", title_justify="left")
        for label in ("added", "removed", "changed"):
            exports.add_row(label, str(len(files[label])), _examples(files[label], limit))
        out.print(exports)
    cats = result["categories"]
    for c in cats["added"]:
        out.print(f"class added: {c['id']} {c['name']}")
    for c in cats["removed"]:
        out.print(f"class removed: {c['id']} {c['name']}")
    for c in cats["renamed"]:
        out.print(f"class renamed: {c['id']} {c['from']} -> {c['to']}")
    changed = [r for r in result["removed_by_reason"] if r["a"] != r["b"]]
    if changed:
        removals = Table(
            "stage", "reason", sa["name"], sb["name"], title="removed", title_justify="left"
        )
        for r in changed:
            removals.add_row(r["stage"], r["reason"], str(r["a"]), str(r["b"]))
        out.print(removals)


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


_RULES = {
    "ks": "KS",
    "chi_squared": "chi-squared",
    "wasserstein": "Wasserstein",
    "jensen_shannon": "Jensen-Shannon",
}


def verdict_line(name: str, verdict: dict[str, Any]) -> str:
    """One test's verdict: ``brightness: KS p=0.001, effect 0.42 -> drift``."""
    if verdict["test"] not in _RULES:
        return (
            f"{name}: too few values ({verdict['reference']} and {verdict['current']}) "
            "-> not tested"
        )
    return (
        f"{name}: {_RULES[verdict['test']]} p={verdict['p_value']:.2g}, effect "
        f"{verdict['effect']:.2g} -> {'drift' if verdict['drift'] else 'no drift'}"
    )


def _stats(
    a: str, b: str, file: Path | None, to_stdout: bool, report: Path | None, fail: bool
) -> None:
    """``diff --stats``: print the verdicts (or their JSON), write the files asked for."""
    from pixelpipe.versions.drift import stats, write_json

    found = stats(_root(), a, b, report=report)
    result = found.result
    if file is not None:
        write_json(file, result)
    if to_stdout:
        typer.echo(json.dumps(result, indent=1, ensure_ascii=False))
    else:
        ref, cur = found.reference, found.current
        out.print(
            f"reference [bold]{ref.label}[/] ({ref.stage}, {ref.samples} images) -> current "
            f"[bold]{cur.label}[/] ({cur.stage}, {cur.samples} images)"
        )
        out.print(verdict_line("classes", result["classes"]))
        for key, verdict in result["boxes"].items():
            out.print(verdict_line(f"boxes.{key}", verdict))
        for key, verdict in result["properties"].items():
            out.print(verdict_line(key, verdict))
        if result["properties"]:
            fetched = f", {found.fetched} images fetched from DVC" if found.fetched else ""
            out.print(
                f"image properties: {found.computed} measured, {found.reused} reused from the "
                f"item cache{fetched}"
            )
        drifted = ", ".join(result["drift"])
        out.print(f"drift in: {drifted}" if drifted else "no drift")
        if file is not None:
            out.print(f"wrote {file}")
        if report is not None:
            out.print(f"wrote {report}")
    if fail and result["drift"]:
        raise typer.Exit(1)
