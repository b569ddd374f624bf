"""Released dataset versions: release, list, checkout, get and diff (git tags + DVC).

A *version* is an annotated git tag made by :func:`release`. Its message carries, after the
user's message, trailer lines that describe the dataset it names::

    pixelpipe-stage: publish
    pixelpipe-digest: sha256:3f5a...
    pixelpipe-counts: {"annotations": 39, "removed": 0, "samples": 38, ...}
    pixelpipe-mlflow-runs: {"ingest": "9c1e...", "publish": "4d7b..."}

so listing versions needs git only. The bytes are DVC's: the tagged commit's ``dvc.lock``
names every output, and the DVC cache (or the DVC remote, which :func:`release` pushes to)
holds them.

:func:`checkout` restores the data outputs of a version into the workspace without moving
the code (git ``HEAD`` and the working tree stay as they are); a note in the git folder
(``.git/pixelpipe-checkout.json``) remembers which version is out and the files it wrote,
and :func:`checkout_head` returns to the data ``dvc.lock`` names. Neither overwrites a file
whose content is not in the DVC cache unless forced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import yaml

from pixelpipe.dataset import (
    CATEGORIES_FILE,
    INFO_FILE,
    SAMPLES_FILE,
    Dataset,
    content_digest,
)
from pixelpipe.engine.compile import DATA_DIR, DVC_FILE, REPORTS_DIR, compile_pipeline
from pixelpipe.engine.loader import DEFAULT_PIPELINE, Pipeline, load_pipeline
from pixelpipe.engine.tracking import RUN_ID_KEY
from pixelpipe.errors import PixelpipeError, did_you_mean
from pixelpipe.versions.runs import tag_runs

log = logging.getLogger("pixelpipe.versions")

HEAD = "HEAD"
WORKSPACE = "workspace"
LOCK_FILE = "dvc.lock"
MARKER_FILE = "pixelpipe-checkout.json"
TRAILER = "pixelpipe-"
_RESERVED = frozenset({HEAD, WORKSPACE})


# ---------------------------------------------------------------------------- processes


def _run(
    args: Sequence[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
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


def _failure(args: Sequence[str], result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    shown = " ".join(a for a in args if not a.startswith("-") or a in ("-a", "-r"))
    detail = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "")
    return f"`{shown}` failed: {detail.removeprefix('ERROR: ').removeprefix('error: ')}"


def git(root: Path, *args: str, stdin: str | None = None) -> str:
    """Run git in ``root``; its stdout, stripped of the final newline.

    Raises:
        PixelpipeError: With git's message when it fails.
    """
    result = _run(["git", *args], root, stdin)
    if result.returncode != 0:
        raise PixelpipeError(_failure(["git", *args], result))
    return result.stdout.rstrip("\n")


def _git_ok(root: Path, *args: str) -> str | None:
    result = _run(["git", *args], root)
    return result.stdout.rstrip("\n") if result.returncode == 0 else None


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``dvc`` (of this Python environment) in ``root``.

    Raises:
        PixelpipeError: With DVC's message when it fails and ``check`` is set.
    """
    cmd = [sys.executable, "-m", "dvc", *args]
    result = _run(cmd, root)
    if check and result.returncode != 0:
        raise PixelpipeError(_failure(["dvc", *args], result))
    return result


# ---------------------------------------------------------------------------- project


def project_root(start: Path) -> Path:
    """The DVC project folder at or above ``start``, checked to be inside a git work tree.

    Raises:
        PixelpipeError: Outside a project.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            if _git_ok(folder, "rev-parse", "--is-inside-work-tree") != "true":
                raise PixelpipeError(f"{folder} has DVC but no git; versions are git tags")
            return folder
    raise PixelpipeError(
        "not in a pixelpipe project (no .dvc folder here or above); run `pixelpipe init`"
    )


def _head(root: Path) -> str:
    commit = _git_ok(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if not commit:
        raise PixelpipeError("nothing is committed yet; commit the project first")
    return commit


def _marker_path(root: Path) -> Path:
    return root / git(root, "rev-parse", "--git-path", MARKER_FILE)


def _read_marker(root: Path) -> dict[str, Any] | None:
    path = _marker_path(root)
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_marker(root: Path, value: Mapping[str, Any]) -> None:
    path = _marker_path(root)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def checked_out(root: Path) -> str | None:
    """The version whose data :func:`checkout` put in the workspace, or ``None`` at HEAD.

    A note whose files have all changed since (the outputs were rebuilt by ``dvc repro`` or
    restored by ``dvc checkout``) no longer counts.
    """
    root = project_root(root)
    marker = _read_marker(root)
    if not marker:
        return None
    files: dict[str, list[int]] = marker.get("files") or {}
    for rel, stat in files.items():
        path = root / rel
        if path.is_file() and _stat(path) == stat:
            return str(marker["version"])
    return None if files else str(marker["version"])


def cached_outputs(dvc_yaml: str) -> list[str]:
    """Paths of the cached outputs (``outs``, and cached metrics and plots) of ``dvc.yaml``."""
    try:
        stages = (yaml.safe_load(dvc_yaml) or {}).get("stages") or {}
    except yaml.YAMLError:
        raise PixelpipeError(f"{DVC_FILE} is not valid YAML") from None
    found: list[str] = []
    for entry in stages.values():
        for section, default in (("outs", True), ("metrics", True), ("plots", True)):
            for out in entry.get(section) or []:
                if isinstance(out, str):
                    path, cache = out, default
                elif isinstance(out, dict) and len(out) == 1:
                    path, options = next(iter(out.items()))
                    cache = bool((options or {}).get("cache", default))
                else:
                    continue
                if cache:
                    found.append(str(path))
    return list(dict.fromkeys(found))


def _sink_stage(dvc_yaml: str) -> str:
    """The stage whose output is *the* dataset.

    That is the one no other stage reads (``publish`` when several are).
    """
    stages = (yaml.safe_load(dvc_yaml) or {}).get("stages") or {}
    read = {str(dep) for entry in stages.values() for dep in entry.get("deps") or []}
    sinks = [name for name in stages if f"{DATA_DIR}/{name}" not in read]
    if not sinks:
        raise PixelpipeError(f"{DVC_FILE} has no stages")
    return "publish" if "publish" in sinks else sinks[-1]


def dataset_stage(pipeline: Pipeline) -> str:
    """The stage whose output a version names.

    That is the one no other stage reads; of several, the last of kind ``publish``, else
    the last.
    """
    read = {source for planned in pipeline.stages for source in planned.spec.inputs}
    sinks = [p for p in pipeline.stages if p.name not in read]
    publishing = [p for p in sinks if p.spec.kind == "publish"]
    return (publishing or sinks)[-1].name


# ---------------------------------------------------------------------------- versions


@dataclass(frozen=True)
class Version:
    """A released version.

    Attributes:
        name: The tag.
        commit: The tagged commit.
        date: When it was released (ISO 8601).
        message: The release message.
        stage: The stage whose output is the dataset (``publish``).
        digest: The dataset's content digest.
        counts: Its counts (samples, annotations, splits, removed...).
        runs: The MLflow run id of each stage, where tracking was on.
    """

    name: str
    commit: str
    date: str
    message: str
    stage: str
    digest: str
    counts: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        """The MLflow run of the dataset's stage."""
        return self.runs.get(self.stage)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``pixelpipe versions --json``)."""
        return {**asdict(self), "mlflow_run_id": self.run_id}


def _parse_tag(name: str, commit: str, date: str, contents: str) -> Version | None:
    values: dict[str, str] = {}
    message: list[str] = []
    for line in contents.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith(TRAILER) and " " not in key:
            values[key.removeprefix(TRAILER)] = value.strip()
        elif not values:
            message.append(line)
    if "stage" not in values or "digest" not in values:
        return None
    try:
        counts = json.loads(values.get("counts", "{}"))
        runs = json.loads(values.get("mlflow-runs", "{}"))
    except ValueError:
        counts, runs = {}, {}
    return Version(
        name=name,
        commit=commit,
        date=date,
        message="\n".join(message).strip(),
        stage=values["stage"],
        digest=values["digest"],
        counts=counts if isinstance(counts, dict) else {},
        runs={str(k): str(v) for k, v in runs.items()} if isinstance(runs, dict) else {},
    )


def list_versions(root: Path) -> list[Version]:
    """The released versions, oldest first."""
    root = project_root(root)
    fields = ("refname:strip=2", "objecttype", "*objectname", "creatordate:iso-strict", "contents")
    fmt = "%1f".join(f"%({f})" for f in fields) + "%1e"
    text = git(root, "for-each-ref", "--sort=creatordate", f"--format={fmt}", "refs/tags")
    found = []
    for record in text.split("\x1e"):
        parts = record.lstrip("\n").split("\x1f")
        if len(parts) != 5 or parts[1] != "tag":
            continue
        version = _parse_tag(parts[0], parts[2], parts[3], parts[4])
        if version is not None:
            found.append(version)
    return found


def _unknown(name: str, names: Sequence[str]) -> PixelpipeError:
    hint = did_you_mean(name, names)
    if not hint:
        hint = (
            f"; released: {', '.join(names[-8:])}"
            if names
            else "; no version is released yet (`pixelpipe release VERSION`)"
        )
    return PixelpipeError(f"unknown version '{name}'{hint}")


def find_version(root: Path, name: str) -> Version:
    """The released version ``name``.

    Raises:
        PixelpipeError: With a did-you-mean when there is none.
    """
    found = list_versions(root)
    for version in found:
        if version.name == name:
            return version
    raise _unknown(name, [v.name for v in found])


def find_version_by_digest(root: Path, digest: str) -> Version | None:
    """The latest released version whose dataset has ``digest``, if any."""
    try:
        found = list_versions(root)
    except PixelpipeError:
        return None
    matches = [v for v in found if v.digest == digest]
    return matches[-1] if matches else None


# ---------------------------------------------------------------------------- release


def _check_name(root: Path, name: str) -> None:
    if name in _RESERVED or name.startswith("-") or not name.strip():
        raise PixelpipeError(f"'{name}' cannot name a version (reserved)")
    if _run(["git", "check-ref-format", f"refs/tags/{name}"], root).returncode != 0:
        raise PixelpipeError(f"'{name}' is not a valid git tag name")
    existing = _git_ok(root, "rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}")
    if existing:
        raise PixelpipeError(
            f"version '{name}' already exists (commit {existing[:12]}); a version never moves: "
            "release a new one"
        )


def _some(paths: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _check_clean(root: Path) -> None:
    status = git(root, "status", "--porcelain", "--untracked-files=normal", ".")
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    if changed:
        raise PixelpipeError(
            f"the git tree has uncommitted changes ({_some(changed)}); commit them first so "
            "the version names one exact state"
        )


def _status_reason(entry: Any) -> Iterator[str]:
    if isinstance(entry, str):
        yield entry
        return
    if not isinstance(entry, dict):
        return
    for what, changes in entry.items():
        noun = what.removeprefix("changed ")
        if not isinstance(changes, dict):
            yield f"{noun}: {changes}"
            continue
        for path, state in changes.items():
            if isinstance(state, dict):  # params: {"params.yaml": {"ingest": "modified"}}
                for key, sub in state.items():
                    yield f"params {key}: {sub}"
            else:
                yield f"{noun} {path}: {state}"


def stale_stages(root: Path) -> dict[str, list[str]]:
    """The stages ``dvc status`` reports as not up to date, with why."""
    result = dvc(root, "status", "--json")
    try:
        status = json.loads(result.stdout.strip() or "{}")
    except ValueError:
        raise PixelpipeError(f"`dvc status` printed no JSON: {result.stdout[:200]}") from None
    stale: dict[str, list[str]] = {}
    for stage, entries in status.items():
        reasons = [r for e in entries or [] for r in _status_reason(e)]
        stale[stage.rsplit(":", 1)[-1]] = reasons or ["changed"]
    return stale


def _check_up_to_date(root: Path, pipeline: Pipeline) -> None:
    stale = stale_stages(root)
    if not stale:
        return
    order = [p.name for p in pipeline.stages]
    names = sorted(stale, key=lambda s: order.index(s) if s in order else len(order))
    said = "; ".join(f"stage '{s}' ({', '.join(stale[s])})" for s in names)
    raise PixelpipeError(
        f"the pipeline is not up to date: {said}; run `dvc repro`, commit, then release"
    )


def _remote(root: Path) -> str | None:
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


def _report_run(root: Path, stage: str) -> str | None:
    path = root / REPORTS_DIR / f"{stage}.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get(RUN_ID_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


@dataclass(frozen=True)
class Release:
    """What :func:`release` did.

    Attributes:
        version: The new version.
        remote: The DVC remote the data was pushed to, if any.
        tagged_runs: How many MLflow runs got the version tag.
    """

    version: Version
    remote: str | None
    tagged_runs: int


def release(
    root: Path, name: str, message: str | None = None, pipeline_file: str = DEFAULT_PIPELINE
) -> Release:
    """Tag the committed, up-to-date state as version ``name``.

    Refuses a dirty git tree, a stale ``dvc.yaml``, a pipeline ``dvc status`` says is not
    up to date (naming the stage), and a workspace holding another version's data. Pushes
    the data to the DVC remote when one is configured (before tagging: a version never names
    data that is only local), makes the annotated tag, then tags the MLflow runs that made
    the state with the version (a warning if that fails).

    Args:
        root: The project (or a folder in it).
        name: The version: a git tag name such as ``v1.2``.
        message: The release message (the tag's first lines).
        pipeline_file: The pipeline file, relative to the project.

    Raises:
        PixelpipeError: For each refusal above, and when pushing fails.
    """
    root = project_root(root)
    _check_name(root, name)
    marker = _read_marker(root)
    if marker:
        if _changed_outputs(root):
            raise PixelpipeError(
                f"the workspace holds the data of {marker['version']} (`pixelpipe checkout`);"
                " run `pixelpipe checkout HEAD` before releasing"
            )
        _marker_path(root).unlink(missing_ok=True)  # rebuilt since (`dvc repro`): stale
    commit = _head(root)
    _check_clean(root)
    pipeline = load_pipeline(root, pipeline_file)
    compile_pipeline(pipeline, check=True)
    _check_up_to_date(root, pipeline)
    stage = dataset_stage(pipeline)
    info = Dataset(root / DATA_DIR / stage).info
    runs = {p.name: run for p in pipeline.stages if (run := _report_run(root, p.name))}
    remote = _remote(root)
    if remote:
        dvc(root, "push", "-r", remote)
    trailers = {
        "stage": stage,
        "digest": str(info["digest"]),
        "counts": json.dumps(info.get("counts", {}), sort_keys=True),
        "mlflow-runs": json.dumps(runs, sort_keys=True),
    }
    text = (message or f"dataset version {name}").strip() + "\n\n"
    text += "".join(f"{TRAILER}{k}: {v}\n" for k, v in trailers.items())
    git(root, "tag", "-a", name, commit, "-F", "-", stdin=text)
    tagged = tag_runs(root, list(runs.values()), name)
    return Release(version=find_version(root, name), remote=remote, tagged_runs=tagged)


# ---------------------------------------------------------------------------- revisions


@dataclass(frozen=True)
class Target:
    """A state to read data from: a version, a git revision, or the workspace.

    Attributes:
        root: The project.
        label: What the user named (``v1``, ``HEAD``, ``workspace``).
        commit: The git commit, or ``None`` for the workspace.
        version: The released version, when ``label`` is one.
    """

    root: Path
    label: str
    commit: str | None
    version: Version | None = None

    def read_text(self, path: str) -> str:
        """A git-tracked file (``dvc.yaml``) as of this state."""
        if self.commit is None:
            return (self.root / path).read_text(encoding="utf-8")
        return git(self.root, "show", f"{self.commit}:./{path}")

    @property
    def stage(self) -> str:
        """The stage whose output is the dataset."""
        if self.version is not None:
            return self.version.stage
        return _sink_stage(self.read_text(DVC_FILE))

    @cached_property
    def _fs(self) -> Any:
        from dvc.api import DVCFileSystem

        return DVCFileSystem(str(self.root), rev=self.commit)

    def open(self, path: str) -> IO[bytes]:
        """A DVC-tracked file of this state, from the workspace, the DVC cache or the remote."""
        if self.commit is None:
            return (self.root / path).open("rb")
        try:
            handle: IO[bytes] = self._fs.open(path, "rb")
        except Exception as exc:
            raise _fetch_error(self.label, path, exc) from None
        return handle

    def get(self, path: str, dest: Path) -> None:
        """Copy a DVC-tracked folder or file of this state to ``dest`` (which must not exist)."""
        if self.commit is None:
            source = self.root / path
            if source.is_dir():
                shutil.copytree(source, dest)
            else:
                shutil.copyfile(source, dest)
            return
        try:
            self._fs.get(path, str(dest), recursive=True)
        except Exception as exc:
            shutil.rmtree(dest, ignore_errors=True)
            raise _fetch_error(self.label, path, exc) from None


def _fetch_error(label: str, path: str, exc: Exception) -> PixelpipeError:
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return PixelpipeError(
        f"cannot read {path} of {label}: it is neither in the DVC cache nor on a reachable "
        f"DVC remote ({detail})"
    )


def resolve(root: Path, name: str, *, workspace: bool = True) -> Target:
    """A version, ``HEAD`` or any git revision, or ``workspace`` (the files as they are).

    Raises:
        PixelpipeError: With a did-you-mean among the versions when nothing has that name.
    """
    root = project_root(root)
    if name == WORKSPACE and workspace:
        return Target(root, name, None)
    found = list_versions(root)
    for version in found:
        if version.name == name:
            return Target(root, name, version.commit, version)
    if not name.startswith("-"):
        commit = _git_ok(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        if commit:
            return Target(root, name, commit)
    raise _unknown(name, [v.name for v in found])


# ---------------------------------------------------------------------------- checkout


def _files(root: Path, out: str) -> Iterator[tuple[str, Path]]:
    path = root / out
    if path.is_file():
        yield out, path
        return
    if not path.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            yield full.relative_to(root).as_posix(), full


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _cache_dir(root: Path) -> Path:
    text = dvc(root, "cache", "dir").stdout.strip().splitlines()
    return Path(text[-1]) if text else root / ".dvc" / "cache"


def _changed_outputs(root: Path) -> set[str]:
    """Outputs that ``dvc status`` says differ from ``dvc.lock`` or are missing from the cache."""
    status = json.loads(dvc(root, "status", "--json").stdout.strip() or "{}")
    changed: set[str] = set()
    for entries in status.values():
        for entry in entries or []:
            if isinstance(entry, dict):
                changed.update(str(p) for p in (entry.get("changed outs") or {}))
    return changed


def unsaved_files(root: Path, outputs: Iterable[str]) -> list[str]:
    """Files of ``outputs`` in the workspace whose content is not in the DVC cache.

    Outputs known to be unchanged since pixelpipe or DVC wrote them from the cache are not
    read; any other file is hashed and looked up in the cache, as DVC does before it
    deletes a file.
    """
    root = project_root(root)
    marker = _read_marker(root)
    suspects: list[tuple[str, Path]] = []
    if marker is not None:
        known: dict[str, list[int]] = marker.get("files", {})
        for out in outputs:
            suspects += [(rel, p) for rel, p in _files(root, out) if known.get(rel) != _stat(p)]
    else:
        changed = _changed_outputs(root)
        for out in outputs:
            if out in changed:
                suspects += list(_files(root, out))
    if not suspects:
        return []
    cache = _cache_dir(root) / "files" / "md5"
    unsaved = []
    for rel, path in suspects:
        md5 = _md5(path)
        if not (cache / md5[:2] / md5[2:]).is_file():
            unsaved.append(rel)
    return unsaved


def _refuse_unsaved(root: Path, outputs: Iterable[str], what: str) -> None:
    unsaved = unsaved_files(root, outputs)
    if unsaved:
        one = len(unsaved) == 1
        it = "it" if one else "them"
        raise PixelpipeError(
            f"unsaved changes: {_some(unsaved)} {'is' if one else 'are'} not in the DVC cache "
            f"and {what} would overwrite {it}; copy {it} elsewhere (or `dvc commit` {it} "
            f"into the pipeline's data), or pass --force to discard {it}"
        )


@dataclass(frozen=True)
class Checkout:
    """What :func:`checkout` did.

    Attributes:
        label: The version (or revision) now in the workspace; ``HEAD`` after returning.
        commit: Its commit.
        restored: The outputs written.
        removed: The outputs deleted (not part of that state).
    """

    label: str
    commit: str
    restored: list[str]
    removed: list[str]


def checkout(root: Path, name: str, *, force: bool = False) -> Checkout:
    """Put the data outputs of version ``name`` in the workspace, byte for byte.

    The code does not move: git's ``HEAD`` and working tree stay as they are. ``HEAD``
    returns to the data ``dvc.lock`` names (:func:`checkout_head`). Data comes from the DVC
    cache, else from the DVC remote.

    Args:
        root: The project.
        name: A version, or any git revision; ``HEAD`` to return.
        force: Overwrite files whose content is not in the DVC cache.

    Raises:
        PixelpipeError: On an unknown version, unsaved files, or data that cannot be fetched.
    """
    root = project_root(root)
    if name == HEAD:
        return checkout_head(root, force=force)
    target = resolve(root, name, workspace=False)
    assert target.commit is not None
    marker = _read_marker(root)
    wanted = cached_outputs(target.read_text(DVC_FILE))
    locked = _locked_outputs(target)
    current = cached_outputs((root / DVC_FILE).read_text(encoding="utf-8"))
    current = list(dict.fromkeys(current + list((marker or {}).get("outputs", []))))
    if not force:
        _refuse_unsaved(root, current, f"`pixelpipe checkout {name}`")
    _fetch_into_cache(target, wanted)
    staged: list[tuple[str, Path]] = []
    try:
        for out in wanted:
            if out not in locked:
                continue
            dest = root / out
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.checkout-{os.getpid()}")
            _remove(tmp)
            target.get(out, tmp)
            staged.append((out, tmp))
        restored = []
        for out, tmp in staged:
            _swap(tmp, root / out)
            restored.append(out)
    finally:
        for _, tmp in staged:
            _remove(tmp)
    removed = []
    for out in current:
        if out not in restored and (root / out).exists():
            _remove(root / out)
            removed.append(out)
    files = {rel: _stat(p) for out in restored for rel, p in _files(root, out)}
    _write_marker(
        root,
        {"version": name, "commit": target.commit, "outputs": restored, "files": files},
    )
    return Checkout(label=name, commit=target.commit, restored=restored, removed=removed)


def _fetch_into_cache(target: Target, outputs: Sequence[str]) -> None:
    """Download what the local DVC cache lacks of a state's data from the DVC remote.

    Checkout then copies from the cache, and the data it puts in the workspace is saved (in
    the cache), as after ``dvc pull``. Best effort: when this fails (no remote, remote down),
    copying reads what the cache has and reports what is missing.
    """
    from dvc.repo import Repo

    try:
        with Repo(str(target.root)) as repo:
            remotes = list(repo.config.get("remote") or {})
            default = (repo.config.get("core") or {}).get("remote")
            remote = default or (remotes[0] if len(remotes) == 1 else None)
            if remote and not _in_cache(Path(repo.cache.local.path), target, outputs):
                repo.fetch(revs=[target.commit], workspace=False, remote=remote)
    except Exception as exc:
        log.debug("fetching %s from the DVC remote failed: %s", target.label, exc)


def _in_cache(cache: Path, target: Target, outputs: Sequence[str]) -> bool:
    """Whether every object of the state's ``outputs`` is in the cache (``files/md5``)."""

    def has(md5: str) -> bool:
        return (cache / md5[:2] / md5[2:]).is_file()

    lock = yaml.safe_load(target.read_text(LOCK_FILE)) or {}
    for entry in (lock.get("stages") or {}).values():
        for out in entry.get("outs") or []:
            if not isinstance(out, dict) or out.get("path") not in outputs:
                continue
            md5 = str(out.get("md5", ""))
            if not md5 or not has(md5):
                return False
            if md5.endswith(".dir"):
                listing = json.loads((cache / md5[:2] / md5[2:]).read_text(encoding="utf-8"))
                if not all(has(str(item["md5"])) for item in listing):
                    return False
    return True


def _locked_outputs(target: Target) -> set[str]:
    """Outputs the state's ``dvc.lock`` records (a stage that never ran has none)."""
    try:
        lock = yaml.safe_load(target.read_text(LOCK_FILE)) or {}
    except PixelpipeError:
        return set()
    return {
        str(out["path"])
        for entry in (lock.get("stages") or {}).values()
        for out in entry.get("outs") or []
        if isinstance(out, dict) and "path" in out
    }


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _swap(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` with renames only."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        _remove(old)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        _remove(old)


def checkout_head(root: Path, *, force: bool = False) -> Checkout:
    """Return the workspace data to what ``dvc.lock`` names (``pixelpipe checkout HEAD``).

    Args:
        root: The project.
        force: Overwrite files whose content is not in the DVC cache.

    Raises:
        PixelpipeError: On unsaved files, or data neither in the cache nor on the remote.
    """
    root = project_root(root)
    marker = _read_marker(root)
    wanted = cached_outputs((root / DVC_FILE).read_text(encoding="utf-8"))
    extra = [o for o in (marker or {}).get("outputs", []) if o not in wanted]
    if not force:
        _refuse_unsaved(root, wanted + extra, "`pixelpipe checkout HEAD`")
    flags = ["--force"] if force or marker else []
    result = dvc(root, "checkout", *flags, check=False)
    if result.returncode != 0:
        if "unsaved" in (result.stderr + result.stdout):
            raise PixelpipeError(_failure(["dvc", "checkout"], result) + "; or pass --force")
        remote = _remote(root)
        if remote is None:
            raise PixelpipeError(_failure(["dvc", "checkout"], result))
        dvc(root, "pull", "-r", remote, *flags)
    removed = []
    for out in extra:
        if (root / out).exists():
            _remove(root / out)
            removed.append(out)
    if marker is not None:
        _marker_path(root).unlink(missing_ok=True)
    return Checkout(label=HEAD, commit=_head(root), restored=wanted, removed=removed)


# ---------------------------------------------------------------------------- get


@dataclass(frozen=True)
class Export:
    """What :func:`get` wrote.

    Attributes:
        label: The version or revision.
        stage: The stage whose output was exported.
        digest: The dataset's digest (checked against its contents).
        samples: Its sample count.
        path: Where it was written.
    """

    label: str
    stage: str
    digest: str
    samples: int
    path: Path


def get(root: Path, name: str, out: Path) -> Export:
    """Export the published dataset of version ``name`` to ``out``.

    The workspace is not touched.

    Args:
        root: The project.
        name: A version, a git revision, or ``workspace``.
        out: A folder that does not exist yet (or is empty).

    Raises:
        PixelpipeError: On an unknown version, a non-empty ``out``, data that cannot be
            fetched, or contents that do not match the version's digest.
    """
    target = resolve(root, name)
    stage = target.stage
    out = out.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PixelpipeError(f"{out} exists and is not an empty folder; choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.get-{os.getpid()}")
    _remove(tmp)
    try:
        target.get(f"{DATA_DIR}/{stage}", tmp)
        data = Dataset(tmp)
        digest = content_digest(data.table, data.categories)
        expected = target.version.digest if target.version else data.digest
        if digest != data.digest or digest != expected:
            raise PixelpipeError(
                f"{DATA_DIR}/{stage} of {name} does not match its digest "
                f"({digest[:19]} != {expected[:19]})"
            )
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        _remove(tmp)
    return Export(label=name, stage=stage, digest=digest, samples=len(data), path=out)


# ---------------------------------------------------------------------------- diff


@dataclass
class Snapshot:
    """The published dataset of one state, as :func:`diff` compares it.

    Attributes:
        target: Where it was read.
        stage: Its stage.
        info: Its ``dataset.json``.
        categories: Its class map (``id`` -> name).
        rows: ``id`` -> (sha256, split, annotations as sorted canonical JSON).
        removals: Removed samples by (stage, reason), over every stage upstream.
    """

    target: Target
    stage: str
    info: dict[str, Any]
    categories: dict[int, str]
    rows: dict[str, tuple[str, str, tuple[str, ...]]]
    removals: dict[tuple[str, str], int]

    def instances(self) -> Counter[int]:
        """Annotation count per category id."""
        counts: Counter[int] = Counter()
        for _, _, anns in self.rows.values():
            for ann in anns:
                counts[int(json.loads(ann)["category_id"])] += 1
        return counts


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def snapshot(root: Path, name: str) -> Snapshot:
    """Read the published dataset of a version, revision or the workspace."""
    import pyarrow.parquet as pq

    target = resolve(root, name)
    stage = target.stage
    folder = f"{DATA_DIR}/{stage}"
    with target.open(f"{folder}/{SAMPLES_FILE}") as stream:
        table = pq.read_table(stream, columns=["id", "sha256", "split", "annotations"])
    with target.open(f"{folder}/{CATEGORIES_FILE}") as stream:
        categories = {int(c["id"]): str(c["name"]) for c in json.loads(stream.read())}
    with target.open(f"{folder}/{INFO_FILE}") as stream:
        info = json.loads(stream.read())
    rows: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for batch in table.to_batches(max_chunksize=4096):
        for row in batch.to_pylist():
            anns = tuple(sorted(_canonical(a) for a in row["annotations"] or []))
            rows[row["id"]] = (row["sha256"], row["split"] or "unassigned", anns)
    removals: dict[tuple[str, str], int] = {}
    seen: set[str] = set()
    pending = [(stage, info)]
    while pending:
        current, current_info = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for reason, count in (
            current_info.get("counts", {}).get("removed_by_reason") or {}
        ).items():
            removals[(current, reason)] = int(count)
        for upstream in current_info.get("inputs") or {}:
            try:
                with target.open(f"{DATA_DIR}/{upstream}/{INFO_FILE}") as stream:
                    pending.append((upstream, json.loads(stream.read())))
            except (PixelpipeError, OSError):
                continue
    return Snapshot(target, stage, info, categories, rows, removals)


def compare(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """What changed from ``a`` to ``b``.

    Images added, removed and changed (by content), annotation changes, split moves,
    class distribution and class map, removals by stage and reason.

    Returns:
        A JSON-ready dict; id lists are sorted.
    """
    ids_a, ids_b = set(a.rows), set(b.rows)
    both = sorted(ids_a & ids_b)
    changed = [i for i in both if a.rows[i][0] != b.rows[i][0]]
    relabelled = [i for i in both if a.rows[i][2] != b.rows[i][2]]
    moved = [
        {"id": i, "from": a.rows[i][1], "to": b.rows[i][1]}
        for i in both
        if a.rows[i][1] != b.rows[i][1]
    ]
    added_instances = removed_instances = 0
    for i in relabelled:
        before, after = Counter(a.rows[i][2]), Counter(b.rows[i][2])
        added_instances += sum((after - before).values())
        removed_instances += sum((before - after).values())
    for i in ids_b - ids_a:
        added_instances += len(b.rows[i][2])
    for i in ids_a - ids_b:
        removed_instances += len(a.rows[i][2])
    count_a, count_b = a.instances(), b.instances()
    total_a, total_b = sum(count_a.values()), sum(count_b.values())
    names = {**a.categories, **b.categories}
    classes = []
    for cat in sorted(set(count_a) | set(count_b) | set(names)):
        na, nb = count_a.get(cat, 0), count_b.get(cat, 0)
        share_a = na / total_a if total_a else 0.0
        share_b = nb / total_b if total_b else 0.0
        classes.append(
            {
                "id": cat,
                "name": names.get(cat, "(not in class map)"),
                "a": na,
                "b": nb,
                "delta": nb - na,
                "share_a": round(share_a, 6),
                "share_b": round(share_b, 6),
                "share_delta": round(share_b - share_a, 6),
            }
        )
    splits_a = Counter(r[1] for r in a.rows.values())
    splits_b = Counter(r[1] for r in b.rows.values())
    removals = [
        {
            "stage": stage,
            "reason": reason,
            "a": a.removals.get((stage, reason), 0),
            "b": b.removals.get((stage, reason), 0),
        }
        for stage, reason in sorted(set(a.removals) | set(b.removals))
    ]

    def side(snap: Snapshot) -> dict[str, Any]:
        return {
            "name": snap.target.label,
            "version": snap.target.version.name if snap.target.version else None,
            "commit": snap.target.commit,
            "stage": snap.stage,
            "digest": snap.info.get("digest"),
            "samples": len(snap.rows),
            "annotations": sum(len(r[2]) for r in snap.rows.values()),
        }

    return {
        "a": side(a),
        "b": side(b),
        "identical": a.info.get("digest") == b.info.get("digest"),
        "images": {
            "added": sorted(ids_b - ids_a),
            "removed": sorted(ids_a - ids_b),
            "changed": changed,
        },
        "annotations": {
            "images_changed": relabelled,
            "instances_added": added_instances,
            "instances_removed": removed_instances,
        },
        "splits": {
            "a": dict(sorted(splits_a.items())),
            "b": dict(sorted(splits_b.items())),
            "moved": moved,
        },
        "classes": classes,
        "categories": {
            "added": sorted(
                ({"id": k, "name": v} for k, v in b.categories.items() if k not in a.categories),
                key=lambda c: c["id"],
            ),
            "removed": sorted(
                ({"id": k, "name": v} for k, v in a.categories.items() if k not in b.categories),
                key=lambda c: c["id"],
            ),
            "renamed": [
                {"id": k, "from": a.categories[k], "to": v}
                for k, v in sorted(b.categories.items())
                if k in a.categories and a.categories[k] != v
            ],
        },
        "removed_by_reason": removals,
    }


def diff(root: Path, a: str, b: str) -> dict[str, Any]:
    """Compare the published datasets of two versions (or revisions, or ``workspace``).

    Raises:
        PixelpipeError: On an unknown version or data that cannot be fetched.
    """
    resolve(root, a)
    resolve(root, b)  # both names are checked before any data is read
    return compare(snapshot(root, a), snapshot(root, b))
