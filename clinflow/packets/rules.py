"""The declarative rule table (``clinflow/data/rules/validation_rules.yaml``) and its helpers.

Every finding, fatal parse error and gap is built here from a row of the table, so codes,
categories and wording live in one place. ``GAP`` rows are not an error category: they make the
packet wait for documents (see :mod:`clinflow.packets.routing`).
"""

from __future__ import annotations

import string
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clinflow.errors import ErrorCategory, FatalSchemaMismatch
from clinflow.packets.data_files import DataFileError, read_yaml, register_cache
from clinflow.packets.models import DocumentType, Finding, GapItem

Stage = Literal["ingest", "structural", "semantic", "cross-document", "gap"]
GAP = "GAP"


class Rule(BaseModel):
    """One row of the rule table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    category: ErrorCategory | Literal["GAP"]
    stage: Stage
    message: str
    params: dict[str, int | float | str] = Field(default_factory=dict)

    def render(self, values: dict[str, Any]) -> str:
        """The message with ``values`` (and the rule's params) filled in; unknown names stay."""
        merged = {**self.params, **values}
        fields = {f for _, f, _, _ in string.Formatter().parse(self.message) if f}
        return self.message.format(**{f: merged.get(f, "{" + f + "}") for f in fields})


class UnknownRule(KeyError):
    """A code that is not in the rule table (a programming error, not a data problem)."""


@register_cache
@lru_cache(maxsize=1)
def rule_table() -> dict[str, Rule]:
    """All rules by code, in table order. Raises :class:`DataFileError` on a malformed file."""
    raw = read_yaml("rules", "validation_rules.yaml")
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise DataFileError("validation_rules.yaml must hold a 'rules' list")
    table: dict[str, Rule] = {}
    for row in raw["rules"]:
        rule = Rule.model_validate(row)
        if rule.code in table:
            raise DataFileError(f"duplicate rule code {rule.code}")
        table[rule.code] = rule
    return table


def get_rule(code: str) -> Rule:
    """The rule with ``code``; raises :class:`UnknownRule`."""
    try:
        return rule_table()[code]
    except KeyError:
        raise UnknownRule(code) from None


def rule_param(code: str, name: str) -> float:
    """A numeric threshold of a rule (``params`` column)."""
    return float(get_rule(code).params[name])


def _text_values(values: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None}


def make_finding(code: str, document: str | None = None, **values: Any) -> Finding:
    """A :class:`Finding` for rule ``code`` with its message filled from ``values``.

    Raises ValueError for a GAP rule (use :func:`make_gap`).
    """
    rule = get_rule(code)
    if rule.category == GAP:
        raise ValueError(f"{code} is a gap rule; use make_gap")
    return Finding(
        code=code,
        category=ErrorCategory(rule.category),
        message=rule.render(values),
        document=document,
        details=_text_values(values),
    )


def make_gap(
    code: str,
    doc_type: DocumentType,
    *,
    document: str | None = None,
    expected: str | None = None,
    found: str | None = None,
    **values: Any,
) -> GapItem:
    """A :class:`GapItem` for the GAP rule ``code``."""
    rule = get_rule(code)
    if rule.category != GAP:
        raise ValueError(f"{code} is not a gap rule")
    message = rule.render(
        {"doc_type": doc_type.value, "expected": expected, "found": found, **values}
    )
    return GapItem(
        code=code,
        doc_type=doc_type,
        message=message,
        document=document,
        expected=expected,
        found=found,
    )


def fatal(code: str, subject: str | None = None, **values: Any) -> FatalSchemaMismatch:
    """The :class:`FatalSchemaMismatch` for a FATAL rule, ready to raise."""
    rule = get_rule(code)
    if rule.category != ErrorCategory.FATAL_SCHEMA_MISMATCH:
        raise ValueError(f"{code} is not a FATAL_SCHEMA_MISMATCH rule")
    return FatalSchemaMismatch(
        code, rule.render(values), subject=subject, details=_text_values(values)
    )


def finding_from_error(error: FatalSchemaMismatch, document: str | None = None) -> Finding:
    """The finding that records a fatal error raised by parsing (for routing and the DLQ)."""
    return Finding(
        code=error.code,
        category=error.category,
        message=error.reason,
        document=document or error.subject,
        details={k: str(v) for k, v in error.details.items()},
    )


def rules_markdown() -> str:
    """The rule table as a Markdown table (code, category, stage, message, parameters)."""
    lines = [
        "| code | category | stage | message | parameters |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rule in rule_table().values():
        params = ", ".join(f"{k}={v}" for k, v in rule.params.items())
        message = rule.message.replace("|", "\\|")
        lines.append(f"| `{rule.code}` | {rule.category} | {rule.stage} | {message} | {params} |")
    return "\n".join(lines) + "\n"
