"""Classification of a parsed document into a checklist document type.

Weighted keyword rules kept as data (``clinflow/data/rules/classification.yaml``); see that
file for the scoring. Never raises for content: text that matches nothing is UNKNOWN.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from clinflow.packets.data_files import DataFileError, read_yaml
from clinflow.packets.models import Classification, DocumentType, ParseResult

_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL


class KeywordRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    pattern: str
    weight: float


class _Compiled:
    def __init__(self, rule: KeywordRule) -> None:
        self.rule = rule
        self.regex = re.compile(rule.pattern, _FLAGS)


@lru_cache(maxsize=1)
def _rules() -> tuple[float, float, dict[DocumentType, list[_Compiled]]]:
    raw = read_yaml("rules", "classification.yaml")
    if not isinstance(raw, dict) or "types" not in raw:
        raise DataFileError("classification.yaml must hold 'types'")
    table: dict[DocumentType, list[_Compiled]] = {}
    for name, rows in raw["types"].items():
        table[DocumentType(name)] = [_Compiled(KeywordRule.model_validate(r)) for r in rows]
    return float(raw.get("min_score", 8)), float(raw.get("min_margin", 3)), table


def classify_text(text: str) -> Classification:
    """Score ``text`` against every type's keyword rules and pick the winner (or UNKNOWN)."""
    min_score, min_margin, table = _rules()
    scores: dict[DocumentType, tuple[float, list[str]]] = {}
    for doc_type, rules in table.items():
        hits = [c.rule for c in rules if c.regex.search(text)]
        scores[doc_type] = (sum(r.weight for r in hits), [f"{doc_type}:{r.id}" for r in hits])
    ranked = sorted(scores.items(), key=lambda kv: kv[1][0], reverse=True)
    (best, (best_score, matched)), (second, (second_score, _)) = ranked[0], ranked[1]
    confident = best_score >= min_score and best_score - second_score >= min_margin
    positive = max(best_score, 0.0) + max(second_score, 0.0)
    confidence = round(max(best_score, 0.0) / positive, 3) if positive > 0 else 0.0
    return Classification(
        doc_type=best if confident else DocumentType.UNKNOWN,
        score=best_score,
        confidence=confidence if confident else 0.0,
        runner_up=second if second_score > 0 else None,
        matched=matched,
    )


def classify(parse: ParseResult) -> Classification:
    """Classify a parsed document by its text (PDF pages, OCR text, DOCX paragraphs/tables)."""
    return classify_text(parse.text)
