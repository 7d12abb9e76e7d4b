"""Normalisation of one FHIR resource (a dict), guided by the R4B model's element types.

What changes, each change counted as a coercion code:

- ``datetime_offset_added``: a dateTime or instant with a time but no offset gets ``+00:00``
  (FHIR requires an offset whenever a time is given). Plain dates (``2020``, ``2020-03``,
  ``2020-03-19``) stay dates; values that already carry ``Z`` or ``+hh:mm`` are left alone.
- ``code_system_canonicalised:<name>``: a Coding's ``system`` alias replaced by the canonical URI
  from the crosswalk table.
- Observation ``valueQuantity`` and ``component[].valueQuantity``: UCUM code and canonical unit
  for the analyte (see ``units.normalise_quantity``).

Which elements are dateTime/instant/Coding comes from the element types of the
``fhir.resources.R4B`` classes, never from the shape of a value, so a string that merely looks
like a date is never touched. The input dict is modified in place (the caller owns it).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from fhir_core.types import DateTime, Instant
from pydantic import BaseModel

from clinflow.clinical.code_systems import LOINC, canonical_system, crosswalk
from clinflow.clinical.fhir_validate import resource_class
from clinflow.clinical.units import normalise_quantity

# A dateTime/instant with a time part and no zone: YYYY-MM-DDThh:mm[:ss[.fff]]
_NAIVE_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")

_KIND_DATETIME = "datetime"
_KIND_CODING = "Coding"


@dataclass
class Normalised:
    coercions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Element:
    kind: str | None  # "datetime" for dateTime/instant, else None
    model: type[BaseModel] | None  # nested element class, if the element is complex
    polymorphic_resource: bool = False  # Resource (contained, Bundle.entry.resource)


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/List down to the element type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType, list):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if not args:
                return annotation
            annotation = args[0]
            continue
        return annotation


def _model_for_abc(annotation: Any) -> type[BaseModel] | None:
    """``abc.QuantityType`` -> the R4B ``Quantity`` class (None when unknown)."""
    name = getattr(annotation, "__name__", "")
    if getattr(annotation, "__module__", "") != "abc" or not name.endswith("Type"):
        return None
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(name[: -len("Type")])
    except (ValueError, KeyError):
        return None


@cache
def _elements(model: type[BaseModel]) -> dict[str, _Element]:
    """JSON key -> element description for one R4B class (computed once per class)."""
    out: dict[str, _Element] = {}
    fields: dict[str, Any] = getattr(model, "model_fields", {})
    for name, info in fields.items():
        key = info.alias or name
        if key.endswith("__ext") or key == "fhir_comments":
            continue
        ann = _unwrap(info.annotation)
        if typing.get_origin(ann) is typing.Annotated:
            meta = typing.get_args(ann)[1:]
            # DateTime and Instant subclass Date: match exact types, plain dates stay dates.
            if any(type(m) in (DateTime, Instant) for m in meta):
                out[key] = _Element(_KIND_DATETIME, None)
            continue
        if getattr(ann, "__name__", "") == "ResourceType":
            out[key] = _Element(None, None, polymorphic_resource=True)
            continue
        nested = _model_for_abc(ann)
        if nested is not None:
            kind = _KIND_CODING if nested.__name__ == "Coding" else None
            out[key] = _Element(kind, nested)
    return out


def normalise_resource(
    resource: dict[str, Any], raw: bytes | None = None, *, naive_datetimes: bool = True
) -> Normalised:
    """Normalise ``resource`` in place and return the coercions applied.

    ``raw``, when given, is the JSON text ``resource`` was parsed from: if it shows that no
    element can need a date-time offset or a code-system change (``needs_walk``), the
    element walk is skipped; the result is the same either way. ``naive_datetimes=False``
    tells that no dateTime/instant element lacks its offset (the resource passed R4B
    validation, which refuses those), so the raw text is not searched for them.
    Never raises for content problems: unknown elements are left for validation to report.
    """
    result = Normalised()
    cls = resource_class(str(resource.get("resourceType", "")))
    if cls is None:
        return result
    if raw is None or needs_walk(raw, naive_datetimes=naive_datetimes):
        _walk(resource, cls, result.coercions)
    if resource.get("resourceType") == "Observation":
        _normalise_observation_quantities(resource, result.coercions)
    return result


# In ASCII JSON without escapes, every string value appears verbatim between quotes, so these
# find every value the walk could change: naive date-times and the values of "system" keys.
# A naive date-time ``"YYYY-MM-DDThh:mm[:ss[.f]]"`` is found by its time part (a literal ``T``
# the regex engine can skip to) and then its date part is checked in place: the same strings
# as one pattern for the whole value, at half the scanning cost.
_RAW_NAIVE_TIME = re.compile(rb'T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"')
_RAW_DATE_PART = re.compile(rb'"\d{4}-\d{2}-\d{2}')
_DATE_PART_LEN = len(b'"2020-01-01')
_RAW_SYSTEM = re.compile(rb'"system"\s*:\s*"([^"]*)"')


def needs_walk(raw: bytes, *, naive_datetimes: bool = True) -> bool:
    """False only when ``raw`` provably holds no naive date-time and no ``system`` value the
    crosswalk would change (the walk would then change nothing). With
    ``naive_datetimes=False`` the caller already knows there is no naive date-time.

    Conservative: non-ASCII text (the walk's ``\\d`` also matches non-ASCII digits) and
    ``\\`` escapes (a value or key may be spelled with escapes) always need the walk.
    """
    if not raw.isascii() or b"\\" in raw:
        return True
    if naive_datetimes:
        for match in _RAW_NAIVE_TIME.finditer(raw):
            start = match.start() - _DATE_PART_LEN
            if start >= 0 and _RAW_DATE_PART.match(raw, start, match.start()):
                return True
    systems = _RAW_SYSTEM.findall(raw)
    if not systems or _STABLE_SYSTEMS.issuperset(systems):
        return False
    return any(_system_changes(system) for system in systems)


# ``system`` values the crosswalk leaves as they are: exports repeat a handful of code systems,
# so after the first records one set lookup answers for all of a record's values.
_STABLE_SYSTEMS: set[bytes] = set()


@lru_cache(maxsize=4096)
def _system_changes(system: bytes) -> bool:
    """True when the crosswalk would replace this (ASCII) ``system`` value."""
    text = system.decode("ascii")
    canonical = canonical_system(text)
    changes = canonical is not None and canonical != text
    if not changes and len(_STABLE_SYSTEMS) < 4096:
        _STABLE_SYSTEMS.add(system)
    return changes


def _walk(obj: dict[str, Any], model: type[BaseModel], coercions: list[str]) -> None:
    elements = _elements(model)
    for key, value in obj.items():
        element = elements.get(key)
        if element is None:
            continue
        if element.kind == _KIND_DATETIME:
            if isinstance(value, str) and _NAIVE_DATETIME.match(value):
                obj[key] = value + "+00:00"
                coercions.append("datetime_offset_added")
            continue
        if element.polymorphic_resource:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    inner = resource_class(str(item.get("resourceType", "")))
                    if inner is not None:
                        _walk(item, inner, coercions)
            continue
        if element.model is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                continue
            if element.kind == _KIND_CODING:
                _canonicalise_coding(item, coercions)
            _walk(item, element.model, coercions)


def _canonicalise_coding(coding: dict[str, Any], coercions: list[str]) -> None:
    system = coding.get("system")
    if not isinstance(system, str):
        return
    canonical = canonical_system(system)
    if canonical is not None and canonical != system:
        coding["system"] = canonical
        coercions.append(f"code_system_canonicalised:{crosswalk()[canonical].name}")


def _loinc_code(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == LOINC:
            code = coding.get("code")
            return code if isinstance(code, str) else None
    return None


def _normalise_observation_quantities(obs: dict[str, Any], coercions: list[str]) -> None:
    if isinstance(obs.get("valueQuantity"), dict):
        res = normalise_quantity(obs["valueQuantity"], _loinc_code(obs.get("code")))
        obs["valueQuantity"] = res.quantity
        coercions.extend(res.coercions)
    for component in obs.get("component") or []:
        if isinstance(component, dict) and isinstance(component.get("valueQuantity"), dict):
            res = normalise_quantity(component["valueQuantity"], _loinc_code(component.get("code")))
            component["valueQuantity"] = res.quantity
            coercions.extend(res.coercions)
