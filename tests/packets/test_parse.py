from __future__ import annotations

import io
import zipfile
from datetime import date
from pathlib import Path

import pytest

from clinflow.errors import ErrorCategory, FatalSchemaMismatch, RecoverableTimeout
from clinflow.packets import FileKind, ParseOptions, classify, parse_document, sha256_bytes
from clinflow.packets.models import DocumentType
from clinflow.packets.sample_docs import (
    DigitalSignature,
    add_signature_field,
    docx_document,
    scanned_pdf,
    text_pdf,
)


def _fatal_code(source: Path | bytes) -> str:
    with pytest.raises(FatalSchemaMismatch) as info:
        parse_document(source)
    assert info.value.category is ErrorCategory.FATAL_SCHEMA_MISMATCH
    return info.value.code


def test_text_pdf_pages_metadata_and_hash() -> None:
    data = text_pdf([["Page one line", "Second line"], ["Page two"]], title="Two pages")
    result = parse_document(data)
    assert result.kind is FileKind.PDF
    assert result.page_count == 2
    assert "Second line" in result.pages[0].text
    assert "Page two" in result.pages[1].text
    assert result.metadata["Title"] == "Two pages"
    assert result.sha256 == sha256_bytes(data)
    assert result.size == len(data)
    assert result.ocr_pages == []
    assert not result.encrypted


def test_signed_and_unsigned_signature_fields_are_told_apart() -> None:
    base = text_pdf([["Signature page"]])
    signed = add_signature_field(base, DigitalSignature("Sig", "Pat Reviewer", date(2026, 3, 9)))
    unsigned = add_signature_field(base, DigitalSignature("Sig"))
    [s] = parse_document(signed).signature_fields
    [u] = parse_document(unsigned).signature_fields
    assert (s.name, s.signed, s.signer, s.signed_at) == ("Sig", True, "Pat Reviewer", "2026-03-09")
    assert (u.signed, u.signed_at) == (False, None)


def test_docx_text_tables_and_core_properties() -> None:
    data = docx_document(
        ["Delegation of Authority Log", "Principal Investigator: Dr. Rowan Vey"],
        table=[["Name", "Tasks"], ["Rowan Vey", "All"]],
        title="Log",
        author="Regulatory office",
    )
    result = parse_document(data)
    assert result.kind is FileKind.DOCX
    assert "Principal Investigator: Dr. Rowan Vey" in result.text
    assert result.tables == [[["Name", "Tasks"], ["Rowan Vey", "All"]]]
    assert result.metadata["title"] == "Log"
    assert result.metadata["author"] == "Regulatory office"
    assert result.metadata["created"].startswith("2026-01-05")


def test_kind_comes_from_content_not_from_the_file_name(tmp_path: Path) -> None:
    misnamed = tmp_path / "really_a_pdf.docx"
    misnamed.write_bytes(text_pdf([["hello from a pdf"]]))
    assert parse_document(misnamed).kind is FileKind.PDF


def test_truncated_pdf_is_fatal() -> None:
    data = text_pdf([["Some text"] * 40])
    assert _fatal_code(data[: len(data) // 2]) == "PDF_TRUNCATED"


def test_empty_unsupported_and_broken_docx_are_fatal(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    assert _fatal_code(empty) == "FILE_EMPTY"
    assert _fatal_code(b"\x89PNG\r\n\x1a\nrest-of-an-image") == "FORMAT_UNSUPPORTED"
    good = docx_document(["hello"])
    assert _fatal_code(good[: len(good) // 2]) == "DOCX_CORRUPT"
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("data.csv", "a,b")
    assert _fatal_code(other_zip.getvalue()) == "FORMAT_UNSUPPORTED"


def test_text_is_capped_for_payloads() -> None:
    data = text_pdf([["x" * 90] * 40] * 3)
    result = parse_document(data, options=ParseOptions(max_page_chars=500, max_total_chars=1200))
    assert result.text_truncated
    assert sum(len(p.text) for p in result.pages) <= 1200
    assert all(p.chars > 500 for p in result.pages)


def test_scanned_page_is_ocrd_with_confidence(tesseract: None) -> None:
    data = scanned_pdf([["MEDICAL LICENSE", "Licensee: Dr. Rowan Vey", "License Number: MD-1234"]])
    result = parse_document(data)
    assert result.ocr_pages == [0]
    assert result.pages[0].ocr
    assert result.ocr_mean_confidence is not None and result.ocr_mean_confidence > 60
    assert "Rowan Vey" in result.text
    assert "MD-1234" in result.text
    assert classify(result).doc_type is DocumentType.MEDICAL_LICENSE


def test_many_scanned_pages_ocr_in_a_pool_in_page_order(tesseract: None) -> None:
    pages = [[f"Page marker {word}"] for word in ("alpha", "bravo", "charlie")]
    result = parse_document(scanned_pdf(pages), options=ParseOptions(ocr_max_workers=2))
    assert result.ocr_pages == [0, 1, 2]
    for page, word in zip(result.pages, ("alpha", "bravo", "charlie"), strict=True):
        assert word in page.text.lower()


def test_ocr_disabled_leaves_image_pages_without_text() -> None:
    result = parse_document(scanned_pdf([["hidden"]]), options=ParseOptions(ocr_enabled=False))
    assert result.ocr_pages == [] and result.pages[0].text == ""


def test_missing_tesseract_is_recoverable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RecoverableTimeout) as info:
        parse_document(scanned_pdf([["needs ocr"]]))
    assert info.value.code == "OCR_UNAVAILABLE" and info.value.retryable


# --- real PDFs from the public corpus -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("encrypted/rc4-40.pdf", "PDF_ENCRYPTED"),
        ("encrypted/libreoffice-writer-password.pdf", "PDF_ENCRYPTED"),
        ("corrupt/circular-page-tree.pdf", "PDF_CORRUPT"),
        ("corrupt/broken-objstream1.pdf", "PDF_CORRUPT"),
    ],
)
def test_corpus_unreadable_pdfs_are_fatal(corpus_pdf: Path, name: str, code: str) -> None:
    assert _fatal_code(corpus_pdf / name) == code


def test_corpus_owner_password_pdf_opens_and_is_flagged(corpus_pdf: Path) -> None:
    result = parse_document(corpus_pdf / "encrypted/r4-owner-password.pdf")
    assert result.encrypted and result.page_count == 1


def test_corpus_signed_pdf_reports_both_signatures(corpus_pdf: Path) -> None:
    result = parse_document(
        corpus_pdf / "signed/minimal-signed-twice-no-sig-type.pdf",
        options=ParseOptions(ocr_enabled=False),
    )
    assert [(s.name, s.signed) for s in result.signature_fields] == [
        ("Sig1", True),
        ("Sig2", True),
    ]


def test_corpus_forms_have_fields_and_classify_as_unknown(corpus_pdf: Path) -> None:
    result = parse_document(corpus_pdf / "clinical/broad_cgc_records_request.pdf")
    assert len(result.form_fields) == 30
    for path in sorted((corpus_pdf / "clinical").glob("*.pdf")):
        assert classify(parse_document(path)).doc_type is DocumentType.UNKNOWN, path.name


def test_corpus_scanned_jbig2_page_is_ocrd(corpus_pdf: Path, tesseract: None) -> None:
    result = parse_document(corpus_pdf / "scanned/pdf-with-jbig2.pdf")
    assert result.ocr_pages == [0]
    assert result.pages[0].text.strip()
    assert result.pages[0].ocr_confidence is not None
