"""Normalisation: offsets, units, code systems, counted as coercions; bodies and keys."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from clinflow.clinical import (
    ProcessContext,
    Processed,
    Quarantined,
    QuarantineReason,
    process_fhir_line,
)
from clinflow.clinical.code_systems import canonical_system
from clinflow.clinical.units import normalise_quantity


def process(resource: Mapping[str, object], **ctx: Any) -> Processed:
    result = process_fhir_line(orjson.dumps(resource), ProcessContext(**ctx))
    assert isinstance(result, Processed), result
    return result


def body(result: Processed) -> dict[str, object]:
    doc = orjson.loads(result.row.body)
    assert isinstance(doc, dict)
    return doc


def observation(**extra: object) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        **extra,
    }


def test_offset_added_to_datetime_with_time_only() -> None:
    result = process(
        observation(
            effectiveDateTime="2021-04-05T10:11:12",
            issued="2021-04-05T10:11:12.5+02:00",
            meta={"lastUpdated": "2021-04-06T00:00:00"},
        )
    )
    doc = body(result)
    assert doc["effectiveDateTime"] == "2021-04-05T10:11:12+00:00"
    assert doc["issued"] == "2021-04-05T10:11:12.5+02:00"  # already explicit: untouched
    assert result.coercions.count("datetime_offset_added") == 2
    assert result.row.last_updated == datetime(2021, 4, 6, tzinfo=UTC)
    assert result.row.last_updated_from_meta


def test_plain_dates_and_date_looking_strings_stay() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "birthDate": "1970-01-02",
        "identifier": [{"value": "2020-01-01T10:00:00"}],
    }
    result = process(patient)
    doc = body(result)
    assert doc["birthDate"] == "1970-01-02"
    assert doc["identifier"] == [{"value": "2020-01-01T10:00:00"}]
    assert "datetime_offset_added" not in result.coercions
    # Unchanged records keep their original bytes as the body.
    assert result.row.body == orjson.dumps(patient)
    assert result.row.content_sha256 == hashlib.sha256(result.row.body).hexdigest()


def test_glucose_mmol_to_mg_dl_with_molar_mass() -> None:
    result = process(
        observation(valueQuantity={"value": 5.5, "unit": "mmol/L", "code": "mmol/L",
                                   "system": "http://unitsofmeasure.org"})
    )  # fmt: skip
    q = body(result)["valueQuantity"]
    assert q == {
        "value": pytest.approx(5.5 * 180.156 / 10, rel=1e-5),
        "unit": "mg/dL",
        "code": "mg/dL",
        "system": "http://unitsofmeasure.org",
    }
    assert "unit_converted:mmol/L->mg/dL" in result.coercions


@pytest.mark.parametrize(
    ("loinc", "value", "unit", "expected", "canonical"),
    [
        ("29463-7", 150, "lbs", 68.0389, "kg"),
        ("8302-2", 70, "[in_i]", 177.8, "cm"),
        ("8310-5", 98.6, "[degF]", 37.0, "Cel"),
        ("8480-6", 120, "mmHg", 120, "mm[Hg]"),
    ],
)
def test_vital_units_to_canonical(
    loinc: str, value: float, unit: str, expected: float, canonical: str
) -> None:
    res = normalise_quantity({"value": value, "unit": unit}, loinc)
    assert res.quantity["value"] == pytest.approx(expected, rel=1e-5)
    assert res.quantity["code"] == canonical
    assert res.quantity["system"] == "http://unitsofmeasure.org"
    assert res.coercions


def test_component_quantities_and_unknown_unit() -> None:
    bp = observation(
        component=[
            {"code": {"coding": [{"system": "LN", "code": "8480-6"}]},
             "valueQuantity": {"value": 16, "code": "kPa",
                               "system": "http://unitsofmeasure.org"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "unit": "furlongs-ish"}},
        ]
    )  # fmt: skip
    result = process(bp)
    comps = body(result)["component"]
    assert isinstance(comps, list)
    assert comps[0]["code"]["coding"][0]["system"] == "http://loinc.org"
    assert comps[0]["valueQuantity"]["code"] == "mm[Hg]"
    assert comps[0]["valueQuantity"]["value"] == pytest.approx(120.0, rel=1e-3)
    assert comps[1]["valueQuantity"] == {"value": 80, "unit": "furlongs-ish"}
    assert "unit_unrecognised" in result.coercions


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("urn:oid:2.16.840.1.113883.6.1", "http://loinc.org"),
        ("LOINC", "http://loinc.org"),
        ("SNOMED", "http://snomed.info/sct"),
        ("SCT", "http://snomed.info/sct"),
        ("urn:oid:2.16.840.1.113883.6.96", "http://snomed.info/sct"),
        ("RxNorm", "http://www.nlm.nih.gov/research/umls/rxnorm"),
        ("urn:oid:2.16.840.1.113883.6.90", "http://hl7.org/fhir/sid/icd-10-cm"),
        ("I10C", "http://hl7.org/fhir/sid/icd-10-cm"),
    ],
)
def test_code_system_aliases(alias: str, canonical: str) -> None:
    assert canonical_system(alias) == canonical
    cond = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/1"},
        "code": {"coding": [{"system": alias, "code": "X"}]},
    }
    result = process(cond)
    assert body(result)["code"] == {"coding": [{"system": canonical, "code": "X"}]}
    assert any(c.startswith("code_system_canonicalised:") for c in result.coercions)


def test_unknown_system_is_left_alone() -> None:
    assert canonical_system("http://example.org/local") is None


def test_last_updated_fallback_and_version() -> None:
    tt = datetime(2024, 8, 6, 18, 12, 57, tzinfo=UTC)
    res = process({"resourceType": "Patient", "id": "p"}, fallback_last_updated=tt)
    assert res.row.last_updated == tt and not res.row.last_updated_from_meta
    assert "last_updated_fallback" in res.coercions
    res = process({"resourceType": "Patient", "id": "p", "meta": {"versionId": "3"}})
    assert res.row.last_updated == datetime(1970, 1, 1, tzinfo=UTC)
    assert res.row.version_id == "3"


def test_conversion_that_overflows_keeps_the_value() -> None:
    quantity = {"value": 1e308, "unit": "mmol/L", "code": "mmol/L",
                "system": "http://unitsofmeasure.org"}  # fmt: skip
    res = normalise_quantity(quantity, "2345-7")
    assert res.quantity["value"] == 1e308 and res.quantity["code"] == "mmol/L"
    assert "unit_not_convertible" in res.coercions


def test_refused_record_is_judged_after_normalisation() -> None:
    """A record refused as received is normalised and validated again: a missing offset alone
    is repaired; with another fault the reason names that fault only, and the coercions that
    were applied are kept on the quarantine record."""
    repaired = process(observation(effectiveDateTime="2021-04-05T10:11:12"))
    assert body(repaired)["effectiveDateTime"] == "2021-04-05T10:11:12+00:00"
    line = orjson.dumps(observation(effectiveDateTime="2021-04-05T10:11:12", subject=5))
    result = process_fhir_line(line, ProcessContext(source_uri="f"))
    assert isinstance(result, Quarantined)
    assert result.record.reason == QuarantineReason.FHIR_VALIDATION
    assert "subject" in result.record.message
    assert "effectiveDateTime" not in result.record.message
    assert "datetime_offset_added" in result.coercions
    assert result.record.raw == line  # the record as received
