"""PDF signature validation on real signed PDFs made at test time, and on the public corpus."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from clinflow.errors import ErrorCategory
from clinflow.pdf_signatures import (
    PdfSignatureError,
    SignatureStatus,
    TrustBundle,
    pdf_signature_findings,
    validate_pdf_signatures,
)
from clinflow.settings import Settings
from tests.conftest import corpus_path
from tests.pdf_signing_kit import (
    NOW,
    Kit,
    flip_signed_byte,
    rotate_first_page,
    sign,
    unsigned_pdf,
    write_bundle,
)


@pytest.fixture(scope="module")
def kit() -> Kit:
    return Kit.create()


@pytest.fixture(scope="module")
def trust(kit: Kit) -> TrustBundle:
    return TrustBundle.from_pem(kit.ca.pem)


@pytest.fixture(scope="module")
def signed(kit: Kit) -> bytes:
    return sign(unsigned_pdf(), kit.signer, kit.ca)


def only(pdf: bytes | Path, trust: TrustBundle) -> tuple[SignatureStatus, str]:
    report = validate_pdf_signatures(pdf, trust)
    assert len(report.signatures) == 1
    sig = report.signatures[0]
    return sig.status, sig.reason


def test_valid_signature(signed: bytes, trust: TrustBundle, kit: Kit) -> None:
    report = validate_pdf_signatures(signed, trust)
    [sig] = report.signatures
    assert report.ok and sig.status is SignatureStatus.VALID
    assert sig.intact and sig.trusted
    assert sig.coverage == "ENTIRE_FILE" and sig.modification_level == "NONE"
    assert sig.signing_time_source == "signer-reported"
    assert sig.signer_fingerprint_sha256 == kit.signer.asn1_cert().sha256.hex()
    assert sig.trust_anchor_fingerprint_sha256 == kit.ca.asn1_cert().sha256.hex()
    assert pdf_signature_findings(signed, required=True, trust=trust) == []


def test_untrusted_ca(signed: bytes, kit: Kit) -> None:
    status, reason = only(signed, TrustBundle.from_pem(kit.other_ca.pem))
    assert status is SignatureStatus.UNTRUSTED
    assert "approved certificate authority" in reason
    [finding] = pdf_signature_findings(
        signed, required=True, trust=TrustBundle.from_pem(kit.other_ca.pem), document="a.pdf"
    )
    assert finding.code == "PDF_SIGNATURE_UNTRUSTED"
    assert finding.category is ErrorCategory.COMPLIANCE_BLOCK
    assert finding.document == "a.pdf"


def test_no_approved_ca_at_all_is_untrusted(signed: bytes) -> None:
    status, _ = only(signed, TrustBundle([]))
    assert status is SignatureStatus.UNTRUSTED


def test_modified_after_signing(signed: bytes, trust: TrustBundle) -> None:
    report = validate_pdf_signatures(rotate_first_page(signed), trust)
    [sig] = report.signatures
    assert sig.status is SignatureStatus.MODIFIED
    assert sig.intact  # the signed revision itself is untouched
    assert sig.coverage == "ENTIRE_REVISION" and sig.modification_level == "OTHER"
    [finding] = pdf_signature_findings(rotate_first_page(signed), required=False, trust=trust)
    assert finding.code == "PDF_SIGNATURE_MODIFIED"
    assert "OTHER" in finding.message


def test_bytes_altered_inside_signed_range(signed: bytes, trust: TrustBundle) -> None:
    status, reason = only(flip_signed_byte(signed), trust)
    assert status is SignatureStatus.INVALID
    assert "do not match" in reason


def test_expired_certificate_at_signing_time(kit: Kit, trust: TrustBundle) -> None:
    pdf = sign(unsigned_pdf(), kit.expired_signer, kit.ca)
    report = validate_pdf_signatures(pdf, trust)
    [sig] = report.signatures
    assert sig.status is SignatureStatus.EXPIRED
    assert "not valid at signing time" in sig.reason
    [finding] = pdf_signature_findings(pdf, required=True, trust=trust)
    assert finding.code == "PDF_SIGNATURE_EXPIRED"


def test_certificate_expired_after_signing_stays_valid(kit: Kit, trust: TrustBundle) -> None:
    pdf = sign(unsigned_pdf(), kit.lapsed_signer, kit.ca, signing_time=NOW - timedelta(days=100))
    [sig] = validate_pdf_signatures(pdf, trust).signatures
    assert sig.status is SignatureStatus.VALID, sig.reason
    assert "expired since" in sig.reason


def test_second_signature_is_an_allowed_update(signed: bytes, kit: Kit, trust: TrustBundle) -> None:
    twice = sign(signed, kit.signer, kit.ca, field="Signature2")
    report = validate_pdf_signatures(twice, trust)
    assert [s.field for s in report.signatures] == ["Signature1", "Signature2"]
    assert [s.status for s in report.signatures] == [SignatureStatus.VALID] * 2
    assert report.signatures[0].modification_level == "FORM_FILLING"
    strict = validate_pdf_signatures(twice, trust, max_modification="NONE")
    assert strict.signatures[0].status is SignatureStatus.MODIFIED


def test_missing_required_signature(trust: TrustBundle) -> None:
    pdf = unsigned_pdf()
    assert validate_pdf_signatures(pdf, trust).signed is False
    [finding] = pdf_signature_findings(pdf, required=True, trust=trust, doc_type="FORM_FDA_1572")
    assert finding.code == "PDF_SIGNATURE_MISSING"
    assert "FORM_FDA_1572" in finding.message
    assert pdf_signature_findings(pdf, required=False, trust=trust) == []


def test_unreadable_pdf_is_reported_not_raised(trust: TrustBundle) -> None:
    report = validate_pdf_signatures(b"%PDF-1.7\nnot a pdf\n%%EOF\n", trust)
    assert not report.signed
    [finding] = pdf_signature_findings(b"garbage", required=True, trust=trust)
    assert finding.code == "PDF_SIGNATURE_MISSING"


def test_trust_bundle_from_settings(tmp_path: Path, kit: Kit, signed: bytes) -> None:
    bundle_dir = write_bundle(tmp_path / "trust", kit.other_ca, kit.ca)
    bundle = TrustBundle.from_settings(Settings(pdfsig_trust_bundle=bundle_dir))
    assert len(bundle.roots) == 2
    assert only(signed, bundle)[0] is SignatureStatus.VALID
    assert TrustBundle.from_settings(Settings()).roots == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(PdfSignatureError):
        TrustBundle.load(tmp_path / "empty")
    with pytest.raises(PdfSignatureError):
        validate_pdf_signatures(signed, bundle, max_modification="ANYTHING")


def test_signed_pdf_path_input(tmp_path: Path, signed: bytes, trust: TrustBundle) -> None:
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    assert only(path, trust)[0] is SignatureStatus.VALID


async def test_callable_from_a_running_event_loop(signed: bytes, trust: TrustBundle) -> None:
    assert pdf_signature_findings(signed, required=True, trust=trust) == []


def test_corpus_signed_pdfs_are_intact_but_not_from_an_approved_ca(trust: TrustBundle) -> None:
    twice = corpus_path("pdf", "signed", "minimal-signed-twice-no-sig-type.pdf")
    report = validate_pdf_signatures(twice, trust)
    assert [s.field for s in report.signatures] == ["Sig1", "Sig2"]
    assert all(s.intact for s in report.signatures)
    assert [s.status for s in report.signatures] == [SignatureStatus.UNTRUSTED] * 2
    assert [s.modification_level for s in report.signatures] == ["FORM_FILLING", "NONE"]
    ski = corpus_path("pdf", "signed", "sig-with-ski-sid.pdf")
    [sig] = validate_pdf_signatures(ski, trust).signatures
    assert sig.intact and sig.status is SignatureStatus.UNTRUSTED
    assert sig.coverage == "ENTIRE_FILE"


def test_corpus_unsigned_pdf_reports_no_signature(trust: TrustBundle) -> None:
    path = corpus_path("pdf", "general", "pdflatex-4-pages.pdf")
    assert validate_pdf_signatures(path, trust).signed is False
