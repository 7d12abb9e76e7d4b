"""PHI never reaches log output: tokenising, masking, scrubbing, and the configured pipeline."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import BaseModel

from clinflow.keyring import Keyring
from clinflow.log_config import (
    THIRD_PARTY_LEVELS,
    LoggingConfigError,
    configure_logging,
    get_logger,
)
from clinflow.phi_mask import (
    REDACTED,
    TokeniseIdentifiers,
    mask_fields,
    mask_phi_fields,
    scrub_phi_patterns,
    scrub_text,
    scrub_values,
    tokenise_fields,
)
from clinflow.settings import Settings
from clinflow.tokenise import TOKEN_PATTERN, TokeniseError, Tokeniser, is_token, tokenise

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))

# The PHI of one synthetic patient. Every string here must be absent from log output.
NAME_FAMILY = "Quintanilla"
NAME_GIVEN = "Evangelina"
BIRTH_DATE = "1961-07-23"
MRN = "MRN-0048213"
SSN = "999-41-8823"
PHONE = "555-867-5309"
EMAIL = "evangelina.q@example.org"
STREET = "742 Larkspur Terrace"
CITY = "Wolcottville"
NOTE = "patient reports dizziness after the second dose"
PHI_STRINGS = (NAME_FAMILY, NAME_GIVEN, BIRTH_DATE, MRN, SSN, PHONE, EMAIL, STREET, CITY, NOTE)


def fhir_patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "pat-record-7",
        "identifier": [{"system": "urn:hospital:mrn", "value": MRN}],
        "name": [{"use": "official", "family": NAME_FAMILY, "given": [NAME_GIVEN]}],
        "birthDate": BIRTH_DATE,
        "gender": "female",
        "telecom": [{"system": "phone", "value": PHONE}],
        "address": [{"line": [STREET], "city": CITY, "state": "MA"}],
    }


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings isolated from the environment's keyring and level."""
    values: dict[str, Any] = {
        "home": tmp_path,
        "keyring_file": None,
        "keyring_json": None,
        "log_level": "INFO",
        "log_json": True,
    }
    values.update(overrides)
    return Settings(**values)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put logging and structlog back as they were, whatever a test configured."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    third_party = {name: logging.getLogger(name).level for name in THIRD_PARTY_LEVELS}
    config = structlog.get_config()
    was_configured = structlog.is_configured()
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
        for name, lvl in third_party.items():
            logging.getLogger(name).setLevel(lvl)
        logging.captureWarnings(False)
        structlog.reset_defaults()
        if was_configured:
            structlog.configure(**config)


# ----------------------------------------------------------------------------- tokenise


def test_token_is_deterministic_and_well_formed() -> None:
    first = tokenise(MRN, KEY_A, "mrn")
    assert first == tokenise(MRN, KEY_A, "mrn")
    assert first.startswith("tok_mrn_")
    assert TOKEN_PATTERN.fullmatch(first)
    assert MRN not in first
    assert is_token(first)
    assert not is_token(MRN)


def test_tokens_differ_by_key_kind_and_value() -> None:
    base = tokenise(MRN, KEY_A, "mrn")
    assert tokenise(MRN, KEY_B, "mrn") != base
    other_kind = tokenise(MRN, KEY_A, "member")
    assert other_kind != base
    assert other_kind.split("_")[-1] != base.split("_")[-1], "kinds must not share digests"
    assert tokenise(MRN + "1", KEY_A, "mrn") != base
    assert tokenise(123, KEY_A) == tokenise("123", KEY_A)


def test_token_is_stable_across_processes() -> None:
    code = (
        "import sys; from clinflow.tokenise import tokenise; "
        "print(tokenise(sys.argv[1], bytes(range(32)), 'mrn'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, MRN], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == tokenise(MRN, KEY_A, "mrn")


def test_digest_length_is_configurable() -> None:
    long = tokenise(MRN, KEY_A, "mrn", digest_chars=32)
    assert len(long.split("_")[-1]) == 32
    assert long.startswith(tokenise(MRN, KEY_A, "mrn"))


@pytest.mark.parametrize(
    ("value", "key", "kind", "digest_chars"),
    [
        (MRN, KEY_A, "MRN", 16),
        (MRN, KEY_A, "m_r", 16),
        (MRN, KEY_A, "", 16),
        (MRN, b"short", "mrn", 16),
        (MRN, KEY_A, "mrn", 8),
        (True, KEY_A, "mrn", 16),
        (1.5, KEY_A, "mrn", 16),
    ],
)
def test_tokenise_rejects_bad_input(value: Any, key: bytes, kind: str, digest_chars: int) -> None:
    with pytest.raises(TokeniseError):
        tokenise(value, key, kind, digest_chars=digest_chars)


def test_tokeniser_uses_active_token_key_and_hides_it() -> None:
    ring = Keyring.generate()
    key_id, key = ring.active("token")
    tok = Tokeniser.from_keyring(ring)
    assert tok(MRN, "mrn") == tokenise(MRN, key, "mrn")
    assert tok.key_id == key_id
    assert key.hex() not in repr(tok) and repr(key) not in repr(tok)
    ring.rotate("token")
    assert Tokeniser.from_keyring(ring)(MRN, "mrn") != tok(MRN, "mrn")


def test_tokeniser_from_settings_reads_the_keyring_file(tmp_path: Path) -> None:
    ring = Keyring.generate()
    ring.save(tmp_path / "keyring.json")
    tok = Tokeniser.from_settings(settings_for(tmp_path))
    assert tok(MRN, "mrn") == Tokeniser.from_keyring(ring)(MRN, "mrn")


# ----------------------------------------------------------------------------- masking


def test_mask_fields_redacts_nested_phi_and_keeps_the_rest() -> None:
    patient = fhir_patient()
    original = json.loads(json.dumps(patient))
    event = {"batch": {"items": [{"patient": patient}], "site": "site-9"}, "count": 3}
    masked = mask_fields(event)
    text = json.dumps(masked)
    for phi in (NAME_FAMILY, NAME_GIVEN, BIRTH_DATE, PHONE, STREET, CITY):
        assert phi not in text
    inner = masked["batch"]["items"][0]["patient"]
    assert inner["name"] == REDACTED
    assert inner["birthDate"] == REDACTED
    assert inner["address"] == REDACTED
    assert inner["telecom"] == REDACTED
    assert inner["gender"] == "female"
    assert inner["id"] == "pat-record-7"
    assert masked["batch"]["site"] == "site-9"
    assert masked["count"] == 3
    assert patient == original, "the caller's object must not be modified"


@pytest.mark.parametrize(
    "key",
    ["birthDate", "birth_date", "BIRTH-DATE", "Birth Date", "dob", "DOB", "patientName",
     "PATIENT_NAME", "first-name", "LastName", "postalCode", "postal_code", "Email",
     "free_text", "Note"],
)  # fmt: skip
def test_mask_key_matching_ignores_case_and_separators(key: str) -> None:
    assert mask_fields({key: "x"}) == {key: REDACTED}


@pytest.mark.parametrize("key", ["site", "bucket_name", "queue", "lineno", "status", "reason"])
def test_mask_leaves_non_phi_keys(key: str) -> None:
    assert mask_fields({key: "kept"}) == {key: "kept"}


def test_mask_keeps_line_numbers_but_not_address_lines() -> None:
    assert mask_fields({"line": 42}) == {"line": 42}
    assert mask_fields({"line": [STREET]}) == {"line": REDACTED}
    assert mask_fields({"Line": STREET}) == {"Line": REDACTED}


def test_mask_person_keys_redact_strings_but_walk_containers() -> None:
    assert mask_fields({"patient": f"{NAME_GIVEN} {NAME_FAMILY}"}) == {"patient": REDACTED}
    assert mask_fields({"patient": {"site": "s1", "dob": BIRTH_DATE}}) == {
        "patient": {"site": "s1", "dob": REDACTED}
    }
    assert mask_fields({"name": None}) == {"name": None}


def test_mask_walks_models_dataclasses_and_tuples() -> None:
    class Person(BaseModel):
        name: str
        site: str

    @dataclass
    class Visit:
        birth_date: str
        ward: str

    masked = mask_fields({"p": Person(name=NAME_FAMILY, site="s1"), "v": (Visit(BIRTH_DATE, "4"),)})
    assert masked == {
        "p": {"name": REDACTED, "site": "s1"},
        "v": ({"birth_date": REDACTED, "ward": "4"},),
    }


def test_mask_fails_closed_on_very_deep_nesting() -> None:
    deep: Any = NAME_FAMILY
    for _ in range(60):
        deep = {"level": deep}
    assert NAME_FAMILY not in json.dumps(mask_fields(deep))


# ----------------------------------------------------------------------------- tokenising fields


def test_tokenise_fields_replaces_identifiers_with_tokens() -> None:
    tok = Tokeniser(key=KEY_A)
    event = {
        "mrn": MRN,
        "record": {"medical_record_number": MRN, "Patient-ID": "p-77", "SSN": SSN},
        "identifier": [{"system": "urn:hospital:mrn", "value": MRN}],
        "subject_id": None,
        "site": "site-9",
    }
    out = tokenise_fields(event, tok)
    assert out["mrn"] == tok(MRN, "mrn")
    assert out["record"]["medical_record_number"] == out["mrn"], "same kind, same token"
    assert out["record"]["Patient-ID"] == tok("p-77", "patient")
    assert out["record"]["SSN"] == tok(SSN, "ssn")
    assert is_token(out["identifier"])
    assert out["subject_id"] is None
    assert out["site"] == "site-9"
    text = json.dumps(out)
    assert MRN not in text and SSN not in text and "p-77" not in text
    assert tokenise_fields(out, tok) == out, "tokens are not tokenised twice"


def test_tokenise_fields_without_key_redacts() -> None:
    out = tokenise_fields({"mrn": MRN, "nested": [{"member_id": 42}]}, None)
    assert out == {"mrn": REDACTED, "nested": [{"member_id": REDACTED}]}


# ----------------------------------------------------------------------------- scrubbing


@pytest.mark.parametrize(
    ("text", "marker"),
    [
        (f"ssn {SSN} on file", "[SSN]"),
        (f"call {PHONE}", "[PHONE]"),
        ("call (555) 867-5309 now", "[PHONE]"),
        ("call +1 555.867.5309", "[PHONE]"),
        ("call +44 20 7946 0958", "[PHONE]"),
        (f"mail {EMAIL}", "[EMAIL]"),
        (f"born {BIRTH_DATE}.", "[DATE]"),
        ("born 07/23/1961", "[DATE]"),
    ],
)
def test_scrub_text_replaces_phi_shapes(text: str, marker: str) -> None:
    out = scrub_text(text)
    assert marker in out
    assert not any(ch.isdigit() for ch in out.split(marker, 1)[0][-1:])


@pytest.mark.parametrize(
    "text",
    [
        "started at 2026-11-05T10:00:00.123456Z",
        "window 2026-11-05 10:00:00+00:00",
        "workflow 123e4567-e89b-12d3-a456-426614174000",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "token tok_mrn_0123456789abcdef",
        "loaded 18433 records in 2.5 s from part 12 of 40",
        "version 4.48 port 8333",
    ],
)
def test_scrub_text_keeps_operational_text(text: str) -> None:
    assert scrub_text(text) == text


def test_scrub_values_walks_nested_strings_and_keys() -> None:
    value = {"meta": {"contact": [f"via {EMAIL}"], EMAIL: 1}, "n": 5, "ok": True}
    out = scrub_values(value)
    assert EMAIL not in json.dumps(out)
    assert out["n"] == 5 and out["ok"] is True


# ----------------------------------------------------------------------------- processors alone


def test_each_processor_alone_on_an_event_dict() -> None:
    timestamp = "2026-11-05"
    event = {
        "event": f"contact {EMAIL}",
        "mrn": MRN,
        "patient": {"name": NAME_FAMILY},
        "timestamp": timestamp,
        "level": "info",
    }

    masked = mask_phi_fields(None, "info", dict(event))
    assert masked["patient"] == {"name": REDACTED}
    assert masked["mrn"] == MRN and masked["event"] == event["event"]

    tok = Tokeniser(key=KEY_A)
    tokenised = TokeniseIdentifiers(tok)(None, "info", dict(event))
    assert tokenised["mrn"] == tok(MRN, "mrn")
    assert tokenised["patient"] == {"name": NAME_FAMILY}

    scrubbed = scrub_phi_patterns(None, "info", dict(event))
    assert scrubbed["event"] == "contact [EMAIL]"
    assert scrubbed["mrn"] == MRN
    assert scrubbed["timestamp"] == timestamp, "reserved keys are left alone"
    assert list(scrubbed) == list(event), "key order is kept"


# ----------------------------------------------------------------------------- the pipeline


@pytest.mark.usefixtures("restore_logging")
def test_configured_pipeline_keeps_phi_out_of_structlog_and_stdlib(tmp_path: Path) -> None:
    ring = Keyring.generate()
    stream = io.StringIO()
    configure_logging(settings_for(tmp_path), stream=stream, keyring=ring)
    log = get_logger("clinflow.test")

    log.info(
        "patient loaded",
        site="site-9",
        mrn=MRN,
        patient={"name": f"{NAME_GIVEN} {NAME_FAMILY}", "birthDate": BIRTH_DATE},
        batch={"records": [fhir_patient()], "count": 1},
    )
    logging.getLogger("temporalio.activity").warning(
        "activity retried for %s", "doc-12", extra={"mrn": MRN, "patient_name": NAME_FAMILY}
    )
    logging.getLogger("botocore.hooks").info(f"callback for {EMAIL} ssn {SSN}")
    try:
        raise ValueError(f"bad row: dob {BIRTH_DATE} phone {PHONE}")
    except ValueError:
        log.exception("row rejected", mrn=MRN, row=7)

    output = stream.getvalue()
    for phi in PHI_STRINGS:
        assert phi not in output, f"{phi!r} leaked into the log"

    lines = records(stream)
    assert [r["event"] for r in lines][:2] == ["patient loaded", "activity retried for doc-12"]
    first, foreign, boto, failure = lines
    token = Tokeniser.from_keyring(ring)(MRN, "mrn")
    assert first["mrn"] == token and foreign["mrn"] == token and failure["mrn"] == token
    assert first["site"] == "site-9" and first["batch"]["count"] == 1
    assert first["batch"]["records"][0]["gender"] == "female"
    assert first["level"] == "info" and first["logger"] == "clinflow.test"
    assert foreign["logger"] == "temporalio.activity" and foreign["level"] == "warning"
    assert foreign["patient_name"] == REDACTED
    assert "[EMAIL]" in boto["event"] and "[SSN]" in boto["event"]
    assert "ValueError" in failure["exception"] and failure["row"] == 7
    for rec in lines:
        assert rec["timestamp"].endswith("Z") and "T" in rec["timestamp"]


@pytest.mark.usefixtures("restore_logging")
def test_missing_keyring_redacts_identifiers_instead_of_leaking(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(settings_for(tmp_path / "empty"), stream=stream)
    get_logger("clinflow.test").info("lookup", mrn=MRN, member_id="M-55")
    output = stream.getvalue()
    assert MRN not in output and "M-55" not in output
    lines = records(stream)
    assert any("tokenisation key unavailable" in r["event"] for r in lines)
    lookup = next(r for r in lines if r["event"] == "lookup")
    assert lookup["mrn"] == REDACTED and lookup["member_id"] == REDACTED


@pytest.mark.usefixtures("restore_logging")
def test_reconfiguring_replaces_handler_and_key(tmp_path: Path) -> None:
    first_stream, second_stream = io.StringIO(), io.StringIO()
    ring_a, ring_b = Keyring.generate(), Keyring.generate()
    configure_logging(settings_for(tmp_path), stream=first_stream, keyring=ring_a)
    log = get_logger("clinflow.test")
    log.info("one", mrn=MRN)
    configure_logging(settings_for(tmp_path), stream=second_stream, keyring=ring_b)
    log.info("two", mrn=MRN)

    ours = [h for h in logging.getLogger().handlers if getattr(h, "_clinflow_log_handler", False)]
    assert len(ours) == 1
    assert [r["event"] for r in records(first_stream)] == ["one"]
    (second,) = records(second_stream)
    assert second["event"] == "two"
    assert second["mrn"] == Tokeniser.from_keyring(ring_b)(MRN, "mrn")
    assert second["mrn"] != records(first_stream)[0]["mrn"]


@pytest.mark.usefixtures("restore_logging")
def test_level_comes_from_settings_and_noisy_libraries_are_capped(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(
        settings_for(tmp_path, log_level="warning"), stream=stream, keyring=Keyring.generate()
    )
    log = get_logger("clinflow.test")
    log.info("quiet")
    log.warning("loud")
    assert [r["event"] for r in records(stream)] == ["loud"]

    stream = io.StringIO()
    configure_logging(
        settings_for(tmp_path, log_level="DEBUG"), stream=stream, keyring=Keyring.generate()
    )
    logging.getLogger("botocore.endpoint").debug("request body ...")
    get_logger("clinflow.test").debug("detail")
    assert [r["event"] for r in records(stream)] == ["detail"]


def test_unknown_level_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(LoggingConfigError) as info:
        configure_logging(settings_for(tmp_path, log_level="CHATTY"), stream=io.StringIO())
    assert info.value.setting == "log_level"


@pytest.mark.usefixtures("restore_logging")
def test_logging_before_configuration_is_still_masked() -> None:
    structlog.reset_defaults()
    captured: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record.getMessage())

    target = logging.getLogger("clinflow.early")
    handler = Collect()
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        get_logger("clinflow.early").info("early", mrn=MRN, dob=BIRTH_DATE, site="s1")
    finally:
        target.removeHandler(handler)
        target.setLevel(logging.NOTSET)
    (line,) = captured
    assert MRN not in line and BIRTH_DATE not in line
    assert json.loads(line)["site"] == "s1"
