"""A small synthetic FHIR R4 bulk export and HL7 v2 files for the demo (fictional people only).

``generate_demo_export(out_dir)`` writes, deterministically and in milliseconds:

- ``fhir/manifest.json`` (a ``$export``-style manifest) and one NDJSON file per resource type:
  Patient, Encounter, Observation (units that need UCUM normalisation: ``mg/dl``, ``lbs``,
  ``degF``, glucose in ``mmol/L``), Condition, MedicationRequest. Deliberately bad lines: invalid
  JSON, invalid UTF-8, a record of the wrong type for its file, a record without ``id``, one
  failing FHIR validation; one Patient appears twice, the older version after the newer one, so
  the load skips it as older.
- ``hl7/``: an ADT^A01, an ORU^R01 with OBX quantities, a batch file in FHS/BHS/BTS/FTS envelopes
  (an ADT and an ORU) and one message of an unsupported type (quarantined, ACK ``AR``).

Every name, birth date and identifier is invented. ``DemoExport.expected`` states what loading
the export into empty tables must report; tests compare the real load with it.
``tag`` is part of every id, so two loads with different tags never touch each other's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

EXPORT_TIME = "2026-11-01T06:00:00+00:00"
NEWER = "2026-10-30T09:00:00+00:00"
OLDER = "2026-09-15T09:00:00+00:00"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

# Invented people: (given, family, gender, birth date).
_PEOPLE = [
    ("Avery", "Quillfeather", "female", "1961-04-12"),
    ("Bram", "Oakentide", "male", "1975-09-03"),
    ("Cora", "Lindqvane", "female", "1988-01-27"),
    ("Dario", "Pemberwick", "male", "1953-12-19"),
    ("Elin", "Marrowdale", "female", "2001-06-08"),
]
# (LOINC, display, value, unit as sent): each unit needs UCUM normalisation.
_LABS = [
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", 104.0, "mg/dl"),
    ("14749-6", "Glucose [Moles/volume] in Serum or Plasma", 5.4, "mmol/L"),
    ("29463-7", "Body weight", 172.0, "lbs"),
    ("8310-5", "Body temperature", 99.1, "degF"),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", 189.0, "mg/dl"),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", 13.6, "g/dl"),
]
_CONDITIONS = [
    ("44054006", "Diabetes mellitus type 2"),
    ("38341003", "Hypertensive disorder"),
    ("195967001", "Asthma"),
    ("55822004", "Hyperlipidemia"),
]
_MEDS = [
    ("860975", "metformin hydrochloride 500 MG Oral Tablet"),
    ("314076", "lisinopril 10 MG Oral Tablet"),
    ("895994", "fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"),
    ("259255", "atorvastatin 80 MG Oral Tablet"),
]


@dataclass(frozen=True)
class DemoExpectations:
    """What loading the demo data into tables without its ids must report."""

    fhir_records: int
    fhir_loaded: int
    fhir_skipped_older: int
    fhir_quarantined: dict[str, int]
    hl7_messages: int
    hl7_loaded: int
    hl7_acks: dict[str, int]
    hl7_quarantined: dict[str, int]


@dataclass
class DemoExport:
    """Paths of the generated demo data and the load report it must produce."""

    root: Path
    fhir_dir: Path
    manifest: Path
    fhir_files: dict[str, Path]
    hl7_dir: Path
    hl7_files: list[Path]
    expected: DemoExpectations
    ids: dict[str, list[str]] = field(default_factory=dict)


def _meta(last_updated: str, version: str = "1") -> dict[str, Any]:
    return {"versionId": version, "lastUpdated": last_updated}


def _line(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc) + b"\n"


def _patients(tag: str) -> tuple[list[bytes], list[str]]:
    lines, ids = [], []
    for i, (given, family, gender, born) in enumerate(_PEOPLE):
        pid = f"{tag}-pat-{i + 1}"
        ids.append(pid)
        lines.append(
            _line(
                {
                    "resourceType": "Patient",
                    "id": pid,
                    "meta": _meta(NEWER, "2"),
                    "identifier": [{"system": "urn:demo:mrn", "value": f"DEMO-{1000 + i}"}],
                    "name": [{"family": family, "given": [given]}],
                    "gender": gender,
                    "birthDate": born,
                }
            )
        )
    # The older version of the first patient, after the newer one: skipped as older.
    given, family, gender, born = _PEOPLE[0]
    lines.append(
        _line(
            {
                "resourceType": "Patient",
                "id": ids[0],
                "meta": _meta(OLDER, "1"),
                "name": [{"family": family, "given": [given]}],
                "gender": gender,
                "birthDate": born,
            }
        )
    )
    lines.append(b'{"resourceType": "Patient", "id": "broken-json", "name": [\n')  # INVALID_JSON
    return lines, ids


def _encounters(tag: str, patients: list[str]) -> tuple[list[bytes], list[str]]:
    lines, ids = [], []
    for i, pid in enumerate(patients):
        eid = f"{tag}-enc-{i + 1}"
        ids.append(eid)
        lines.append(
            _line(
                {
                    "resourceType": "Encounter",
                    "id": eid,
                    "meta": _meta(NEWER),
                    "status": "finished",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                    },
                    "subject": {"reference": f"Patient/{pid}"},
                    # No offset: normalised to +00:00 and counted as a coercion.
                    "period": {"start": f"2026-10-{10 + i:02d}T08:30:00"},
                }
            )
        )
    # FHIR_VALIDATION: ``status`` must be a code string, not a number.
    lines.append(
        _line(
            {
                "resourceType": "Encounter",
                "id": f"{tag}-enc-bad",
                "meta": _meta(NEWER),
                "status": 42,
                "class": {"code": "AMB"},
            }
        )
    )
    return lines, ids


def _observations(tag: str, patients: list[str]) -> tuple[list[bytes], list[str]]:
    lines, ids = [], []
    for i, (loinc, display, value, unit) in enumerate(_LABS):
        oid = f"{tag}-obs-{i + 1}"
        ids.append(oid)
        lines.append(
            _line(
                {
                    "resourceType": "Observation",
                    "id": oid,
                    "meta": _meta(NEWER),
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}]},
                    "subject": {"reference": f"Patient/{patients[i % len(patients)]}"},
                    "effectiveDateTime": f"2026-10-{12 + i:02d}T07:15:00+00:00",
                    "valueQuantity": {"value": value, "unit": unit},
                }
            )
        )
    # A blood-pressure panel with components in a non-UCUM spelling.
    oid = f"{tag}-obs-bp"
    ids.append(oid)
    lines.append(
        _line(
            {
                "resourceType": "Observation",
                "id": oid,
                "meta": _meta(NEWER),
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
                "subject": {"reference": f"Patient/{patients[1]}"},
                "effectiveDateTime": "2026-10-20T10:00:00+00:00",
                "component": [
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                        "valueQuantity": {"value": 128, "unit": "mmHg"},
                    },
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                        "valueQuantity": {"value": 82, "unit": "mmHg"},
                    },
                ],
            }
        )
    )
    lines.append(b'{"resourceType": "Observation", "id": "bad-utf8", "note": "\xff\xfe"}\n')
    return lines, ids


def _conditions(tag: str, patients: list[str]) -> tuple[list[bytes], list[str]]:
    lines, ids = [], []
    for i, (code, display) in enumerate(_CONDITIONS):
        cid = f"{tag}-cond-{i + 1}"
        ids.append(cid)
        lines.append(
            _line(
                {
                    "resourceType": "Condition",
                    "id": cid,
                    "meta": _meta(NEWER),
                    "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
                    "subject": {"reference": f"Patient/{patients[i]}"},
                    "onsetDateTime": f"2019-0{i + 1}-15",
                }
            )
        )
    # MISSING_ID
    lines.append(_line({"resourceType": "Condition", "meta": _meta(NEWER), "subject": {}}))
    return lines, ids


def _medication_requests(tag: str, patients: list[str]) -> tuple[list[bytes], list[str]]:
    lines, ids = [], []
    for i, (code, display) in enumerate(_MEDS):
        mid = f"{tag}-medrx-{i + 1}"
        ids.append(mid)
        lines.append(
            _line(
                {
                    "resourceType": "MedicationRequest",
                    "id": mid,
                    "meta": _meta(NEWER),
                    "status": "active",
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [{"system": RXNORM, "code": code, "display": display}]
                    },
                    "subject": {"reference": f"Patient/{patients[i]}"},
                    "authoredOn": f"2026-10-{5 + i:02d}",
                }
            )
        )
    # RESOURCE_TYPE_MISMATCH: a Condition in the MedicationRequest file.
    lines.append(_line({"resourceType": "Condition", "id": f"{tag}-stray", "meta": _meta(NEWER)}))
    return lines, ids


def _hl7(segments: list[str]) -> bytes:
    return ("\r".join(segments) + "\r").encode("ascii")


def _msh(kind: str, control: str, when: str) -> str:
    return f"MSH|^~\\&|DEMOLAB|DEMOHOSP|CLINFLOW|DEMO|{when}||{kind}|{control}|P|2.5.1"


def _pv1(visit: str, admitted: str) -> str:
    fields = [""] * 45
    fields[0], fields[1], fields[2], fields[3] = "PV1", "1", "I", "WARD1^101^A"
    fields[19], fields[44] = visit, admitted  # PV1-19 visit number, PV1-44 admit time
    return "|".join(fields)


def _adt(control: str, mrn: str, family: str, given: str, born: str, sex: str, visit: str) -> bytes:
    return _hl7(
        [
            _msh("ADT^A01^ADT_A01", control, "20261020083000"),
            "EVN|A01|20261020083000",
            f"PID|1||{mrn}^^^DEMOHOSP^MR||{family}^{given}||{born}|{sex}",
            _pv1(visit, "20261020080000"),
        ]
    )


def _oru(control: str, mrn: str, family: str, given: str, order: str) -> bytes:
    return _hl7(
        [
            _msh("ORU^R01^ORU_R01", control, "20261021091500"),
            f"PID|1||{mrn}^^^DEMOHOSP^MR||{family}^{given}",
            f"OBR|1|{order}|{order}|24323-8^Comprehensive metabolic panel^LN|||20261021070000",
            "OBX|1|NM|2345-7^Glucose^LN||98|mg/dl|70-99||||F|||20261021070000",
            "OBX|2|NM|2160-0^Creatinine^LN||0.9|mg/dl|0.6-1.2||||F|||20261021070000",
            "OBX|3|NM|29463-7^Body weight^LN||165|lbs|||||F|||20261021070000",
        ]
    )


def _hl7_files(out: Path, tag: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    t = tag.upper().replace("-", "")[:8]
    files = {
        "01-adt-a01.hl7": _adt(f"{t}A1", f"{t}M1", "Quillfeather", "Avery", "19610412", "F", "V1"),
        "02-oru-r01.hl7": _oru(f"{t}O1", f"{t}M1", "Quillfeather", "Avery", f"{t}ORD1"),
        "03-batch.hl7": b"".join(
            [
                _hl7(["FHS|^~\\&|DEMOLAB|DEMOHOSP|CLINFLOW|DEMO|20261022100000"]),
                _hl7(["BHS|^~\\&|DEMOLAB|DEMOHOSP|CLINFLOW|DEMO|20261022100000"]),
                _adt(f"{t}A2", f"{t}M2", "Oakentide", "Bram", "19750903", "M", "V2"),
                _oru(f"{t}O2", f"{t}M2", "Oakentide", "Bram", f"{t}ORD2"),
                _hl7(["BTS|2"]),
                _hl7(["FTS|1"]),
            ]
        ),
        # An unsupported message type: quarantined as HL7_UNSUPPORTED_TYPE, ACK AR.
        "04-unsupported-vxu.hl7": _hl7(
            [
                _msh("VXU^V04^VXU_V04", f"{t}V1", "20261023120000"),
                f"PID|1||{t}M3^^^DEMOHOSP^MR||Lindqvane^Cora",
            ]
        ),
    }
    paths = []
    for name, data in files.items():
        path = out / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def generate_demo_export(out_dir: Path, tag: str = "demo") -> DemoExport:
    """Write the demo export and HL7 files under ``out_dir`` (overwriting); deterministic.

    Returns the paths and the expected load report. ``tag`` (letters, digits, ``-``) prefixes
    every resource id and HL7 identifier.
    """
    fhir_dir = out_dir / "fhir"
    fhir_dir.mkdir(parents=True, exist_ok=True)
    patients, patient_ids = _patients(tag)
    builders = {
        "Patient": (patients, patient_ids),
        "Encounter": _encounters(tag, patient_ids),
        "Observation": _observations(tag, patient_ids),
        "Condition": _conditions(tag, patient_ids),
        "MedicationRequest": _medication_requests(tag, patient_ids),
    }
    files: dict[str, Path] = {}
    ids: dict[str, list[str]] = {}
    output = []
    for rtype, (lines, rids) in builders.items():
        path = fhir_dir / f"{rtype}.000.ndjson"
        path.write_bytes(b"".join(lines))
        files[rtype] = path
        ids[rtype] = rids
        output.append({"type": rtype, "url": path.name, "count": len(lines)})
    manifest = fhir_dir / "manifest.json"
    manifest.write_bytes(
        orjson.dumps(
            {
                "transactionTime": EXPORT_TIME,
                "request": "https://ehr.example.invalid/fhir/$export",
                "requiresAccessToken": False,
                "output": output,
                "error": [],
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    hl7_dir = out_dir / "hl7"
    hl7_files = _hl7_files(hl7_dir, tag)
    valid = sum(len(r) for r in ids.values())
    expected = DemoExpectations(
        fhir_records=sum(len(lines) for lines, _ in builders.values()),
        fhir_loaded=valid,
        fhir_skipped_older=1,
        fhir_quarantined={
            "FHIR_VALIDATION": 1,
            "INVALID_JSON": 1,
            "INVALID_UTF8": 1,
            "MISSING_ID": 1,
            "RESOURCE_TYPE_MISMATCH": 1,
        },
        hl7_messages=5,
        hl7_loaded=10,
        hl7_acks={"AA": 4, "AR": 1},
        hl7_quarantined={"HL7_UNSUPPORTED_TYPE": 1},
    )
    return DemoExport(
        root=out_dir,
        fhir_dir=fhir_dir,
        manifest=manifest,
        fhir_files=files,
        hl7_dir=hl7_dir,
        hl7_files=hl7_files,
        expected=expected,
        ids=ids,
    )
