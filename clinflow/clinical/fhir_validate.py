"""Structural FHIR validation against R4, with ``fhir.resources.R4B``.

Why R4B: fhir.resources 8.x ships R5 as its top-level package and keeps the R4 family only as
``fhir.resources.R4B`` (FHIR 4.3.0; there is no 4.0.1 module since 7.0). R4B is R4 plus
additive changes, and it accepted every real Synthea R4 record we measured, while the R5 models
rejected every real Encounter, MedicationRequest, Procedure and DocumentReference (renamed and
retyped elements). So R4 data is validated with the R4B models, for FHIR bulk exports and for the
resources mapped from HL7 v2 alike.

Validation is structural (types, cardinality, value regexes); profile and terminology checks
are out of scope. The validated model is discarded: re-serialising it changes values (``+00:00``
becomes ``Z``, microseconds appear), so the stored body is the received JSON.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError


class FhirInvalid(ValueError):
    """A resource failed structural validation. ``summary`` is PHI-free (paths and kinds)."""

    def __init__(self, resource_type: str, summary: str, error_count: int) -> None:
        super().__init__(f"{resource_type}: {summary}")
        self.resource_type = resource_type
        self.summary = summary
        self.error_count = error_count


@cache
def resource_class(resource_type: str) -> type[Resource] | None:
    """The R4B model class of a resource type, or None for unknown names and datatypes."""
    try:
        cls = get_fhir_model_class(resource_type)
    except (ValueError, KeyError):
        return None
    if not isinstance(cls, type) or not issubclass(cls, Resource):
        return None
    return cls


def is_resource_type(name: str) -> bool:
    """True when ``name`` is an R4B resource type (``Patient``, ``Bundle``...)."""
    return bool(name) and name[0].isupper() and resource_class(name) is not None


def validate_resource(resource: dict[str, Any]) -> None:
    """Validate one resource dict; raises ``FhirInvalid`` (or ``KeyError`` for unknown types).

    The caller has checked ``resourceType``; values never appear in the error message.
    """
    resource_type = str(resource["resourceType"])
    cls = resource_class(resource_type)
    if cls is None:
        raise KeyError(resource_type)
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        raise FhirInvalid(resource_type, summarise(exc), exc.error_count()) from None
    except (TypeError, ValueError) as exc:
        raise FhirInvalid(resource_type, type(exc).__name__, 1) from None


def summarise(exc: ValidationError, limit: int = 5) -> str:
    """``loc: type`` of the first errors, without the offending values (they may be PHI)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['type']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)
