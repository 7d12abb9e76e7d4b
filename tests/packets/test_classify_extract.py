from __future__ import annotations

from datetime import date

import pytest

from clinflow.packets import DocumentType, classify, classify_text, extract, parse_document
from clinflow.packets import sample_data as sd
from clinflow.packets.extraction_models import (
    DelegationLogExtraction,
    Form1572Extraction,
    IRBApprovalExtraction,
)
from clinflow.packets.sample_data import EU_SITE, US_SITE, Variant
from clinflow.packets.sample_docs import text_pdf

BUILDERS = {
    DocumentType.FDA_1572: lambda s, v: sd.form_1572(s, v),
    DocumentType.INVESTIGATOR_CV: sd.investigator_cv,
    DocumentType.MEDICAL_LICENSE: lambda s, v: sd.medical_license(s, v, scanned=False),
    DocumentType.GCP_CERTIFICATE: lambda s, v: sd.gcp_certificate(s, s.pi, v),
    DocumentType.IRB_APPROVAL: lambda s, v: sd.irb_approval(s, v),
    DocumentType.ICF_APPROVAL: sd.icf_approval,
    DocumentType.DELEGATION_LOG: sd.delegation_log,
    DocumentType.FINANCIAL_DISCLOSURE: sd.financial_disclosure,
    DocumentType.CTA_BUDGET: lambda s, v: sd.clinical_trial_agreement(s, v),
    DocumentType.PROTOCOL_SIGNATURE_PAGE: sd.protocol_signature_page,
    DocumentType.LAB_CERTIFICATION: sd.lab_certification,
}


@pytest.mark.parametrize("site", [US_SITE, EU_SITE], ids=["us", "eu"])
@pytest.mark.parametrize("doc_type", list(BUILDERS))
def test_each_document_type_classifies(doc_type: DocumentType, site: sd.Site) -> None:
    doc = BUILDERS[doc_type](site, Variant())
    result = classify(parse_document(doc.data))
    assert result.doc_type is doc_type, result.matched
    assert 0.5 < result.confidence <= 1.0


@pytest.mark.parametrize("text", ["", "Minutes of the parking committee", "\x00\x01 garbage"])
def test_unclassifiable_text_is_unknown_not_an_error(text: str) -> None:
    result = classify_text(text)
    assert result.doc_type is DocumentType.UNKNOWN and result.confidence == 0.0


def test_close_scores_are_unknown() -> None:
    # Equal evidence for two types: no margin, so no guess.
    text = "Curriculum Vitae\nMedical License"
    assert classify_text(text).doc_type is DocumentType.UNKNOWN


def _extract(lines: list[str], doc_type: DocumentType, dayfirst: bool = False):  # type: ignore[no-untyped-def]
    return extract(parse_document(text_pdf([lines])), doc_type, dayfirst=dayfirst)


@pytest.mark.parametrize(
    ("written", "dayfirst"),
    [
        ("12-Mar-2026", False),
        ("03/12/2026", False),
        ("12/03/2026", True),
        ("March 12, 2026", False),
        ("2026-03-12", False),
        ("12.03.2026", True),
    ],
)
def test_extracted_dates_are_iso(written: str, dayfirst: bool) -> None:
    ex = _extract(
        ["IRB Approval Letter", f"Approval Date: {written}", f"Expiration Date: {written}"],
        DocumentType.IRB_APPROVAL,
        dayfirst,
    )
    assert isinstance(ex, IRBApprovalExtraction)
    assert ex.approval_date == ex.expiry_date == "2026-03-12"
    assert ex.unparsed_dates == []


def test_unreadable_labelled_dates_are_listed_not_raised() -> None:
    ex = _extract(
        ["Approval Date: 2026-01-02", "Expiration Date: 31/31/2O27"], DocumentType.IRB_APPROVAL
    )
    assert isinstance(ex, IRBApprovalExtraction)
    assert ex.approval_date == "2026-01-02" and ex.expiry_date is None
    assert ex.unparsed_dates == ["expiry_date"]
    assert ex.unreadable_pages == {"expiry_date": 0}


def test_a_generic_date_label_followed_by_words_is_not_an_unreadable_date() -> None:
    ex = _extract(
        ["Date: Completed Score", "Expiration Date: 2027-01-01"], DocumentType.IRB_APPROVAL
    )
    assert ex.unparsed_dates == [] and ex.document_date is None


def test_1572_fields_and_digital_signature() -> None:
    doc = sd.form_1572(US_SITE, Variant())
    ex = extract(parse_document(doc.data), DocumentType.FDA_1572)
    assert isinstance(ex, Form1572Extraction)
    assert ex.investigator_name == "Dr. Alina Marsh, MD"
    assert ex.sub_investigators == ["Dr. Jonah Whitfield, MD"]
    assert (ex.protocol_number, ex.protocol_version, ex.site_number) == ("CFX-301", "3.0", "101")
    assert ex.form_version == "03/24"
    assert ex.document_date == "2026-03-12"
    assert ex.signature.present and ex.signature.method == "digital"
    assert ex.signature.date == "2026-03-14"
    unsigned = extract(
        parse_document(sd.form_1572(US_SITE, Variant(unsigned_1572=True)).data),
        DocumentType.FDA_1572,
    )
    assert not unsigned.signature.present and unsigned.signature.method == "none"


def test_delegation_log_staff_and_tasks_from_a_docx_table() -> None:
    doc = sd.delegation_log(EU_SITE, Variant())
    ex = extract(parse_document(doc.data), DocumentType.DELEGATION_LOG, dayfirst=True)
    assert isinstance(ex, DelegationLogExtraction)
    assert ex.principal_investigator == "Dr. Tobias Lindqvist, MD"
    assert [s.name for s in ex.staff] == [
        "Dr. Tobias Lindqvist, MD",
        "Dr. Elena Moravec, MD",
        "Kasper Hald, RN",
    ]
    assert ex.staff[2].tasks == ["Informed consent", "Sample handling"]
    assert ex.staff[2].role == "Study Nurse"
    assert ex.staff[0].start_date == date(2026, 3, 20).isoformat()
    assert ex.signature.method == "typed" and ex.signature.signer == "Tobias Lindqvist"


def test_inline_protocol_reference_is_understood() -> None:
    ex = _extract(["Protocol CFX-301, Version 2.0 signature page"], DocumentType.UNKNOWN)
    assert (ex.protocol_number, ex.protocol_version) == ("CFX-301", "2.0")


def test_extractions_round_trip_through_json() -> None:
    from pydantic import TypeAdapter

    from clinflow.packets import Extraction

    adapter: TypeAdapter[Extraction] = TypeAdapter(Extraction)
    for doc_type, build in BUILDERS.items():
        ex = extract(parse_document(build(US_SITE, Variant()).data), doc_type)
        assert adapter.validate_json(adapter.dump_json(ex)) == ex
