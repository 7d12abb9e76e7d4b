"""Canonical code-system URIs, from the crosswalk table ``data/crosswalks/code_systems.csv``.

The table maps every known alias (OIDs, HL7 v2 table 0396 codes such as ``LN``/``SCT``, bare
names such as ``LOINC``/``SNOMED``, https or trailing-slash variants) to the canonical FHIR URI.
Matching is exact first, then case-insensitive. Fixing the table and re-running the
reconciliation job is how records coded with a new alias are recovered.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"


class CodeSystemAlias(BaseModel):
    model_config = ConfigDict(frozen=True)

    alias: str
    canonical: str
    name: str


@cache
def crosswalk() -> dict[str, CodeSystemAlias]:
    """Alias (as written and lower-cased) -> entry. Loaded once per process."""
    table: dict[str, CodeSystemAlias] = {}
    text = resources.files("clinflow").joinpath("data/crosswalks/code_systems.csv").read_text()
    for row in csv.DictReader(text.splitlines()):
        entry = CodeSystemAlias(**row)
        table[entry.alias] = entry
        table.setdefault(entry.alias.lower(), entry)
    return table


def canonical_system(system: str) -> str | None:
    """The canonical URI for ``system``, or None when the crosswalk does not know it."""
    table = crosswalk()
    entry = table.get(system) or table.get(system.strip().lower())
    return entry.canonical if entry is not None else None
