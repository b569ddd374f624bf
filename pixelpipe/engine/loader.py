"""Pipeline file + ``params.yaml`` -> a validated, ordered :class:`Pipeline`.

Every problem is collected and reported at once, each as ``FILE:LINE key.path: message``,
with a did-you-mean for unknown stage kinds, input stages, config names and keys.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pixelpipe.engine.registry import ensure_on_path, resolve
from pixelpipe.engine.spec import RESERVED_NAMES, STAGE_NAME, PipelineSpec, StageSpec
from pixelpipe.engine.stage import Dependency, StageKind, StageParams
from pixelpipe.engine.yamlio import KeyPath, Located, load_file
from pixelpipe.errors import PixelpipeError, Problem, did_you_mean

DEFAULT_PIPELINE = "pipelines/default.yaml"
PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class PlannedStage:
    """A stage with its kind resolved and its params validated.

    Attributes:
        name: Stage name.
        spec: Its entry in the pipeline file.
        kind: The resolved kind.
        params: Validated params (defaults filled in).
    """

    name: str
    spec: StageSpec
    kind: StageKind[Any]
    params: StageParams


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline.

    Attributes:
        root: The project root.
        file: The pipeline file, relative to the root.
        stages: The stages in dependency order (file order where free).
        params_file: The params file (``params.yaml`` unless the pipeline names another).
    """

    root: Path
    file: str
    stages: list[PlannedStage]
    params_file: str = PARAMS_FILE

    def stage(self, name: str) -> PlannedStage:
        """The stage called ``name``.

        Raises:
            PixelpipeError: With a did-you-mean when there is none.
        """
        for planned in self.stages:
            if planned.name == name:
                return planned
        names = [s.name for s in self.stages]
        raise PixelpipeError(f"{self.file}: no stage named '{name}'" + did_you_mean(name, names))


def _inner_model(annotation: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose fields are valid at ``loc`` below ``annotation``."""
    current: Any = annotation
    for part in loc:
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif origin in (dict, list) or origin is typing.Union or origin is types.UnionType:
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[-1] if args else None
        else:
            return None
    while typing.get_origin(current) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(current) if a is not type(None)]
        current = args[0] if args else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def validation_problems(
    exc: ValidationError, model: type[BaseModel], doc: Located, prefix: KeyPath = ()
) -> list[Problem]:
    """Turn pydantic's errors into located problems, with did-you-mean for unknown keys."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            parent = _inner_model(model, loc[:-1])
            known = list(parent.model_fields) if parent else []
            message = f"unknown key '{loc[-1]}'" + did_you_mean(str(loc[-1]), known)
            if parent and not did_you_mean(str(loc[-1]), known):
                message += f"; expected one of: {', '.join(known)}"
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = error["msg"][0].lower() + error["msg"][1:]
            if "input" in error and not isinstance(error["input"], dict | list):
                message += f", got {error['input']!r}"
        problems.append(doc.problem(loc, message, prefix))
    return problems


def _order(specs: dict[str, StageSpec]) -> tuple[list[str], list[str]]:
    """Topological order (stable by file order), and one cycle if there is any."""
    names = list(specs)
    done: list[str] = []
    remaining = list(names)
    while remaining:
        ready = [n for n in remaining if all(i in done for i in specs[n].inputs if i in specs)]
        if not ready:
            break
        done.append(ready[0])
        remaining.remove(ready[0])
    if not remaining:
        return done, []
    # Walk inputs from a stuck stage until a name repeats: that is a cycle.
    path = [remaining[0]]
    while True:
        nxt = next(i for i in specs[path[-1]].inputs if i in remaining)
        if nxt in path:
            return done, [*path[path.index(nxt) :], nxt]
        path.append(nxt)


def _check_configs(
    name: str, spec: StageSpec, kind: StageKind[Any], root: Path, doc: Located
) -> Iterable[Problem]:
    for config, value in spec.configs.items():
        key = ("stages", name, "configs", config)
        if config not in kind.configs:
            yield doc.problem(
                key,
                f"stage kind '{spec.kind}' reads no config '{config}'"
                + (
                    did_you_mean(config, kind.configs)
                    or (f"; it reads: {', '.join(kind.configs)}" if kind.configs else "")
                ),
            )
        elif not (root / value).is_file():
            yield doc.problem(key, f"config file not found: {value}")
        elif config in kind.config_checks:
            try:
                kind.config_checks[config](root / value, value)
            except PixelpipeError as exc:
                yield from exc.problems
    for config, description in kind.configs.items():
        if config not in spec.configs:
            yield doc.problem(
                ("stages", name, "configs"),
                f"stage kind '{spec.kind}' needs config '{config}' ({description})",
            )


def load_pipeline(root: Path, pipeline_file: str = DEFAULT_PIPELINE) -> Pipeline:
    """Load and validate a pipeline and its params.

    Args:
        root: The project root.
        pipeline_file: The pipeline file, relative to ``root``.

    Raises:
        PixelpipeError: With every problem found in the pipeline file and ``params.yaml``.
    """
    ensure_on_path(str(root))
    doc = load_file(root / pipeline_file, pipeline_file)
    problems: list[Problem] = []
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise PixelpipeError(
            doc.problem(
                ("stages",) if isinstance(data, dict) else (),
                "a pipeline needs a 'stages' mapping of name -> stage",
            )
        )
    params_file = PARAMS_FILE
    try:
        top = PipelineSpec.model_validate(
            {k: v for k, v in data.items() if k != "stages"} | {"stages": {}}
        )
        params_file = top.params
    except ValidationError as exc:
        problems += validation_problems(exc, PipelineSpec, doc)

    specs: dict[str, StageSpec] = {}
    for name, raw in data["stages"].items():
        name = str(name)
        if not STAGE_NAME.match(name):
            problems.append(
                doc.problem(("stages", name), "stage names use letters, digits, '-' and '_' only")
            )
        elif name in RESERVED_NAMES:
            problems.append(
                doc.problem(
                    ("stages", name), f"'{name}' is reserved (data/{name} holds source data)"
                )
            )
        try:
            specs[name] = StageSpec.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            problems += validation_problems(exc, StageSpec, doc, ("stages", name))

    kinds: dict[str, StageKind[Any]] = {}
    for name, spec in specs.items():
        try:
            kinds[name] = resolve(spec.kind, root)
        except PixelpipeError as exc:
            problems += [doc.problem(("stages", name, "kind"), p.message) for p in exc.problems]
    for name, spec in specs.items():
        for index, source in enumerate(spec.inputs):
            key = ("stages", name, "inputs", index)
            if source == name:
                problems.append(doc.problem(key, "a stage cannot read its own output"))
            elif source not in data["stages"]:
                problems.append(
                    doc.problem(key, f"no stage named '{source}'" + did_you_mean(source, specs))
                )
        kind = kinds.get(name)
        if kind is None:
            continue
        count = len(spec.inputs)
        if count < kind.min_inputs or (kind.max_inputs is not None and count > kind.max_inputs):
            want = (
                "no inputs"
                if kind.max_inputs == 0
                else f"{kind.min_inputs} input(s)"
                if kind.min_inputs == kind.max_inputs
                else f"at least {kind.min_inputs} input(s)"
                if kind.max_inputs is None
                else f"{kind.min_inputs} to {kind.max_inputs} inputs"
            )
            problems.append(
                doc.problem(
                    ("stages", name, "inputs"),
                    f"stage kind '{spec.kind}' takes {want}, got {count}",
                )
            )
        problems += _check_configs(name, spec, kind, root, doc)
    order, cycle = _order(specs)
    if cycle:
        problems.append(
            doc.problem(
                ("stages", cycle[0], "inputs"), "inputs form a cycle: " + " -> ".join(cycle)
            )
        )

    params, param_problems = _load_params(root, specs, kinds, params_file)
    problems += param_problems
    if problems:
        raise PixelpipeError(problems)
    return Pipeline(
        root=root,
        file=pipeline_file,
        stages=[PlannedStage(n, specs[n], kinds[n], params[n]) for n in order],
        params_file=params_file,
    )


def _load_params(
    root: Path,
    specs: dict[str, StageSpec],
    kinds: dict[str, StageKind[Any]],
    params_file: str = PARAMS_FILE,
) -> tuple[dict[str, StageParams], list[Problem]]:
    problems: list[Problem] = []
    doc = load_file(root / params_file, params_file) if (root / params_file).exists() else None
    values = doc.data if doc is not None else {}
    if doc is not None and not isinstance(values, dict):
        return {}, [doc.problem((), f"{params_file} must be a mapping of stage name -> params")]
    assert isinstance(values, dict)
    for key in values:
        if str(key) not in specs:
            assert doc is not None
            problems.append(
                doc.problem(
                    (str(key),),
                    f"no stage named '{key}' in the pipeline" + did_you_mean(str(key), specs),
                )
            )
    params: dict[str, StageParams] = {}
    for name, kind in kinds.items():
        if name not in values:
            problems.append(
                Problem(
                    f"no entry for stage '{name}'; add `{name}: {{}}` to take the defaults "
                    "(DVC tracks each stage's key)",
                    file=params_file,
                )
            )
            continue
        raw = values[name] if values[name] is not None else {}
        try:
            params[name] = kind.params.model_validate(raw)
        except ValidationError as exc:
            assert doc is not None
            problems += validation_problems(exc, kind.params, doc, (name,))
        else:
            problems += _check_dependencies(root, params[name])
    return params, problems


def _check_dependencies(root: Path, params: StageParams) -> list[Problem]:
    """Run the ``check`` of each :class:`Dependency` param that names a local file.

    A missing file is left to ``compile`` (DVC needs every dependency to exist); a URL
    is not read here.
    """
    problems: list[Problem] = []
    for field, info in type(params).model_fields.items():
        checks = [m.check for m in info.metadata if isinstance(m, Dependency) and m.check]
        value = str(getattr(params, field) or "")
        if not checks or not value or "://" in value:
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            continue
        for check in checks:
            try:
                check(path, value)
            except PixelpipeError as exc:
                problems += exc.problems
    return problems
