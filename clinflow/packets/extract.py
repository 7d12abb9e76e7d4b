"""Extraction of the fields each document type carries, from a parse result's text.

Fields are read from labelled lines (``Label: value``; a DOCX table row reads as cells joined
by `` | ``). Each field has a short list of label spellings, most specific first. Dates are
normalised to ISO 8601; a labelled date that cannot be read is named in ``unparsed_dates``
(structural validation reports it) instead of raising. Never raises for content.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

from clinflow.packets.dates import find_date
from clinflow.packets.extraction_models import (
    CTABudgetExtraction,
    DelegatedStaff,
    DelegationLogExtraction,
    Extraction,
    ExtractionBase,
    FinancialDisclosureExtraction,
    Form1572Extraction,
    GCPCertificateExtraction,
    ICFApprovalExtraction,
    InvestigatorCVExtraction,
    IRBApprovalExtraction,
    LabCertificationExtraction,
    MedicalLicenseExtraction,
    ProtocolSignaturePageExtraction,
    SignatureEvidence,
    UnknownExtraction,
)
from clinflow.packets.models import DocumentType, ParseResult

# Label spellings per field, most specific first; each is a regex fragment.
LABELS: dict[str, list[str]] = {
    "protocol_number": [r"protocol\s+(?:number|no\.?|#|id)", r"protocol"],
    "protocol_version": [
        r"protocol\s+version(?:\s+number)?",
        r"version\s+of\s+(?:the\s+)?protocol",
        r"protocol\s+amendment\s+version",
    ],
    "site_number": [r"site\s+(?:number|no\.?|#|id)"],
    "document_date": [
        r"date\s+of\s+issue",
        r"issue\s+date",
        r"document\s+date",
        r"letter\s+date",
        r"date",
    ],
    "form_version": [r"form\s+(?:version|revision|edition)", r"template\s+version"],
    "signature_date": [
        r"date\s+signed",
        r"signature\s+date",
        r"date\s+of\s+signature",
        r"signed\s+on",
    ],
    "investigator_name": [
        r"name\s+of\s+(?:principal\s+)?investigator",
        r"(?:principal\s+)?investigator(?:'s)?\s+name",
        r"printed\s+name",
        r"principal\s+investigator",
        r"investigator",
    ],
    "irb_name": [
        r"name\s+of\s+(?:the\s+)?(?:irb|iec|ethics\s+committee)",
        r"(?:irb|iec)\s+name",
        r"reviewing\s+(?:irb|iec|committee)",
        r"committee",
        r"irb",
        r"iec",
    ],
    "sub_investigators": [r"sub-?investigators?"],
    "person_name": [r"full\s+name", r"name"],
    "position": [r"current\s+position", r"position", r"title"],
    "holder_name": [
        r"awarded\s+to",
        r"name\s+of\s+licensee",
        r"licensee",
        r"holder",
        r"participant",
        r"name",
    ],
    "license_number": [r"licen[cs]e\s+(?:number|no\.?|#)", r"registration\s+number"],
    "issue_date": [r"issue\s+date", r"date\s+of\s+issue", r"issued(?:\s+on)?"],
    "expiry_date": [
        r"(?:approval\s+)?expiration\s+date",
        r"(?:approval\s+)?expiry\s+date",
        r"approval\s+expires",
        r"expires(?:\s+on)?",
        r"valid\s+(?:until|through|to)",
    ],
    "completion_date": [
        r"date\s+of\s+completion",
        r"completion\s+date",
        r"completed(?:\s+on)?",
    ],
    "provider": [r"training\s+provider", r"provider", r"issued\s+by"],
    "approval_date": [r"date\s+of\s+approval", r"approval\s+date", r"approved\s+on"],
    "icf_version": [r"(?:icf|consent\s+form|informed\s+consent\s+form)\s+version", r"version"],
    "financial_interests": [
        r"significant\s+financial\s+interests?",
        r"financial\s+interests?\s+declared",
        r"financial\s+interests?",
    ],
    "sponsor": [r"sponsor"],
    "institution": [r"institution"],
    "total_budget": [r"total\s+(?:study\s+)?budget", r"budget\s+total"],
    "effective_date": [r"effective\s+date"],
    "lab_name": [r"laborator(?:y|ies)\s+name", r"lab\s+name", r"laboratory"],
    "certificate_number": [
        r"clia\s+(?:number|no\.?|#)",
        r"certificate\s+(?:number|no\.?|#)",
        r"accreditation\s+(?:number|no\.?|#)",
    ],
}

_VERSION = re.compile(r"\d+(?:\.\d+)*[A-Za-z]?")
_PROTOCOL_INLINE = re.compile(
    r"protocol\s+(?:no\.?\s*|number\s*)?:?\s*(?P<num>[A-Z][A-Z0-9]*-[A-Z0-9-]*\d)"
    r"[\s,;]+(?:version|v\.?)\s*:?\s*(?P<ver>\d+(?:\.\d+)*)",
    re.IGNORECASE,
)
_PROTOCOL_TOKEN = re.compile(r"[A-Z][A-Z0-9]*-[A-Z0-9-]*\d", re.IGNORECASE)
_FORM_1572 = re.compile(r"form\s+fda\s+1572\s*\((?P<v>[0-9]{1,2}/[0-9]{2})\)", re.IGNORECASE)
_TYPED_SIGNATURE = re.compile(
    r"(?im)^[^\S\n]*(?:investigator\s+|pi\s+|chair(?:person)?\s+)?(?:signature|signed)"
    r"[^:\n]{0,30}:[^\S\n]*(?:/s/|\[signed\]|(?:electronically\s+)?signed"
    r"(?:\s+electronically)?\s+by)[^\S\n]*(?P<name>[^\n|]*)"
)
_TITLES = re.compile(r"^(?:dr|prof|professor|mr|mrs|ms|mx)\.?\s+", re.IGNORECASE)
_DEGREES = re.compile(r",.*$")
_DEGREE = re.compile(r"^(?:MD|DO|PhD|RN|MBBS|MBChB|PharmD|MSc|BSc|MPH|FRCP|NP|PA)\b\.?$")
_SPLIT_LIST = re.compile(r"\s*[;,]\s*")


def _label_regex(label: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?im)(?:^|(?<=\|)|(?<=\s\s))[^\S\n]*{label}[^\S\n]*:[^\S\n]*(?P<v>[^\n|]*?)[^\S\n]*(?=\||$)"
    )


_COMPILED: dict[str, list[re.Pattern[str]]] = {
    field: [_label_regex(label) for label in labels] for field, labels in LABELS.items()
}


def find_label(text: str, field: str) -> str | None:
    """The value written after the first matching label of ``field``, or None (or empty)."""
    for regex in _COMPILED[field]:
        for m in regex.finditer(text):
            value = m.group("v").strip().strip("_").strip()
            if value:
                return value
    return None


def normalise_person_name(name: str) -> str:
    """A comparable form of a person's name: no titles, degrees, punctuation or case."""
    cleaned = _DEGREES.sub("", name.strip())
    while True:
        stripped = _TITLES.sub("", cleaned)
        if stripped == cleaned:
            break
        cleaned = stripped
    cleaned = re.sub(r"[^a-z\s'-]", " ", cleaned.lower())
    return " ".join(cleaned.split())


class _Reader:
    """Reads fields from one document's text, collecting unreadable dates."""

    def __init__(self, text: str, dayfirst: bool) -> None:
        self.text = text
        self.dayfirst = dayfirst
        self.unparsed: list[str] = []

    def value(self, field: str) -> str | None:
        return find_label(self.text, field)

    def date(self, field: str) -> str | None:
        raw = self.value(field)
        if raw is None:
            return None
        found = find_date(raw, dayfirst=self.dayfirst)
        if found is None:
            self.unparsed.append(field)
            return None
        return found.isoformat()

    def name(self, field: str) -> str | None:
        raw = self.value(field)
        if raw is None:
            return None
        return raw.split("  ")[0].strip() or None

    def listing(self, field: str) -> list[str]:
        raw = self.value(field)
        if not raw or raw.lower() in {"none", "n/a", "na", "-"}:
            return []
        if ";" in raw:
            return [p.strip() for p in raw.split(";") if p.strip()]
        names: list[str] = []
        for part in (p.strip() for p in raw.split(",")):
            if names and _DEGREE.match(part):
                names[-1] = f"{names[-1]}, {part}"  # "Jo Doe, MD" is one person
            elif part:
                names.append(part)
        return names


def _protocol(reader: _Reader) -> tuple[str | None, str | None]:
    number = reader.value("protocol_number")
    version_raw = reader.value("protocol_version")
    inline = _PROTOCOL_INLINE.search(reader.text)
    if number:
        token = _PROTOCOL_TOKEN.search(number)
        number = token.group(0).upper() if token else None
    if number is None and inline:
        number = inline.group("num").upper()
    version: str | None = None
    if version_raw:
        m = _VERSION.search(version_raw)
        version = m.group(0) if m else None
    if version is None and inline:
        version = inline.group("ver")
    return number, version


def _signature(parse: ParseResult, reader: _Reader) -> SignatureEvidence:
    signed_fields = [f for f in parse.signature_fields if f.signed]
    typed = _TYPED_SIGNATURE.search(reader.text)
    date = reader.date("signature_date")
    if signed_fields:
        field = signed_fields[0]
        return SignatureEvidence(
            present=True,
            method="digital",
            signer=field.signer or (typed.group("name").strip() if typed else None),
            date=field.signed_at or date,
        )
    if typed:
        return SignatureEvidence(
            present=True, method="typed", signer=typed.group("name").strip() or None, date=date
        )
    return SignatureEvidence(present=False, method="none", date=date)


def _common(parse: ParseResult, reader: _Reader) -> dict[str, Any]:
    number, version = _protocol(reader)
    site = reader.value("site_number")
    form_version = reader.value("form_version")
    m = _FORM_1572.search(reader.text)
    if form_version is None and m:
        form_version = m.group("v")
    return {
        "protocol_number": number,
        "protocol_version": version,
        "site_number": site.split()[0] if site else None,
        "document_date": reader.date("document_date"),
        "form_version": form_version,
        "signature": _signature(parse, reader),
    }


def _interests(value: str | None) -> bool | None:
    if value is None:
        return None
    low = value.lower()
    if low.startswith(("none", "no", "not applicable", "n/a")):
        return False
    if low.startswith(("yes", "declared", "see attached")):
        return True
    return None


def _delegation_rows(text: str, dayfirst: bool) -> list[DelegatedStaff]:
    staff: list[DelegatedStaff] = []
    columns: dict[str, int] | None = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 3:
            if columns is not None and line.strip() and "|" not in line:
                continue
            continue
        low = [c.lower() for c in cells]
        if columns is None:
            if any("name" in c for c in low) and any("task" in c for c in low):
                columns = {}
                for i, c in enumerate(low):
                    for key in ("name", "role", "task", "start"):
                        if key in c and key not in columns:
                            columns[key] = i
            continue
        name_i = columns.get("name", 0)
        if name_i >= len(cells) or not cells[name_i]:
            continue
        tasks_i = columns.get("task")
        role_i = columns.get("role")
        start_i = columns.get("start")
        start = None
        if start_i is not None and start_i < len(cells):
            found = find_date(cells[start_i], dayfirst=dayfirst)
            start = found.isoformat() if found else None
        staff.append(
            DelegatedStaff(
                name=cells[name_i],
                role=cells[role_i] if role_i is not None and role_i < len(cells) else None,
                tasks=(
                    [t for t in _SPLIT_LIST.split(cells[tasks_i]) if t]
                    if tasks_i is not None and tasks_i < len(cells)
                    else []
                ),
                start_date=start,
            )
        )
    return staff


def _f1572(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return Form1572Extraction(
        **base,
        investigator_name=r.name("investigator_name"),
        irb_name=r.value("irb_name"),
        sub_investigators=r.listing("sub_investigators"),
    )


def _cv(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return InvestigatorCVExtraction(
        **base, person_name=r.name("person_name"), position=r.value("position")
    )


def _license(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return MedicalLicenseExtraction(
        **base,
        holder_name=r.name("holder_name"),
        license_number=r.value("license_number"),
        issue_date=r.date("issue_date"),
        expiry_date=r.date("expiry_date"),
    )


def _gcp(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return GCPCertificateExtraction(
        **base,
        holder_name=r.name("holder_name"),
        completion_date=r.date("completion_date"),
        provider=r.value("provider"),
    )


def _irb(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return IRBApprovalExtraction(
        **base,
        irb_name=r.value("irb_name"),
        investigator_name=r.name("investigator_name"),
        approval_date=r.date("approval_date"),
        expiry_date=r.date("expiry_date"),
    )


def _icf(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    raw = r.value("icf_version")
    m = _VERSION.search(raw) if raw else None
    return ICFApprovalExtraction(
        **base,
        irb_name=r.value("irb_name"),
        icf_version=m.group(0) if m else None,
        approval_date=r.date("approval_date"),
    )


def _delegation(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return DelegationLogExtraction(
        **base,
        principal_investigator=r.name("investigator_name"),
        staff=_delegation_rows(r.text, r.dayfirst),
    )


def _financial(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return FinancialDisclosureExtraction(
        **base,
        investigator_name=r.name("investigator_name"),
        interests_declared=_interests(r.value("financial_interests")),
    )


def _cta(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return CTABudgetExtraction(
        **base,
        sponsor=r.value("sponsor"),
        institution=r.value("institution"),
        total_budget=r.value("total_budget"),
        effective_date=r.date("effective_date"),
    )


def _sigpage(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return ProtocolSignaturePageExtraction(**base, investigator_name=r.name("investigator_name"))


def _lab(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    low = r.text.lower()
    accreditation = next(
        (
            label
            for key, label in (("clia", "CLIA"), ("iso 15189", "ISO 15189"), ("college of", "CAP"))
            if key in low
        ),
        None,
    )
    return LabCertificationExtraction(
        **base,
        lab_name=r.value("lab_name"),
        certificate_number=r.value("certificate_number"),
        accreditation=accreditation,
        expiry_date=r.date("expiry_date"),
    )


def _unknown(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return UnknownExtraction(**base)


_EXTRACTORS: dict[DocumentType, Callable[[_Reader, dict[str, Any]], ExtractionBase]] = {
    DocumentType.FDA_1572: _f1572,
    DocumentType.INVESTIGATOR_CV: _cv,
    DocumentType.MEDICAL_LICENSE: _license,
    DocumentType.GCP_CERTIFICATE: _gcp,
    DocumentType.IRB_APPROVAL: _irb,
    DocumentType.ICF_APPROVAL: _icf,
    DocumentType.DELEGATION_LOG: _delegation,
    DocumentType.FINANCIAL_DISCLOSURE: _financial,
    DocumentType.CTA_BUDGET: _cta,
    DocumentType.PROTOCOL_SIGNATURE_PAGE: _sigpage,
    DocumentType.LAB_CERTIFICATION: _lab,
    DocumentType.UNKNOWN: _unknown,
}


def extract(parse: ParseResult, doc_type: DocumentType, *, dayfirst: bool = False) -> Extraction:
    """The extraction model of ``doc_type`` filled from ``parse``'s text.

    ``dayfirst`` reads ambiguous slash dates (``03/12/2026``) as day/month (European use);
    the default reads them month/day. Deterministic; never raises for content.
    """
    reader = _Reader(parse.text, dayfirst)
    base = _common(parse, reader)
    result = _EXTRACTORS[doc_type](reader, base)
    if reader.unparsed:
        result = result.model_copy(update={"unparsed_dates": sorted(set(reader.unparsed))})
    return cast(Extraction, result)
