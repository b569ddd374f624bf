"""The default pipeline end to end with ``dvc repro``: time, CPU, memory and disk, per design.

Makes ``--count`` synthetic images from the real photos (``make_synthetic.py``: class
folders, 2% planted near-duplicates) and 1% more (new, distinct images), then for each
design makes a fresh project (``pixelpipe init``, ``ingest.source`` pointed at its own
hard-linked copy of the images, ``format: imagefolder``, ``pixelpipe compile``) and
measures, with real DVC as a subprocess:

- the full ``dvc repro``; a no-op ``dvc status`` and ``dvc repro``; ``dvc repro`` after
  the 1% new images are added to the source folder;
- for each: wall and CPU seconds (``getrusage`` of the children), peak memory of the
  process tree, and per stage its wall, CPU, peak memory, start-up / work / tail (output
  and MLflow) / exit seconds, the ``done in`` lines and the item-cache reuse counts;
- disk after each run: the source, ``data/``, ``.dvc/cache``, ``.pixelpipe/`` and the
  MLflow store, every inode counted once (hard links), bytes stored per source byte, and
  the files under each ``data/STAGE`` (what DVC tracks);
- each stage's output digest, to show that the designs give the same datasets.

Designs: ``today`` = ``PIXELPIPE_CACHE=off`` for every command and DVC's default cache
type; ``new`` = the per-item cache on and ``cache.type = reflink,hardlink,copy`` (unless
``pixelpipe init`` set one already). Plain-library baselines run in the same process on the
same images (one process, CPU seconds): copying the files, ``Image.open(p).load()``,
``imagehash.phash`` and the project's albumentations recipe on a sample (decode, transform,
JPEG encode). Prints one JSON object. Stages run with ``PIXELPIPE_WORKERS`` (2) workers and
MLflow tracking on (what users run).

    .venv/bin/python benchmarks/bench_pipeline.py --count 2000
    .venv/bin/python benchmarks/bench_pipeline.py --count 50000 --workdir /tmp/bench --keep
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from _procwatch import Watched, watch
from make_synthetic import DEFAULT_PHOTOS, Recipe, find_photos, generate
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DESIGNS = ("new", "today")
NEW_CACHE_TYPE = "reflink,hardlink,copy"
BASELINE_FOR = {  # the plain-library work closest to each stage's
    "ingest": "copy",
    "dedupe": "phash",
    "validate": "decode",
    "augment": "albumentations",
    "publish": "copy",
}


def link_tree(source: Path, target: Path) -> int:
    """Hard-link every file of ``source`` into ``target`` (folders made); returns files."""
    count = 0
    for folder, _, names in os.walk(source):
        out = target / Path(folder).relative_to(source)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.link(Path(folder) / name, out / name)
            count += 1
    return count


def image_files(folder: Path) -> list[Path]:
    """The JPEGs under ``folder``, sorted."""
    return sorted(p for p in folder.rglob("*.jpg") if p.is_file())


def tree_bytes(paths: list[Path], seen: set[tuple[int, int]]) -> tuple[int, int]:
    """Bytes and files under ``paths`` whose inode is not in ``seen`` (which it extends)."""
    total = files = 0
    for top in paths:
        if not top.exists():
            continue
        if top.is_file():
            found = [str(top)]
        else:
            found = [os.path.join(d, n) for d, _, names in os.walk(top) for n in names]
        for path in found:
            st = os.lstat(path)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_size
            files += 1
    return total, files


def disk(project: Path, source: Path) -> dict[str, Any]:
    """Bytes of each area (inodes once per area) and of the project (inodes once overall)."""
    areas = {
        "data": [project / "data"],
        "dvc_cache": [project / ".dvc" / "cache"],
        "pixelpipe": [project / ".pixelpipe"],
        "mlflow": [project / "mlflow.db", project / "mlruns"],
    }
    source_seen: set[tuple[int, int]] = set()
    source_bytes, source_files = tree_bytes([source], source_seen)
    out: dict[str, Any] = {"source_bytes": source_bytes, "source_files": source_files}
    for name, paths in areas.items():
        out[f"{name}_bytes"] = tree_bytes(paths, set())[0]
    project_seen = set(source_seen)  # a byte shared with the source costs nothing more
    stored, _ = tree_bytes([p for paths in areas.values() for p in paths], project_seen)
    out["project_bytes_once"] = stored
    out["stored_per_source_byte"] = round(stored / source_bytes, 3) if source_bytes else None
    out["bytes_per_output"] = {
        d.name: tree_bytes([d], set())[0]
        for d in sorted((project / "data").iterdir())
        if d.is_dir()
    }
    pixelpipe_dir = project / ".pixelpipe"
    if pixelpipe_dir.is_dir():
        out["pixelpipe_bytes_per_folder"] = {
            d.name: tree_bytes([d], set())[0] for d in sorted(pixelpipe_dir.iterdir())
        }
    objects = [p for p in (pixelpipe_dir / "objects").rglob("*") if p.is_file()]
    alone = [p.stat().st_size for p in objects if p.stat().st_nlink == 1]
    out["objects_linked_nowhere"] = {"files": len(alone), "bytes": sum(alone)}
    out["files_per_output"] = {
        d.name: sum(len(names) for _, _, names in os.walk(d))
        for d in sorted((project / "data").iterdir())
        if d.is_dir()
    }
    out["dvc_cache_files"] = sum(len(n) for _, _, n in os.walk(project / ".dvc" / "cache"))
    return out


def digests(project: Path) -> dict[str, str]:
    """The content digest of each stage output."""
    out = {}
    for info in sorted((project / "data").glob("*/dataset.json")):
        out[info.parent.name] = json.loads(info.read_text())["digest"]
    return out


def summarize(run: Watched, with_stages: bool = True) -> dict[str, Any]:
    """The JSON of one measured command."""
    out: dict[str, Any] = {
        "ok": run.returncode == 0,
        "wall_s": round(run.wall_s, 2),
        "cpu_s": round(run.cpu_s, 2),
        "peak_rss_mb": round(run.peak_rss / 2**20, 1),
    }
    if run.returncode != 0:
        out["returncode"] = run.returncode
        out["output_tail"] = run.tail()
    if with_stages:
        stages = run.stages()
        out["dvc"] = run.dvc_stages()
        out["stages"] = stages
        out["outside_stages_s"] = round(run.wall_s - sum(s["wall_s"] for s in stages.values()), 2)
        out["stages_tail_s"] = round(sum(s["tail_s"] or 0.0 for s in stages.values()), 2)
    return out


def code_snapshot() -> dict[str, str]:
    """sha256 of every module of ``stages/`` and ``pixelpipe/`` (the item cache's code
    version covers them: an edit while the benchmark runs makes the cache miss)."""
    return {
        str(p.relative_to(REPO)): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in ("stages", "pixelpipe")
        for p in sorted((REPO / folder).rglob("*.py"))
    }


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Modules added, removed or edited between two snapshots."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def run_checked(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a set-up command; its stdout, or an exit with its output."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def make_project(design: str, root: Path, source: Path, env: dict[str, str]) -> dict[str, Any]:
    """``pixelpipe init`` + source + DVC cache type + ``pixelpipe compile``."""
    project = root / "project"
    run_checked(["pixelpipe", "init", str(project)], root, env)
    params_path = project / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["ingest"]["source"] = str(source)
    params["ingest"]["format"] = "imagefolder"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    got = subprocess.run(
        ["dvc", "config", "cache.type"], cwd=project, env=env, capture_output=True, text=True
    )
    from_init = got.stdout.strip().strip("[]").replace("'", "").replace(" ", "") or None
    from_init = from_init if got.returncode == 0 else None
    if design == "new" and from_init is None:
        run_checked(["dvc", "config", "cache.type", NEW_CACHE_TYPE], project, env)
    if design == "today" and from_init is not None:
        run_checked(["dvc", "config", "--unset", "cache.type"], project, env)
    run_checked(["pixelpipe", "compile"], project, env)
    return {
        "cache_type_from_init": from_init,
        "cache_type": NEW_CACHE_TYPE if design == "new" else "(DVC default: reflink,copy)",
        "item_cache": "off" if design == "today" else "on",
    }


def run_design(
    design: str, workdir: Path, base: Path, extra: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Set up one design's project and measure its runs."""
    root = workdir / design
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    source = root / "source"
    link_tree(base, source)
    if design == "today":
        env = {**env, "PIXELPIPE_CACHE": "off"}
    else:
        env = {k: v for k, v in env.items() if k != "PIXELPIPE_CACHE"}
    out: dict[str, Any] = {"setup": make_project(design, root, source, env)}
    project = root / "project"
    code = [code_snapshot()]
    full = watch(["dvc", "repro"], project, env)
    code.append(code_snapshot())
    out["full"] = summarize(full)
    out["code_edited_during_full"] = changed(*code)
    if full.returncode != 0:
        return out
    out["full"]["disk"] = disk(project, source)
    out["full"]["digests"] = digests(project)
    out["noop_status"] = summarize(watch(["dvc", "status"], project, env), with_stages=False)
    noop = watch(["dvc", "repro"], project, env)
    out["noop_repro"] = summarize(noop)
    out["added_files"] = link_tree(extra, source)
    added = watch(["dvc", "repro"], project, env)
    code.append(code_snapshot())
    out["plus_1_percent"] = summarize(added)
    out["code_edited_since_full"] = changed(code[0], code[-1])  # then the item cache misses
    if added.returncode == 0:
        out["plus_1_percent"]["disk"] = disk(project, source)
        out["plus_1_percent"]["digests"] = digests(project)
    return out


def _timed(fn: Callable[[Path], object], files: list[Path]) -> dict[str, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    for path in files:
        fn(path)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "images": len(files),
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "cpu_ms_per_image": round(1000 * cpu / len(files), 3) if files else None,
    }


def baselines(files: list[Path], sample: int, recipe: Path, workdir: Path) -> dict[str, Any]:
    """Plain-library work on the same images, one process: CPU seconds."""
    import albumentations as A  # type: ignore[import-untyped]
    import imagehash
    import numpy as np

    for path in files:  # a warm page cache, as for the stages
        path.read_bytes()
    copies = workdir / "baseline-copy"
    copies.mkdir(parents=True, exist_ok=True)

    def copy(path: Path) -> None:
        shutil.copyfile(path, copies / f"{path.parent.name}-{path.name}")

    def decode(path: Path) -> None:
        with Image.open(path) as image:
            image.load()

    def phash(path: Path) -> None:
        with Image.open(path) as image:
            imagehash.phash(image)

    transform = A.load(str(recipe), data_format="yaml")

    def augment(path: Path) -> None:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        made = transform(image=pixels)["image"]
        Image.fromarray(made).save(copies / "augmented.jpg", "JPEG", quality=95)

    out = {
        "copy": _timed(copy, files),
        "decode": _timed(decode, files),
        "phash": _timed(phash, files),
        "albumentations": _timed(augment, files[:: max(1, len(files) // sample)][:sample]),
    }
    shutil.rmtree(copies, ignore_errors=True)
    for entry in out.values():  # extrapolated to all the images
        entry["cpu_s_all_images"] = round(entry["cpu_ms_per_image"] * len(files) / 1000, 2)
    return out


def versus(design: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Each stage of the full run beside the plain-library work it does."""
    out = {}
    for stage, numbers in design.get("full", {}).get("stages", {}).items():
        name = BASELINE_FOR.get(stage)
        if name is None:
            continue
        ref = base[name]["cpu_s_all_images"]
        out[stage] = {
            "stage_cpu_s": numbers["cpu_s"],
            "stage_wall_s": numbers["wall_s"],
            "baseline": name,
            "baseline_cpu_s": ref,
            "stage_cpu_over_baseline": round(numbers["cpu_s"] / ref, 2) if ref else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="distinct synthetic images")
    parser.add_argument("--designs", default=",".join(DESIGNS), help="comma-separated")
    parser.add_argument("--workdir", type=Path, help="where to work (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--workers", type=int, default=2, help="PIXELPIPE_WORKERS")
    parser.add_argument("--gen-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--near-duplicates", type=float, default=0.02)
    parser.add_argument("--added", type=float, default=0.01, help="fraction of new images")
    parser.add_argument("--augment-sample", type=int, default=200)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    args = parser.parse_args()
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    unknown = sorted(set(designs) - set(DESIGNS))
    if unknown:
        parser.error(f"unknown designs {unknown}; use {', '.join(DESIGNS)}")

    temp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="pixelpipe-bench-")) if temp else args.workdir
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PIXELPIPE_WORKERS": str(args.workers),
    }
    load_before = os.getloadavg()
    photos = find_photos(args.photos)
    base, extra = workdir / "images", workdir / "added"
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(extra, ignore_errors=True)
    added = max(1, round(args.count * args.added))
    made = {}
    for folder, start, count in ((base, 0, args.count), (extra, args.count, added)):
        recipe = Recipe(photos=photos, out=str(folder), near=args.near_duplicates)
        written, seconds = generate(recipe, start, count, args.gen_workers)
        files = written.images + written.duplicates
        made[folder.name] = {
            "images": written.images,
            "near_duplicates": written.duplicates,
            "bytes": written.bytes,
            "images_per_s": round(files / seconds, 1),
        }
    report: dict[str, Any] = {
        "benchmark": "pipeline",
        "count": args.count,
        "synthetic": made,
        "workers": args.workers,
        "tracking": "on",
    }
    recipe_file = REPO / "configs/augment/default.yaml"
    base_files = image_files(base)
    if not args.no_baselines:
        report["baselines"] = baselines(base_files, args.augment_sample, recipe_file, workdir)
    report["designs"] = {}
    for design in designs:
        try:
            result = run_design(design, workdir, base, extra, env)
        except (SystemExit, Exception) as exc:  # a set-up failure: report it, go on
            result = {"error": f"{type(exc).__name__}: {exc}"}
        report["designs"][design] = result
        if "baselines" in report:
            result["vs_baselines"] = versus(result, report["baselines"])
    if len(designs) > 1:
        same: dict[str, bool | None] = {}
        for run in ("full", "plus_1_percent"):
            found = [r.get(run, {}).get("digests") for r in report["designs"].values()]
            same[run] = None if None in found else all(d == found[0] for d in found)
        report["same_digests_across_designs"] = same
    report.update(
        {
            "workdir": str(workdir) if args.keep or not temp else None,
            "cpus": os.cpu_count(),
            "load_avg_1m_before_after": [load_before[0], os.getloadavg()[0]],
            "python": platform.python_version(),
            "dvc": run_checked(["dvc", "--version"], workdir, env).strip(),
        }
    )
    if temp and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
