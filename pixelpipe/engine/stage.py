"""What a stage kind is: a typed ``Params`` model and a step function.

A stage module defines a frozen pydantic ``Params`` model and decorates its step::

    class Params(StageParams):
        max_distance: int = 8
        \"\"\"Largest Hamming distance that still counts as a duplicate.\"\"\"

    @stage("dedupe", params=Params)
    def dedupe(inputs: list[Dataset], params: Params, ctx: StageContext) -> StageResult:
        ...

The step does no DVC, MLflow or file-layout work of its own: the runner loads the
inputs, validates the params, gives the step a :class:`~pixelpipe.engine.context.StageContext`
and writes what the step returns.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pixelpipe.dataset import Dataset, DatasetBuilder
    from pixelpipe.engine.context import StageContext


class StageParams(BaseModel):
    """Base of every stage's ``Params``: frozen, unknown keys rejected, fields documented.

    A field's docstring (the string literal under it) is its description, shown by
    ``pixelpipe stages``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


ConfigCheck = Callable[[Path, str], object]
"""Validates one config file: ``check(path, shown_as)`` raises ``PixelpipeError``."""


@dataclass(frozen=True)
class Dependency:
    """Marks a param whose value is a path or URL the stage reads.

    ``pixelpipe compile`` lists the value as a DVC dependency of the stage, so a change
    to the files behind it reruns the stage. Use it as
    ``source: Annotated[str, Dependency()]``. With ``check``, loading the pipeline (so
    ``pixelpipe compile``) also validates the content of the local file the value names,
    before anything runs: ``Dependency(check=pixelpipe.taxonomy.check)``.

    Attributes:
        check: Validates the file: ``check(path, value)`` raises ``PixelpipeError``.
    """

    check: ConfigCheck | None = None


P = TypeVar("P", bound=StageParams)


@dataclass(frozen=True)
class Plot:
    """A DVC plot a kind writes on every run, from rows the step returns.

    The runner writes the rows to ``reports/plots/<stage>/<name>.json`` and ``pixelpipe
    compile`` declares the file as a plot of the stage, so ``dvc plots show`` and ``dvc plots
    diff v1 v2`` render it.

    Attributes:
        x: The field of each row on the x axis.
        y: The field on the y axis.
        title: The chart's title.
        template: A DVC plot template (``bar_horizontal`` for counts by a category, with the
            category on ``y``; ``linear``, ``scatter``...).
    """

    x: str
    y: str
    title: str
    template: str = "bar_horizontal"


@dataclass
class StageResult:
    """What a step returns.

    Attributes:
        output: The dataset the stage made, with its removals.
        metrics: Small numbers for ``reports/<stage>.json`` (DVC metrics), nested dicts of
            numbers allowed. Text values (an algorithm's name, a config's digest) are kept in
            ``dataset.json`` instead, so ``dvc metrics show`` compares numbers only.
        plots: Rows of each plot the kind declares (:class:`Plot`), by plot name.
        expected: For a source stage, how many items it found; the runner checks that
            every one of them is either in the output or removed. Decision stages
            leave it ``None``: their inputs are the count.
    """

    output: DatasetBuilder
    metrics: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expected: int | None = None


StepFn = Callable[["list[Dataset]", P, "StageContext"], StageResult]


@dataclass(frozen=True)
class StageKind(Generic[P]):
    """A registered stage kind.

    Attributes:
        name: The short name used as ``kind:`` in a pipeline.
        params: The pydantic model of the stage's params.
        step: The step function.
        min_inputs: Fewest input stages (0 for a source such as ``ingest``).
        max_inputs: Most input stages, or ``None`` for any number.
        configs: Config files the stage reads, by name, with a description each.
        config_checks: For some configs, a function that validates the file's content; the
            loader calls it, so ``pixelpipe compile`` reports a bad config before anything runs.
        plots: The DVC plots every run of the kind writes, by name.
        references: How many of the last inputs the step only reads, as something to
            compare with (``drift``'s reference): their samples need not be kept or removed.
    """

    name: str
    params: type[P]
    step: StepFn[P]
    min_inputs: int = 1
    max_inputs: int | None = 1
    configs: Mapping[str, str] = field(default_factory=dict)
    config_checks: Mapping[str, ConfigCheck] = field(default_factory=dict)
    plots: Mapping[str, Plot] = field(default_factory=dict)
    references: int = 0

    @property
    def is_source(self) -> bool:
        """True when the stage reads no other stage."""
        return self.max_inputs == 0

    @property
    def doc(self) -> str:
        """The step's docstring, cleaned."""
        return inspect.getdoc(self.step) or ""

    @property
    def summary(self) -> str:
        """First line of the docstring."""
        return self.doc.splitlines()[0] if self.doc else ""

    @property
    def code_file(self) -> Path | None:
        """The file that defines the step, for the compiler's code dependency."""
        module = sys.modules.get(self.step.__module__)
        path = getattr(module, "__file__", None)
        return Path(path).resolve() if path else None

    def dependency_params(self) -> list[str]:
        """Names of params marked with :class:`Dependency`, in field order."""
        return [
            name
            for name, info in self.params.model_fields.items()
            if any(isinstance(m, Dependency) for m in info.metadata)
        ]


def stage(
    name: str,
    *,
    params: type[P],
    inputs: int | tuple[int, int | None] = 1,
    configs: Mapping[str, str] | None = None,
    config_checks: Mapping[str, ConfigCheck] | None = None,
    plots: Mapping[str, Plot] | None = None,
    references: int = 0,
) -> Callable[[StepFn[P]], StageKind[P]]:
    """Declare a step function as a stage kind.

    Args:
        name: Short name of the kind.
        params: Its ``Params`` model (a :class:`StageParams` subclass).
        inputs: Number of input stages, or ``(min, max)`` with ``max=None`` for no limit.
        configs: Config files the stage reads, by name, with a description each.
        config_checks: Validators of some of those files' content, by config name
            (``check(path, shown_as)`` raising :class:`PixelpipeError`).
        plots: DVC plots the step returns rows for (:attr:`StageResult.plots`), by name.
        references: How many of the last inputs are references the step only reads (their
            samples are not accounted for in its output).

    Returns:
        A decorator that turns the step into a :class:`StageKind`.
    """
    low, high = (inputs, inputs) if isinstance(inputs, int) else inputs

    def wrap(step: StepFn[P]) -> StageKind[P]:
        return StageKind(
            name=name,
            params=params,
            step=step,
            min_inputs=low,
            max_inputs=high,
            configs=dict(configs or {}),
            config_checks=dict(config_checks or {}),
            plots=dict(plots or {}),
            references=references,
        )

    return wrap
