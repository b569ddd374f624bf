"""Rule-set files (``configs/validation/*.yaml``): which rules to apply, and how.

A rule set names the rules to apply, each with its severity and params::

    rules:
      decode: error                 # shorthand: just the severity
      box_inside:
        severity: fix               # clip boxes to the image
      blur:
        severity: warn
        min_variance: 25

Rules not named are not checked. Every rule has a default severity and default params, so
``blur: {}`` enables it as documented (the rules themselves are in
:mod:`stages._validate.rules`). Loading reports every problem at once as
``FILE:LINE key.path: message``, with a did-you-mean for unknown rule names and keys.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pixelpipe import (
    KeyPath,
    Located,
    PixelpipeError,
    Problem,
    did_you_mean,
    load_file,
    validation_problems,
)
from stages._validate.rules import RULES, Rule, Scope, allowed_severities


@dataclass(frozen=True)
class RuleSet:
    """A loaded rule set: the rules it names, in catalogue order.

    Attributes:
        file: The file as shown in messages (relative to the project root).
        rules: The configured rules by id, in catalogue order.
        lines: Line of each rule's entry in the file.
    """

    file: str
    rules: Mapping[str, Rule]
    lines: Mapping[str, int]

    def get(self, rule_id: str) -> Rule | None:
        """The configured rule ``rule_id``, or ``None`` when the set leaves it out."""
        return self.rules.get(rule_id)

    def scoped(self, scope: Scope) -> Iterator[Rule]:
        """The configured rules of one scope, in catalogue order."""
        return (rule for rule in self.rules.values() if scope == rule.SCOPE)

    def without(self, rule_ids: Collection[str]) -> RuleSet:
        """This rule set less the rules ``rule_ids``."""
        return RuleSet(
            self.file,
            {k: v for k, v in self.rules.items() if k not in rule_ids},
            {k: v for k, v in self.lines.items() if k not in rule_ids},
        )

    def where(self, rule_id: str) -> str:
        """``FILE:LINE rules.<id>``, for messages about a rule."""
        line = self.lines.get(rule_id)
        return f"{self.file}:{line} rules.{rule_id}" if line else f"{self.file} rules.{rule_id}"


class _RuleSetFile(BaseModel):
    """The top level of a rule-set file."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    description: str | None = None
    """What this rule set is for."""
    rules: dict[str, Any]
    """Rule id -> severity, or a mapping of ``severity`` and the rule's params."""


def parse_ruleset(doc: Located) -> RuleSet:
    """Validate a loaded rule-set document.

    Args:
        doc: The YAML document with its key lines.

    Raises:
        PixelpipeError: With every problem found, each with file, line and key.
    """
    data = doc.data
    shape = "a rule set is a mapping with 'rules': rule id -> severity or settings"
    if not isinstance(data, dict):
        raise PixelpipeError(doc.problem((), shape))
    problems: list[Problem] = []
    try:
        _RuleSetFile.model_validate(data)
    except ValidationError as exc:
        problems += validation_problems(exc, _RuleSetFile, doc)
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, dict):
        if "rules" in data:
            problems = [p for p in problems if p.key != "rules"]
            problems.append(doc.problem(("rules",), shape))
        raise PixelpipeError(problems)
    if not raw_rules:
        problems.append(doc.problem(("rules",), "no rules: name at least one rule"))
    configured: dict[str, Rule] = {}
    for key, raw in raw_rules.items():
        rule_id = str(key)
        path: KeyPath = ("rules", rule_id)
        model = RULES.get(rule_id)
        if model is None:
            hint = did_you_mean(rule_id, RULES)
            problems.append(
                doc.problem(
                    path,
                    f"unknown rule '{rule_id}'" + (hint or f"; rules are: {', '.join(RULES)}"),
                )
            )
            continue
        value: Any = {} if raw is None else {"severity": raw} if isinstance(raw, str) else raw
        if not isinstance(value, dict):
            problems.append(
                doc.problem(
                    path,
                    "a rule is a severity ("
                    + ", ".join(allowed_severities(model))
                    + f") or a mapping of severity and params, got {raw!r}",
                )
            )
            continue
        try:
            configured[rule_id] = model.model_validate(value)
        except ValidationError as exc:
            problems += validation_problems(exc, model, doc, path)
    if problems:
        raise PixelpipeError(problems)
    ordered = {rule_id: configured[rule_id] for rule_id in RULES if rule_id in configured}
    lines = {rule_id: doc.line_of(("rules", rule_id)) or 0 for rule_id in ordered}
    return RuleSet(file=doc.file, rules=ordered, lines=lines)


def load_ruleset(path: Path, shown_as: str | None = None) -> RuleSet:
    """Read and validate a rule-set file.

    Args:
        path: The file.
        shown_as: Its name in messages (relative to the project root).

    Raises:
        PixelpipeError: With every problem found, each with file, line and key.
    """
    return parse_ruleset(load_file(path, shown_as))
