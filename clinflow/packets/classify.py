"""Classification of a parsed document into a checklist document type.

Weighted rules kept as data (``clinflow/data/rules/classification.yaml``, see that file for the
scoring): patterns in the title zone (letterhead, form identifier, subject line) weigh most,
form identifiers and the set of section headings or labels a type carries add evidence,
negative rules push away look-alikes. Never raises for content: text that matches nothing is
UNKNOWN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clinflow.packets.data_files import DataFileError, read_yaml, register_cache
from clinflow.packets.models import Classification, DocumentType, ParseResult

_FLAGS = re.IGNORECASE | re.MULTILINE


class KeywordRule(BaseModel):
    """One rule: a pattern (or ``any_of`` with ``min``) in a zone, adding ``weight``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    pattern: str | None = None
    any_of: list[str] = Field(default_factory=list)
    min: int = Field(1, ge=1)
    weight: float
    zone: Literal["any", "title"] = "any"

    @model_validator(mode="after")
    def _one_form(self) -> KeywordRule:
        if (self.pattern is None) == (not self.any_of):
            raise ValueError(f"rule {self.id}: give either 'pattern' or 'any_of'")
        return self


class ClassificationRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_score: float = 8
    min_margin: float = 3
    dominance: float = 1.6
    title_lines: int = Field(12, ge=1)
    mismatch_min_score: float = 14
    mismatch_margin: float = 8
    types: dict[DocumentType, list[KeywordRule]]


@dataclass(frozen=True)
class _Compiled:
    rule: KeywordRule
    regexes: tuple[re.Pattern[str], ...]

    def hits(self, title: str, body: str) -> bool:
        text = title if self.rule.zone == "title" else body
        if self.rule.pattern is not None:
            return self.regexes[0].search(text) is not None
        return sum(1 for r in self.regexes if r.search(text)) >= self.rule.min


@register_cache
@lru_cache(maxsize=1)
def _rules() -> tuple[ClassificationRules, dict[DocumentType, list[_Compiled]]]:
    raw = read_yaml("rules", "classification.yaml")
    if not isinstance(raw, dict) or "types" not in raw:
        raise DataFileError("classification.yaml must hold 'types'")
    rules = ClassificationRules.model_validate(raw)
    table = {
        doc_type: [
            _Compiled(
                r, tuple(re.compile(p, _FLAGS) for p in ([r.pattern] if r.pattern else r.any_of))
            )
            for r in rows
        ]
        for doc_type, rows in rules.types.items()
    }
    return rules, table


_SPACES = re.compile(r"[^\S\n]+")


def title_zone(text: str, lines: int) -> str:
    """The first ``lines`` non-empty lines of the first page (where titles and subjects are)."""
    first_page = text.split("\f", 1)[0]
    kept = [line for line in first_page.splitlines() if line.strip()]
    return "\n".join(kept[:lines])


def classify_text(text: str) -> Classification:
    """Score ``text`` against every type's rules and pick the winner (or UNKNOWN)."""
    rules, table = _rules()
    body = _SPACES.sub(" ", text)
    title = title_zone(body, rules.title_lines)
    scores: dict[DocumentType, tuple[float, list[str]]] = {}
    for doc_type, compiled in table.items():
        hits = [c.rule for c in compiled if c.hits(title, body)]
        scores[doc_type] = (sum(r.weight for r in hits), [f"{doc_type}:{r.id}" for r in hits])
    ranked = sorted(scores.items(), key=lambda kv: kv[1][0], reverse=True)
    (best, (best_score, matched)), (second, (second_score, _)) = ranked[0], ranked[1]
    confident = best_score >= rules.min_score and (
        best_score - second_score >= rules.min_margin
        or best_score >= rules.dominance * max(second_score, 0.0)
    )
    positive = max(best_score, 0.0) + max(second_score, 0.0)
    confidence = round(max(best_score, 0.0) / positive, 3) if positive > 0 else 0.0
    return Classification(
        doc_type=best if confident else DocumentType.UNKNOWN,
        score=best_score,
        confidence=confidence if confident else 0.0,
        runner_up=second if second_score > 0 else None,
        matched=matched,
        scores={str(t): s for t, (s, _) in scores.items() if s != 0},
    )


def classify(parse: ParseResult) -> Classification:
    """Classify a parsed document by its text (PDF pages, OCR text, DOCX paragraphs/tables)."""
    return classify_text(parse.text)


def clearly_other_type(classification: Classification, declared: DocumentType) -> bool:
    """Whether the content clearly reads as a type other than ``declared`` (see the data file).

    A declared type is trusted unless the classifier is confident in another type, that type
    beats the declared one by a wide margin, and the declared type has little evidence itself.
    """
    rules, _ = _rules()
    found = classification.doc_type
    if found in (DocumentType.UNKNOWN, declared):
        return False
    declared_score = classification.scores.get(str(declared), 0.0)
    return (
        classification.score >= rules.mismatch_min_score
        and classification.score - declared_score >= rules.mismatch_margin
        and declared_score < rules.min_score
    )
