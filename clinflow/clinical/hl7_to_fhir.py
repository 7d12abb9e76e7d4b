"""Mapping parsed HL7 v2 messages to FHIR R4 resources (dicts, validated by the caller).

- ADT: ``PID`` -> Patient; ``PV1`` -> Encounter (when the visit has a number or an admit time).
- ORU: every ``OBX`` -> Observation (NM values as Quantity, UCUM-normalised downstream by the
  same normaliser as FHIR input; ST/TX/FT as string; CE/CWE/CNE as CodeableConcept; TS/DTM/DT
  as dateTime; anything else as its text).

Ids are deterministic, so a message sent twice maps to the same rows: the first 48 hex digits of
SHA-256 over the resource type, the sending facility (MSH-4) and the business key (MRN and its
assigning authority for Patient; visit number, else MRN + admit time, for Encounter; order
number, OBR position, OBX set id, code and sub-id for Observation). ``meta.lastUpdated`` is the
message time (MSH-7), so a later message about the same patient wins the merge.

Coding systems from HL7 table 0396 (``LN``, ``SCT``, ``I10``...) go through the code-system
crosswalk; unknown ones become ``urn:clinflow:hl7v2:codesystem:<name>`` so nothing is lost.
Functions here read PHI and return PHI; they never log.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote

import hl7

from clinflow.clinical.code_systems import canonical_system

_DTM = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(?:(\d{2})(?:\.(\d{1,4}))?)?)?([+-]\d{4})?$"
)
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V2_0004 = "http://terminology.hl7.org/CodeSystem/v2-0004"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

_PATIENT_CLASS = {"I": "IMP", "O": "AMB", "E": "EMER", "P": "PRENC", "R": "AMB", "B": "IMP"}
_GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
_OBS_STATUS = {
    "F": "final",
    "C": "corrected",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "I": "registered",
    "X": "cancelled",
    "D": "entered-in-error",
    "W": "entered-in-error",
    "A": "amended",
}
_ENCOUNTER_STATUS = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "arrived",
    "A05": "planned",
    "A06": "in-progress",
    "A07": "in-progress",
    "A11": "cancelled",
    "A13": "in-progress",
    "A14": "planned",
}


class MappingError(ValueError):
    """A message lacks what the mapping needs (``field`` names it, e.g. ``PID-3``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def deterministic_id(*parts: str) -> str:
    """A FHIR id (48 hex digits) derived from ``parts``; stable across runs and machines."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]


def value(seg: hl7.Segment, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """Unescaped text of ``field.rep.comp.sub`` ('' when absent)."""
    try:
        return str(seg.extract_field(None, field, rep, comp, sub)).strip()
    except (IndexError, KeyError, TypeError, AttributeError):
        return ""


def repetitions(seg: hl7.Segment, field: int) -> int:
    if field >= len(seg):
        return 0
    f = seg(field)
    if isinstance(f, list) and f and all(isinstance(r, hl7.Repetition) for r in f):
        return len(f)
    return 1


def hl7_datetime(text: str, *, instant: bool = False) -> tuple[str | None, list[str]]:
    """HL7 DTM/TS to a FHIR dateTime (or instant); ``(None, [...])`` when unparseable.

    A time without offset gets ``+00:00`` (coercion ``datetime_offset_added``); an instant is
    padded to seconds.
    """
    m = _DTM.match(text.strip().split("^", 1)[0]) if text else None
    if not m:
        return None, ["hl7_datetime_invalid"] if text else []
    year, month, day, hour, minute, second, frac, tz = m.groups()
    if hour is None:
        if instant:
            if not (month and day):
                return None, ["hl7_datetime_invalid"]
            hour = minute = second = "00"
        else:
            return "-".join(p for p in (year, month, day) if p), []
    if not (month and day):
        return None, ["hl7_datetime_invalid"]
    coercions: list[str] = []
    minute = minute or "00"
    second = second or "00"
    out = f"{year}-{month}-{day}T{hour}:{minute}:{second}"
    if frac:
        out += f".{frac}"
    if tz:
        out += f"{tz[:3]}:{tz[3:]}"
    else:
        out += "+00:00"
        coercions.append("datetime_offset_added")
    return out, coercions


def coding(system: str, code: str, display: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if system:
        out["system"] = canonical_system(system) or (
            f"urn:clinflow:hl7v2:codesystem:{quote(system, safe='')}"
        )
    if code:
        out["code"] = code
    if display:
        out["display"] = display
    return out


def codeable(seg: hl7.Segment, field: int) -> dict[str, Any] | None:
    """CE/CWE (code^text^system^alt-code^alt-text^alt-system) to a CodeableConcept."""
    codings = []
    for base in (1, 4):
        c = coding(value(seg, field, 1, base + 2), value(seg, field, 1, base), "")
        if c.get("code"):
            text = value(seg, field, 1, base + 1)
            if text:
                c["display"] = text
            codings.append(c)
    text = value(seg, field, 1, 2)
    if not codings and not text:
        return None
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = codings
    if text:
        out["text"] = text
    return out


class MessageFacts:
    """What every mapping needs from MSH and PID."""

    def __init__(self, msg: hl7.Message, fallback_time: str | None) -> None:
        msh = msg.segment("MSH")
        self.facility = value(msh, 4) or value(msh, 3)
        self.event = value(msh, 9, 1, 2)
        self.control_id = value(msh, 10)
        self.coercions: list[str] = []
        time, c = hl7_datetime(value(msh, 7), instant=True)
        self.coercions += c
        self.last_updated = time or fallback_time
        self.pid: hl7.Segment | None = _first(msg, "PID")
        self.mrn, self.authority = _mrn(self.pid) if self.pid is not None else ("", "")

    def meta(self) -> dict[str, Any]:
        return {"lastUpdated": self.last_updated} if self.last_updated else {}

    def patient_id(self) -> str | None:
        if not self.mrn:
            return None
        return deterministic_id("Patient", self.facility, self.authority, self.mrn)


def _first(msg: hl7.Message, seg_id: str) -> hl7.Segment | None:
    try:
        return msg.segment(seg_id)
    except KeyError:
        return None


def _mrn(pid: hl7.Segment) -> tuple[str, str]:
    """(MRN, assigning authority) from PID-3: the MR repetition, else the first with a value."""
    chosen = ("", "")
    for rep in range(1, repetitions(pid, 3) + 1):
        ident = value(pid, 3, rep, 1)
        if not ident:
            continue
        authority = value(pid, 3, rep, 4)
        if value(pid, 3, rep, 5).upper() == "MR":
            return ident, authority
        if not chosen[0]:
            chosen = (ident, authority)
    return chosen


def map_adt(msg: hl7.Message, facts: MessageFacts) -> list[dict[str, Any]]:
    """Patient (+ Encounter) for an ADT message; raises ``MappingError`` without PID-3."""
    pid = facts.pid
    if pid is None:
        raise MappingError("PID", "ADT message without PID segment")
    patient_id = facts.patient_id()
    if patient_id is None:
        raise MappingError("PID-3", "no patient identifier")
    patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_id, "meta": facts.meta()}
    system = (
        f"urn:clinflow:hl7v2:{quote(facts.facility, safe='')}:"
        f"{quote(facts.authority or 'mrn', safe='')}"
    )
    patient["identifier"] = [
        {
            "use": "usual",
            "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            "system": system,
            "value": facts.mrn,
        }
    ]
    names = []
    for rep in range(1, repetitions(pid, 5) + 1):
        family = value(pid, 5, rep, 1)
        given = [g for g in (value(pid, 5, rep, 2), value(pid, 5, rep, 3)) if g]
        name: dict[str, Any] = {}
        if family:
            name["family"] = family
        if given:
            name["given"] = given
        if name:
            names.append(name)
    if names:
        patient["name"] = names
    gender = _GENDER.get(value(pid, 8).upper())
    if gender:
        patient["gender"] = gender
    birth, c = hl7_datetime(value(pid, 7))
    facts.coercions += c
    if birth:
        patient["birthDate"] = birth[:10]
    addresses = []
    for rep in range(1, repetitions(pid, 11) + 1):
        addr: dict[str, Any] = {}
        lines = [x for x in (value(pid, 11, rep, 1), value(pid, 11, rep, 2)) if x]
        if lines:
            addr["line"] = lines
        for key, comp in (("city", 3), ("state", 4), ("postalCode", 5), ("country", 6)):
            if value(pid, 11, rep, comp):
                addr[key] = value(pid, 11, rep, comp)
        if addr:
            addresses.append(addr)
    if addresses:
        patient["address"] = addresses
    out = [patient]
    encounter = _encounter(msg, facts, patient_id)
    if encounter is not None:
        out.append(encounter)
    return out


def _encounter(msg: hl7.Message, facts: MessageFacts, patient_id: str) -> dict[str, Any] | None:
    pv1 = _first(msg, "PV1")
    if pv1 is None:
        return None
    visit = value(pv1, 19)
    admit, c1 = hl7_datetime(value(pv1, 44))
    discharge, c2 = hl7_datetime(value(pv1, 45))
    facts.coercions += c1 + c2
    if visit:
        enc_id = deterministic_id("Encounter", facts.facility, visit)
    elif admit:
        enc_id = deterministic_id("Encounter", facts.facility, facts.mrn, admit)
    else:
        facts.coercions.append("hl7_encounter_without_visit_key")
        return None
    patient_class = value(pv1, 2).upper()
    if patient_class in _PATIENT_CLASS:
        enc_class = {"system": V3_ACT_CODE, "code": _PATIENT_CLASS[patient_class]}
    elif patient_class:
        enc_class = {"system": V2_0004, "code": patient_class}
    else:
        enc_class = {"system": V2_0004, "code": "U"}
        facts.coercions.append("hl7_patient_class_missing")
    status = "finished" if discharge else _ENCOUNTER_STATUS.get(facts.event, "unknown")
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": enc_id,
        "meta": facts.meta(),
        "status": status,
        "class": enc_class,
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if visit:
        encounter["identifier"] = [
            {"system": f"urn:clinflow:hl7v2:{quote(facts.facility, safe='')}:visit",
             "value": visit}
        ]  # fmt: skip
    period = {k: v for k, v in (("start", admit), ("end", discharge)) if v}
    if period:
        encounter["period"] = period
    return encounter


def map_oru(msg: hl7.Message, facts: MessageFacts) -> list[dict[str, Any]]:
    """One Observation per OBX; raises ``MappingError`` when the message has no OBX."""
    patient_id = facts.patient_id()
    observations: list[dict[str, Any]] = []
    order_key = facts.control_id
    obr_index = 0
    obr: hl7.Segment | None = None
    for position, seg in enumerate(msg):
        seg_id = str(seg[0][0]) if seg and seg[0] else ""
        if seg_id == "OBR":
            obr, obr_index = seg, obr_index + 1
            order_key = value(seg, 3) or value(seg, 2) or facts.control_id
        elif seg_id == "OBX":
            observations.append(
                _observation(seg, obr, facts, patient_id, order_key, obr_index, position)
            )
    if not observations:
        raise MappingError("OBX", "ORU message without OBX segments")
    return observations


def _observation(
    obx: hl7.Segment,
    obr: hl7.Segment | None,
    facts: MessageFacts,
    patient_id: str | None,
    order_key: str,
    obr_index: int,
    position: int,
) -> dict[str, Any]:
    set_id = value(obx, 1) or str(position)
    obs_id = deterministic_id(
        "Observation", facts.facility, order_key, str(obr_index), set_id,
        value(obx, 3, 1, 1), value(obx, 4),
    )  # fmt: skip
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "meta": facts.meta(),
        "status": _OBS_STATUS.get(value(obx, 11).upper(), "unknown"),
        "code": codeable(obx, 3) or {"text": "unspecified"},
    }
    if patient_id:
        obs["subject"] = {"reference": f"Patient/{patient_id}"}
    effective, c = hl7_datetime(value(obx, 14) or (value(obr, 7) if obr is not None else ""))
    facts.coercions += c
    if effective:
        obs["effectiveDateTime"] = effective
    _observation_value(obx, obs, facts)
    return obs


def _observation_value(obx: hl7.Segment, obs: dict[str, Any], facts: MessageFacts) -> None:
    vtype = value(obx, 2).upper()
    raw = value(obx, 5)
    if not raw:
        return
    if vtype == "NM":
        try:
            number = float(raw)
        except ValueError:
            facts.coercions.append("hl7_nm_value_not_numeric")
            obs["valueString"] = raw
            return
        quantity: dict[str, Any] = {"value": int(number) if number.is_integer() else number}
        unit_code, unit_text, unit_system = (
            value(obx, 6, 1, 1),
            value(obx, 6, 1, 2),
            value(obx, 6, 1, 3),
        )
        if unit_code:
            quantity["code"] = unit_code
            quantity["unit"] = unit_text or unit_code
        if unit_system:
            quantity["system"] = canonical_system(unit_system) or unit_system
        obs["valueQuantity"] = quantity
    elif vtype in ("CE", "CWE", "CNE"):
        concept = codeable(obx, 5)
        if concept:
            obs["valueCodeableConcept"] = concept
    elif vtype in ("TS", "DTM", "DT"):
        when, c = hl7_datetime(raw)
        facts.coercions += c
        if when:
            obs["valueDateTime"] = when
    else:
        obs["valueString"] = raw
