"""HL7 v2: split, route, ACK, map to FHIR R4 and validate; corpus and generated edge cases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import hl7
import orjson
import pytest

from clinflow.clinical import (
    ProcessContext,
    QuarantineReason,
    ValidationReport,
    count_hl7,
    process_hl7_message,
    split_hl7_messages,
)
from clinflow.clinical.fhir_validate import validate_resource
from tests.clinical.conftest import hl7_corpus

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CTX = ProcessContext(source_uri="test.hl7")

ADT = (
    "MSH|^~\\&|ADM|HOSP^1.2.3^ISO|RCV|RF|20240102030405-0500||ADT^A01^ADT_A01|CTRL1|P|2.5",
    "EVN|A01|20240102030405",
    "PID|1||MRN123^^^HOSP^MR~999^^^SSA^SS||Doe^Jane^Q||19800102|F|||1 Main St^^Town^ST^12345",
    "PV1|1|I|W^1^1||||||||||||||||VN777|||||||||||||||||||||||||20240102030000",
)
ORU = (
    "MSH|^~\\&|LAB|HOSP|RCV|RF|20240105120000||ORU^R01|CTRL2|P|2.5",
    "PID|1||MRN123^^^HOSP^MR||Doe^Jane",
    "OBR|1|PL1|FL1|24331-1^Lipid panel^LN|||20240105110000",
    "OBX|1|NM|2345-7^Glucose^LN||5.5|mmol/L^^UCUM|||||F|||20240105113000",
    "OBX|2|NM|29463-7^Weight^LN||150|lbs|||||F",
    "OBX|3|ST|8251-1^Note^LN||fasting||||||P",
    "OBX|4|CE|883-9^ABO^LN||A^Group A^L||||||F",
)


def message(segments: tuple[str, ...], sep: str = "\r") -> bytes:
    return sep.join(segments).encode() + sep.encode()


def only_message(data: bytes) -> hl7.Message:
    split = split_hl7_messages(data)
    assert len(split.messages) == 1
    return split.messages[0]


def test_adt_maps_to_valid_patient_and_encounter() -> None:
    result = process_hl7_message(only_message(message(ADT)), CTX, ack_time=WHEN)
    assert result.route == "ADT" and result.ack_code == "AA" and result.quarantine is None
    kinds = [row.resource_type for row in result.rows]
    assert kinds == ["Patient", "Encounter"]
    patient = orjson.loads(result.rows[0].body)
    encounter = orjson.loads(result.rows[1].body)
    for res in (patient, encounter):
        validate_resource(res)  # the stored body itself is valid R4 (R4B models)
    assert patient["identifier"][0]["value"] == "MRN123"
    assert patient["gender"] == "female" and patient["birthDate"] == "1980-01-02"
    assert patient["meta"]["lastUpdated"] == "2024-01-02T03:04:05-05:00"
    assert encounter["subject"]["reference"] == f"Patient/{patient['id']}"
    assert encounter["class"]["code"] == "IMP"
    assert encounter["period"]["start"] == "2024-01-02T03:00:00+00:00"
    assert "datetime_offset_added" in result.coercions
    # Deterministic ids: the same message maps to the same keys.
    again = process_hl7_message(only_message(message(ADT)), CTX, ack_time=WHEN)
    assert [r.id for r in again.rows] == [r.id for r in result.rows]
    assert again.ack == result.ack


def test_oru_maps_observations_with_ucum() -> None:
    result = process_hl7_message(only_message(message(ORU)), CTX, ack_time=WHEN)
    assert result.ack_code == "AA", result.quarantine
    obs = [orjson.loads(r.body) for r in result.rows]
    assert len(obs) == 4 and len({o["id"] for o in obs}) == 4
    glucose, weight, note, abo = obs
    assert glucose["valueQuantity"]["code"] == "mg/dL"
    assert glucose["valueQuantity"]["value"] == pytest.approx(99.0858, rel=1e-5)
    assert glucose["code"]["coding"][0]["system"] == "http://loinc.org"
    assert weight["valueQuantity"]["code"] == "kg"
    assert note["valueString"] == "fasting" and note["status"] == "preliminary"
    assert abo["valueCodeableConcept"]["coding"][0]["code"] == "A"
    patient_ref = process_hl7_message(only_message(message(ADT)), CTX).rows[0].id
    assert glucose["subject"]["reference"] == f"Patient/{patient_ref}"


def test_ack_carries_original_control_id() -> None:
    result = process_hl7_message(only_message(message(ADT)), CTX, ack_time=WHEN)
    ack = hl7.parse(result.ack)
    assert str(ack.segment("MSA")(1)) == "AA"
    assert str(ack.segment("MSA")(2)) == "CTRL1"
    assert str(ack.segment("MSH")(9)).startswith("ACK")
    assert str(ack.segment("MSH")(7)) == "20260102030405"


def test_unknown_type_rejected_and_quarantined() -> None:
    segs = ("MSH|^~\\&|X|Y|||20240101||ZZZ^Z01|C9|P|2.5", "PID|1||M1")
    result = process_hl7_message(only_message(message(segs)), CTX, ack_time=WHEN)
    assert result.ack_code == "AR" and not result.rows
    assert result.quarantine is not None
    assert result.quarantine.reason == QuarantineReason.HL7_UNSUPPORTED_TYPE
    assert "ZZZ" in result.quarantine.message
    assert str(hl7.parse(result.ack).segment("MSA")(2)) == "C9"


def test_missing_pid_is_application_error() -> None:
    segs = ("MSH|^~\\&|X|Y|||20240101||ADT^A01|C8|P|2.5", "EVN|A01")
    result = process_hl7_message(only_message(message(segs)), CTX)
    assert result.ack_code == "AE"
    assert result.quarantine is not None
    assert result.quarantine.reason == QuarantineReason.HL7_MISSING_FIELD


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_batch_envelope_and_separators(sep: str) -> None:
    data = message(("FHS|^~\\&|A", "BHS|^~\\&|A", *ADT, *ORU, "BTS|2", "FTS|1"), sep=sep)
    split = split_hl7_messages(data)
    assert [m.index for m in split.messages] == [0, 1]
    assert split.envelope_segments == {"FHS": 1, "BHS": 1, "BTS": 1, "FTS": 1}
    assert data[split.messages[1].offset :].startswith(b"MSH")
    results = [process_hl7_message(m, CTX) for m in split.messages]
    assert [r.route for r in results] == ["ADT", "ORU"]
    assert all(r.ack_code == "AA" for r in results)


def test_custom_encoding_characters() -> None:
    segs = (
        "MSH$%~\\&$ADM$HOSP$$$20240102030405+0000$$ADT%A04$C7$P$2.5",
        "PID$1$$MRN9%%%HOSP%MR$$Roe%Ann$$19900101$F",
    )
    result = process_hl7_message(only_message(message(segs)), CTX)
    assert result.ack_code == "AA", result.quarantine
    patient = orjson.loads(result.rows[0].body)
    assert patient["identifier"][0]["value"] == "MRN9"
    assert patient["name"][0] == {"family": "Roe", "given": ["Ann"]}
    assert str(hl7.parse(result.ack).segment("MSA")(2)) == "C7"


def test_corpus_split_route_ack_map() -> None:
    root = hl7_corpus()
    report = ValidationReport()
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    assert files
    for path in files:
        for raw in split_hl7_messages(path.read_bytes()).messages:
            result = process_hl7_message(raw, ProcessContext(source_uri=str(path)))
            count_hl7(report, result)
            assert result.ack_code in ("AA", "AE", "AR")
            assert (result.quarantine is None) == (result.ack_code == "AA")
            if result.ack_code == "AA":
                assert result.route in ("ADT", "ORU", "ORM", "SIU", "MDM")
            for row in result.rows:
                validate_resource(orjson.loads(row.body))
    assert report.hl7_messages == sum(report.hl7_acks.values())
    assert report.valid + report.quarantined_total == report.hl7_messages
    assert report.hl7_routes.get("ADT", 0) > 0 and report.hl7_routes.get("ORU", 0) > 0
    assert report.by_resource_type.get("Observation", 0) > 0
    assert report.quarantined.get("HL7_UNSUPPORTED_TYPE", 0) > 0


def test_corpus_batch_file_and_cp1252() -> None:
    root = hl7_corpus()
    batch = split_hl7_messages((root / "python-hl7" / "sample_batch1.hl7").read_bytes())
    assert len(batch.messages) == 2 and batch.envelope_segments.get("BHS") == 1
    cp = Path(root / "python-hl7" / "cp1252_non_ascii.hl7").read_bytes()
    msgs = split_hl7_messages(cp).messages
    result = process_hl7_message(msgs[0], CTX)
    assert "hl7_decoded_cp1252" in result.coercions
