"""Every rule of the rule table fires on a case made for it and stays quiet on a clean one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from clinflow.errors import ClinflowError, ErrorCategory
from clinflow.packets import (
    Classification,
    DocumentRecord,
    DocumentType,
    FileKind,
    ParseResult,
    cross_document_checks,
    duplicate_findings,
    gap_analysis,
    load_checklist,
    parse_document,
    parse_manifest,
    rule_table,
    rules_markdown,
    semantic_checks,
    structural_checks,
)
from clinflow.packets import extraction_models as em
from clinflow.packets.manifest import PacketManifest, ProtocolDeviation
from clinflow.packets.rules import UnknownRule, make_finding
from clinflow.packets.sample_docs import docx_document, scanned_pdf, text_pdf
from tests.pdf_signing_kit import pdf_signature_rule_cases

AS_OF = date(2026, 5, 1)
SHA = "a" * 64
MANIFEST = PacketManifest(
    site_id="SITE-US-0901",
    site_number="901",
    protocol_number="CFX-301",
    protocol_version="3.0",
    region="us",
    target_activation_date=date(2026, 6, 15),
)
SIGNED = em.SignatureEvidence(present=True, method="typed", signer="Rowan Vey", date="2026-03-10")
PI = "Dr. Rowan Vey, MD"


def _parse(**kw: Any) -> ParseResult:
    base: dict[str, Any] = {"kind": FileKind.PDF, "sha256": SHA, "size": 10, "page_count": 2}
    return ParseResult(**{**base, **kw})


def _cls(doc_type: DocumentType) -> Classification:
    return Classification(doc_type=doc_type, score=10, confidence=1.0)


def structural(ex: Any = None, *, parse: ParseResult | None = None, **kw: Any) -> set[str]:
    ex = ex or em.Form1572Extraction(signature=SIGNED)
    found = structural_checks(
        parse or _parse(),
        kw.pop("classification", _cls(ex.doc_type)),
        ex,
        checklist=load_checklist("us"),
        document="doc.pdf",
        **kw,
    )
    return {f.code for f in found}


def semantic(ex: Any, manifest: PacketManifest = MANIFEST) -> set[str]:
    return {f.code for f in semantic_checks(ex, manifest=manifest, document="doc.pdf", as_of=AS_OF)}


def _rec(name: str, ex: Any) -> DocumentRecord:
    return DocumentRecord(name=name, sha256=SHA, doc_type=ex.doc_type, extraction=ex)


def good_docs(
    pi: str = PI, log_pi: str = PI, cv: str = PI, gcp_for: tuple[str, ...] = (PI, "Sam Ito, RN")
) -> list[DocumentRecord]:
    docs = [
        _rec("1572", em.Form1572Extraction(investigator_name=pi, signature=SIGNED)),
        _rec("cv", em.InvestigatorCVExtraction(person_name=cv, signature=SIGNED)),
        _rec(
            "log",
            em.DelegationLogExtraction(
                principal_investigator=log_pi,
                staff=[
                    em.DelegatedStaff(name="Rowan Vey", role="PI", tasks=["All"]),
                    em.DelegatedStaff(name="Sam Ito, RN", role="Coordinator", tasks=["Consent"]),
                ],
                signature=SIGNED,
            ),
        ),
    ]
    docs += [_rec(f"gcp-{n}", em.GCPCertificateExtraction(holder_name=n)) for n in gcp_for]
    return docs


def cross(
    docs: list[DocumentRecord] | None = None, manifest: PacketManifest = MANIFEST
) -> set[str]:
    found = cross_document_checks(manifest, docs if docs is not None else good_docs(), as_of=AS_OF)
    return {f.code for f in found}


def full_checklist_docs(**overrides: Any) -> list[DocumentRecord]:
    docs = []
    for doc_type in load_checklist("us").documents:
        ex = overrides.get(doc_type.value) or em.EXTRACTION_MODELS[doc_type]()
        docs.append(_rec(doc_type.value, ex))
    return docs


def gaps(docs: list[DocumentRecord], manifest: PacketManifest = MANIFEST) -> set[str]:
    report = gap_analysis(manifest, docs, load_checklist(manifest.region))
    return {g.code for g in report.items} | {w.code for w in report.warnings}


def parse_code(data: bytes, **kw: Any) -> set[str]:
    try:
        parse_document(data, **kw)
    except ClinflowError as err:
        return {err.code}
    return set()


def manifest_code(text: str) -> set[str]:
    try:
        parse_manifest(text)
    except ClinflowError as err:
        return {err.code}
    return set()


GOOD_PDF = text_pdf([["Statement of investigator", "Form FDA 1572"]])
IRB = em.IRBApprovalExtraction
Case = Callable[[], set[str]]

CASES: dict[str, tuple[Case, Case]] = {
    "MANIFEST_INVALID": (
        lambda: manifest_code("site_id: [unclosed"),
        lambda: manifest_code(MANIFEST.model_dump_json()),
    ),
    "FILE_EMPTY": (lambda: parse_code(b""), lambda: parse_code(GOOD_PDF)),
    "FORMAT_UNSUPPORTED": (lambda: parse_code(b"GIF89a...."), lambda: parse_code(GOOD_PDF)),
    "PDF_TRUNCATED": (lambda: parse_code(GOOD_PDF[:-200]), lambda: parse_code(GOOD_PDF)),
    "PDF_CORRUPT": (
        lambda: parse_code(b"%PDF-1.7\nthis is not a pdf body\n%%EOF\n"),
        lambda: parse_code(GOOD_PDF),
    ),
    "PDF_ENCRYPTED": (lambda: _encrypted(user_password="secret"), lambda: _encrypted("")),
    "DOCX_CORRUPT": (
        lambda: parse_code(docx_document(["x"])[:300]),
        lambda: parse_code(docx_document(["x"])),
    ),
    "OCR_UNAVAILABLE": (lambda: _ocr_without_tesseract(), lambda: parse_code(GOOD_PDF)),
    "PAGE_COUNT_BELOW_MINIMUM": (
        lambda: structural(parse=_parse(page_count=1)),
        lambda: structural(parse=_parse(page_count=2)),
    ),
    "FIELD_UNREADABLE": (
        lambda: structural(
            em.Form1572Extraction(
                signature=SIGNED,
                unparsed_dates=["expiry_date"],
                unreadable_pages={"expiry_date": 1},
            )
        ),
        lambda: structural(em.Form1572Extraction(signature=SIGNED, document_date="2026-01-01")),
    ),
    "HASH_MISMATCH": (
        lambda: structural(ingestion_sha256="b" * 64),
        lambda: structural(ingestion_sha256=SHA),
    ),
    "SIGNATURE_MISSING": (
        lambda: structural(em.Form1572Extraction()),
        lambda: structural(em.Form1572Extraction(signature=SIGNED)),
    ),
    "SIGNATURE_UNCERTAIN": (
        lambda: structural(
            em.Form1572Extraction(
                signature=em.SignatureEvidence(
                    status="uncertain",
                    blocks=[
                        em.SignatureBlock(
                            status="uncertain", kind="wet_ink", page=1, evidence="ink 0.3%"
                        )
                    ],
                )
            )
        ),
        lambda: structural(em.Form1572Extraction(signature=SIGNED)),
    ),
    "PDF_OWNER_PASSWORD_ONLY": (
        lambda: structural(parse=_parse(encrypted=True)),
        lambda: structural(parse=_parse(encrypted=False)),
    ),
    "OCR_LOW_CONFIDENCE": (
        lambda: structural(parse=_parse(ocr_pages=[0], ocr_mean_confidence=41.0)),
        lambda: structural(parse=_parse(ocr_pages=[0], ocr_mean_confidence=91.0)),
    ),
    "DOC_TYPE_UNKNOWN": (
        lambda: structural(em.UnknownExtraction()),
        lambda: structural(),
    ),
    "DOC_TYPE_DECLARED_MISMATCH": (
        lambda: structural(
            declared_type=DocumentType.FDA_1572,
            classification=Classification(
                doc_type=DocumentType.INVESTIGATOR_CV,
                score=30,
                confidence=1.0,
                scores={"INVESTIGATOR_CV": 30, "FDA_1572": 2},
            ),
        ),
        lambda: structural(
            declared_type=DocumentType.FDA_1572,
            classification=Classification(
                doc_type=DocumentType.INVESTIGATOR_CV,
                score=12,
                confidence=0.6,
                scores={"INVESTIGATOR_CV": 12, "FDA_1572": 8},
            ),
        ),
    ),
    "PROTOCOL_NUMBER_MISMATCH": (
        lambda: semantic(em.Form1572Extraction(protocol_number="NVX-210")),
        lambda: semantic(em.Form1572Extraction(protocol_number="cfx-301")),
    ),
    "SITE_NUMBER_MISMATCH": (
        lambda: semantic(em.Form1572Extraction(site_number="902")),
        lambda: semantic(em.Form1572Extraction(site_number="0901")),
    ),
    "IRB_APPROVAL_EXPIRED": (
        lambda: semantic(IRB(expiry_date="2026-06-14")),
        lambda: semantic(IRB(expiry_date="2027-06-14")),
    ),
    "IRB_EXPIRY_MISSING": (
        lambda: semantic(IRB()),
        lambda: semantic(IRB(expiry_date="2027-06-14")),
    ),
    "IRB_EXPIRY_NEAR": (
        lambda: semantic(IRB(expiry_date="2026-07-01")),
        lambda: semantic(IRB(expiry_date="2026-12-01")),
    ),
    "LICENSE_EXPIRED": (
        lambda: semantic(em.MedicalLicenseExtraction(expiry_date="2026-06-01")),
        lambda: semantic(em.MedicalLicenseExtraction(expiry_date="2026-06-15")),
    ),
    "LAB_CERTIFICATION_EXPIRED": (
        lambda: semantic(em.LabCertificationExtraction(expiry_date="2025-12-31")),
        lambda: semantic(em.LabCertificationExtraction(expiry_date="2027-12-31")),
    ),
    "GCP_TRAINING_STALE": (
        lambda: semantic(em.GCPCertificateExtraction(completion_date="2023-06-14")),
        lambda: semantic(em.GCPCertificateExtraction(completion_date="2023-06-16")),
    ),
    "SIGNATURE_PREDATES_DOCUMENT": (
        lambda: (
            semantic(em.Form1572Extraction(document_date="2026-03-11", signature=SIGNED))
            | semantic(_sigpage("2026-01-31"))
        ),
        lambda: (
            semantic(em.Form1572Extraction(document_date="2026-03-10", signature=SIGNED))
            | semantic(_sigpage("2026-02-01"))
        ),
    ),
    "PROTOCOL_UNKNOWN": (
        lambda: cross(manifest=MANIFEST.model_copy(update={"protocol_number": "ZZZ-1"})),
        lambda: cross(),
    ),
    "PROTOCOL_VERSION_NOT_ACTIVE": (
        lambda: cross(manifest=MANIFEST.model_copy(update={"protocol_version": "2.0"})),
        lambda: cross(manifest=MANIFEST.model_copy(update={"protocol_version": "3.0"})),
    ),
    "INVESTIGATOR_NAME_MISMATCH": (
        lambda: cross(good_docs(cv="Dr. Robin Vey")) | cross(good_docs(log_pi="R. Vey")),
        lambda: cross(good_docs(pi="Rowan Vey", log_pi="DR. ROWAN VEY", cv="Prof. Rowan Vey, PhD")),
    ),
    "DELEGATE_WITHOUT_GCP": (
        lambda: cross(good_docs(gcp_for=(PI,))),
        lambda: cross(good_docs(gcp_for=("Rowan Vey", "Sam Ito"))),
    ),
    "PROTOCOL_DEVIATION_UNAPPROVED": (
        lambda: cross(
            manifest=MANIFEST.model_copy(update={"deviations": [ProtocolDeviation(id="D1")]})
        ),
        lambda: cross(
            manifest=MANIFEST.model_copy(
                update={"deviations": [ProtocolDeviation(id="D1", approval_reference="A-1")]}
            )
        ),
    ),
    "DUPLICATE_DOCUMENT": (
        lambda: {f.code for f in duplicate_findings({"a.pdf": SHA, "b.pdf": SHA})},
        lambda: {f.code for f in duplicate_findings({"a.pdf": SHA, "b.pdf": "b" * 64})},
    ),
    "GAP_DOCUMENT_MISSING": (
        lambda: gaps([d for d in full_checklist_docs() if d.doc_type is not DocumentType.FDA_1572]),
        lambda: gaps(full_checklist_docs()),
    ),
    "GAP_WRONG_VERSION": (
        lambda: (
            gaps(full_checklist_docs(FDA_1572=em.Form1572Extraction(form_version="01/99")))
            | gaps(full_checklist_docs(CTA_BUDGET=em.CTABudgetExtraction(protocol_version="2.0")))
        ),
        lambda: gaps(full_checklist_docs(FDA_1572=em.Form1572Extraction(form_version="03/24"))),
    ),
    "LAB_CONTACT_MISSING": (
        lambda: gaps(
            full_checklist_docs(
                FDA_1572=em.Form1572Extraction(
                    laboratories=[em.LaboratoryEntry(name="Lab A", phone="312 555 0100")]
                )
            )
        ),
        lambda: gaps(
            full_checklist_docs(
                FDA_1572=em.Form1572Extraction(
                    laboratories=[
                        em.LaboratoryEntry(name="Lab A", phone="1 555 01", fax="1 555 02")
                    ]
                )
            )
        ),
    ),
    "GAP_RECOMMENDED_MISSING": (
        lambda: gaps(
            [d for d in full_checklist_docs() if d.doc_type is not DocumentType.LAB_CERTIFICATION]
        ),
        lambda: gaps(full_checklist_docs()),
    ),
}


def _sigpage(signed: str) -> em.ProtocolSignaturePageExtraction:
    return em.ProtocolSignaturePageExtraction(
        signature=em.SignatureEvidence(present=True, method="digital", date=signed)
    )


def _encrypted(user_password: str) -> set[str]:
    import io

    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(GOOD_PDF))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return parse_code(out.getvalue(), options=None)


def _ocr_without_tesseract() -> set[str]:
    import os

    saved = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        return parse_code(scanned_pdf([["x"]]))
    finally:
        os.environ["PATH"] = saved


CASES.update(pdf_signature_rule_cases())


def test_every_rule_of_the_table_has_a_case() -> None:
    assert set(CASES) == set(rule_table())


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_fires_on_its_case(code: str) -> None:
    fire, _ = CASES[code]
    assert code in fire()


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_is_quiet_on_a_clean_case(code: str) -> None:
    _, clean = CASES[code]
    assert code not in clean()


def test_findings_carry_the_tables_category_and_message() -> None:
    finding = make_finding(
        "IRB_APPROVAL_EXPIRED", "irb.pdf", expiry="2026-01-01", activation="2026-02-01"
    )
    assert finding.category is ErrorCategory.COMPLIANCE_BLOCK
    assert finding.message == (
        "IRB/IEC approval expires 2026-01-01, before the planned activation on 2026-02-01"
    )
    assert finding.details == {"expiry": "2026-01-01", "activation": "2026-02-01"}
    with pytest.raises(UnknownRule):
        make_finding("NO_SUCH_RULE")
    with pytest.raises(ValueError):
        make_finding("GAP_DOCUMENT_MISSING")


def test_rules_markdown_lists_every_rule_once() -> None:
    text = rules_markdown()
    lines = text.strip().splitlines()
    assert lines[0].startswith("| code | category |")
    assert len(lines) == 2 + len(rule_table())
    for code, rule in rule_table().items():
        [row] = [line for line in lines if line.startswith(f"| `{code}` |")]
        assert f"| {rule.category} |" in row


EU = MANIFEST.model_copy(update={"region": "eu", "country": "DE"})


def _without(docs: list[DocumentRecord], *types: DocumentType) -> list[DocumentRecord]:
    return [d for d in docs if d.doc_type not in types]


def test_eu_packet_under_a_us_ind_needs_the_1572_and_financial_disclosure() -> None:
    base = _without(full_checklist_docs(), DocumentType.FDA_1572, DocumentType.FINANCIAL_DISCLOSURE)
    report = gap_analysis(EU, base, load_checklist("eu"))
    assert not report.has_gaps  # no IND: neither is needed
    assert "GAP_RECOMMENDED_MISSING" in {w.code for w in report.warnings}  # FD recommended
    with_ind = [
        _rec("IRB_APPROVAL", em.IRBApprovalExtraction(ind_number="123456"))
        if d.doc_type is DocumentType.IRB_APPROVAL
        else d
        for d in base
    ]
    report = gap_analysis(EU, with_ind, load_checklist("eu"))
    assert {g.doc_type for g in report.missing} == {
        DocumentType.FDA_1572,
        DocumentType.FINANCIAL_DISCLOSURE,
    }


def test_lab_certificate_is_required_when_the_1572_lists_a_laboratory() -> None:
    lab = em.LaboratoryEntry(name="Lab A", phone="1", fax="2")
    docs = _without(
        full_checklist_docs(FDA_1572=em.Form1572Extraction(laboratories=[lab])),
        DocumentType.LAB_CERTIFICATION,
    )
    report = gap_analysis(MANIFEST, docs, load_checklist("us"))
    assert [g.doc_type for g in report.missing] == [DocumentType.LAB_CERTIFICATION]


def test_versions_and_editions_compare_canonically() -> None:
    docs = full_checklist_docs(
        FDA_1572=em.Form1572Extraction(form_version="(3/24)", protocol_version="3"),
        PROTOCOL_SIGNATURE_PAGE=em.ProtocolSignaturePageExtraction(protocol_version="v3.0"),
    )
    assert not gap_analysis(MANIFEST, docs, load_checklist("us")).has_gaps
    old = full_checklist_docs(FDA_1572=em.Form1572Extraction(form_version="1/21"))
    assert "GAP_WRONG_VERSION" in gaps(old)
