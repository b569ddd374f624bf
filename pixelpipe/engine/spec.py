"""Pydantic models of a pipeline file (``pipelines/<name>.yaml``); unknown keys are errors.

Example::

    stages:
      ingest:
        kind: ingest
      dedupe:
        kind: dedupe
        inputs: ingest
      publish:
        kind: publish
        inputs: [dedupe]

Tunable values do not live here but in ``params.yaml`` (or the file the optional
``params:`` key names), keyed by stage name.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
RESERVED_NAMES = frozenset({"raw"})
"""Stage names that would collide with project folders (``data/raw`` holds source data)."""


class StageSpec(BaseModel):
    """One stage of a pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    kind: str
    """Stage kind: a built-in short name (``dedupe``) or ``module:attr``."""
    inputs: list[str] = Field(default_factory=list)
    """Names of the stages whose output this stage reads (one name or a list)."""
    configs: dict[str, str] = Field(default_factory=dict)
    """Config files the stage reads, by the name the kind gives them, relative to the project."""
    description: str | None = None
    """What this stage is for, shown in ``dvc.yaml``."""

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class PipelineSpec(BaseModel):
    """A whole pipeline file."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    stages: dict[str, StageSpec]
    """The stages by name; the name is the DVC stage name and the output folder ``data/<name>``."""
    params: str = "params.yaml"
    """The params file of this pipeline's tunable values, relative to the project (a second
    pipeline in one project keeps its own, e.g. ``pipelines/review.params.yaml``)."""

    @field_validator("params")
    @classmethod
    def _yaml_inside(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/") or not value.endswith(".yaml"):
            raise ValueError("a .yaml file inside the project, relative to its root")
        return value
