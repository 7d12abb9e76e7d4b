"""The packet evaluation: per document parse, then classify + extract + validate in one step;
per packet cross-document checks, gaps and routing.

:func:`evaluate_document` is the per-document analysis the workflow's analysis activity runs
on a parsed document; :func:`evaluate_packet` composes the same functions in one process (for
tests, benchmarks, the demo and anyone who wants a verdict without the workflow engine), so
both give the same verdict on every packet.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from clinflow.errors import ClinflowError, ErrorCategory, FatalSchemaMismatch
from clinflow.packets.checklists import Checklist, UnknownRegion, load_checklist
from clinflow.packets.classify import classify
from clinflow.packets.cross_checks import cross_document_checks, duplicate_findings
from clinflow.packets.extract import extract
from clinflow.packets.extraction_models import DocumentRecord, Extraction
from clinflow.packets.gaps import gap_analysis
from clinflow.packets.identity import document_key, sha256_file
from clinflow.packets.manifest import PacketManifest, manifest_for
from clinflow.packets.models import (
    Classification,
    Decision,
    DocumentType,
    FileKind,
    Finding,
    GapReport,
    ParseOptions,
    ParseResult,
)
from clinflow.packets.parse import parse_document
from clinflow.packets.protocol_matrix import ProtocolMatrix
from clinflow.packets.routing import route
from clinflow.packets.rules import UnknownRule, finding_from_error, get_rule
from clinflow.packets.validate import semantic_checks, structural_checks

if TYPE_CHECKING:  # clinflow.pdf_signatures imports this package: load it when first used
    from clinflow.pdf_signatures import PdfSignatureReport, TrustBundle


class DocumentEvaluation(BaseModel):
    """Everything learnt about one document of a packet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    sha256: str
    document_key: str
    doc_type: DocumentType = DocumentType.UNKNOWN
    page_count: int = 0
    ocr_pages: list[int] = Field(default_factory=list)
    classification: Classification | None = None
    extraction: Extraction | None = None
    findings: list[Finding] = Field(default_factory=list)
    semantic_checked: bool = Field(
        False, description="False when a fatal structural finding skipped the semantic rules."
    )

    def record(self) -> DocumentRecord:
        return DocumentRecord(
            name=self.name,
            sha256=self.sha256,
            doc_type=self.doc_type,
            page_count=self.page_count,
            extraction=self.extraction,
        )

    def stage_findings(self, stage: str) -> list[Finding]:
        """The findings of one rule stage (``structural`` or ``semantic``)."""
        return [f for f in self.findings if _stage(f.code) == stage]


def _stage(code: str) -> str:
    try:
        return get_rule(code).stage
    except UnknownRule:
        return "structural"


class PacketEvaluation(BaseModel):
    """The verdict on a packet and how it was reached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    packet_id: str
    manifest: PacketManifest
    documents: list[DocumentEvaluation]
    packet_findings: list[Finding]
    gaps: GapReport | None
    decision: Decision

    @property
    def findings(self) -> list[Finding]:
        return [f for d in self.documents for f in d.findings] + self.packet_findings


def digital_signature_findings(
    parsed: ParseResult,
    signatures: PdfSignatureReport | None,
    *,
    doc_type: DocumentType,
    checklist: Checklist,
    document: str,
) -> list[Finding]:
    """PDF_SIGNATURE_* findings: every present cryptographic signature must validate (intact,
    whole document, approved CA, in date); one is required where the checklist item says
    ``digital_signature: required``. ``signatures`` is the report of
    :func:`clinflow.pdf_signatures.validate_pdf_signatures` (None: none was made)."""
    from clinflow.pdf_signatures import PdfSignatureReport, findings_from_report

    if parsed.kind is not FileKind.PDF:
        return []
    item = checklist.item(doc_type)
    required = item is not None and item.digital_signature == "required"
    if not required and not parsed.signature_fields:
        return []
    report = signatures or PdfSignatureReport(signatures=[])
    return findings_from_report(
        report, required=required, document=document, doc_type=doc_type.value
    )


def evaluate_document(
    parsed: ParseResult,
    *,
    name: str,
    manifest: PacketManifest,
    checklist: Checklist,
    as_of: date,
    ingestion_sha256: str | None = None,
    declared_type: DocumentType | None = None,
    signatures: PdfSignatureReport | None = None,
    matrix: ProtocolMatrix | None = None,
) -> DocumentEvaluation:
    """Classify, extract and validate one parsed document: the per-document analysis step.

    The workflow's analysis activity and the in-process pipeline both call this, so a verdict
    never depends on which ran it. Pure (no clock, no I/O): ``as_of`` comes from the caller,
    ``signatures`` is the document's PDF signature report, if it has one.
    """
    digest = ingestion_sha256 or parsed.sha256
    key = document_key(digest, manifest.site_id, manifest.protocol_version)
    classification = classify(parsed)
    doc_type = declared_type or classification.doc_type
    extraction = extract(
        parsed,
        doc_type,
        dayfirst=manifest.dayfirst,
        order=manifest.date_order,
        protocol_number=manifest.protocol_number,
    )
    structural = structural_checks(
        parsed,
        classification,
        extraction,
        checklist=checklist,
        document=name,
        ingestion_sha256=ingestion_sha256,
        declared_type=declared_type,
    )
    structural += digital_signature_findings(
        parsed, signatures, doc_type=extraction.doc_type, checklist=checklist, document=name
    )
    fatal = any(f.category is ErrorCategory.FATAL_SCHEMA_MISMATCH for f in structural)
    semantic = (
        []
        if fatal
        else semantic_checks(
            extraction,
            manifest=manifest,
            document=name,
            as_of=as_of,
            matrix=matrix,
            ocr=bool(parsed.ocr_pages),
        )
    )
    return DocumentEvaluation(
        name=name,
        sha256=parsed.sha256,
        document_key=key,
        doc_type=extraction.doc_type,
        page_count=parsed.page_count,
        ocr_pages=parsed.ocr_pages,
        classification=classification,
        extraction=extraction,
        findings=structural + semantic,
        semantic_checked=not fatal,
    )


def pdf_signature_report(
    path: Path, trust: TrustBundle | None, *, max_modification: str = "FORM_FILLING"
) -> PdfSignatureReport:
    """The PDF's digital signatures validated against ``trust`` (no approved CA when None),
    without the signers' certificate subjects (personal data; the fingerprint stays)."""
    from clinflow.pdf_signatures import TrustBundle, validate_pdf_signatures

    report = validate_pdf_signatures(
        path, trust or TrustBundle([]), max_modification=max_modification
    )
    return report.model_copy(
        update={
            "signatures": [s.model_copy(update={"signer_subject": None}) for s in report.signatures]
        }
    )


def evaluate_file(
    path: Path,
    *,
    name: str,
    manifest: PacketManifest,
    checklist: Checklist,
    as_of: date,
    ingestion_sha256: str | None = None,
    declared_type: DocumentType | None = None,
    options: ParseOptions | None = None,
    trust: TrustBundle | None = None,
) -> DocumentEvaluation:
    """Parse the file at ``path``, validate its PDF signatures against ``trust`` (no approved
    CA when None) and :func:`evaluate_document` it. Fatal parse errors become findings.

    ``ingestion_sha256`` defaults to the file's current hash (nothing to re-verify against).
    """
    digest = ingestion_sha256 or sha256_file(path)
    try:
        parsed = parse_document(path, options=options, subject=name)
    except FatalSchemaMismatch as err:
        return DocumentEvaluation(
            name=name,
            sha256=digest,
            document_key=document_key(digest, manifest.site_id, manifest.protocol_version),
            doc_type=declared_type or DocumentType.UNKNOWN,
            findings=[finding_from_error(err, name)],
        )
    signatures = None
    if parsed.kind is FileKind.PDF and parsed.signature_fields:
        signatures = pdf_signature_report(path, trust)
    return evaluate_document(
        parsed,
        name=name,
        manifest=manifest,
        checklist=checklist,
        as_of=as_of,
        ingestion_sha256=digest,
        declared_type=declared_type,
        signatures=signatures,
    )


def evaluate_packet(
    path: Path,
    *,
    as_of: date,
    options: ParseOptions | None = None,
    trust: TrustBundle | None = None,
) -> PacketEvaluation:
    """Evaluate the packet at ``path`` (its folder or its manifest file) end to end.

    Raises :class:`FatalSchemaMismatch` (MANIFEST_INVALID) when the packet has no usable
    manifest or names a file that is not there.
    """
    manifest, folder = manifest_for(path)
    try:
        checklist = load_checklist(manifest.region)
    except UnknownRegion as exc:
        raise FatalSchemaMismatch(
            "MANIFEST_INVALID", f"no checklist for region {manifest.region}"
        ) from exc
    hashes: dict[str, str] = {}
    for entry in manifest.files:
        file = folder / entry.path
        if not file.is_file():
            raise FatalSchemaMismatch(
                "MANIFEST_INVALID", "a listed file is missing", subject=entry.path
            )
        hashes[entry.path] = sha256_file(file)
    packet_findings = duplicate_findings(hashes)
    duplicates = {f.document for f in packet_findings}
    documents: list[DocumentEvaluation] = []
    for entry in manifest.files:
        if entry.path in duplicates:
            continue
        try:
            documents.append(
                evaluate_file(
                    folder / entry.path,
                    name=entry.path,
                    manifest=manifest,
                    checklist=checklist,
                    as_of=as_of,
                    ingestion_sha256=entry.sha256,
                    declared_type=entry.doc_type,
                    options=options,
                    trust=trust,
                )
            )
        except ClinflowError as err:  # e.g. OCR unavailable: retries exhausted in-process
            documents.append(
                DocumentEvaluation(
                    name=entry.path,
                    sha256=hashes[entry.path],
                    document_key=document_key(
                        hashes[entry.path], manifest.site_id, manifest.protocol_version
                    ),
                    findings=[
                        Finding(
                            code=err.code,
                            category=err.category,
                            message=err.reason,
                            document=entry.path,
                        )
                    ],
                )
            )
    records = [d.record() for d in documents if d.extraction is not None]
    packet_findings += cross_document_checks(manifest, records, as_of=as_of)
    gaps = gap_analysis(manifest, records, checklist)
    all_findings = [f for d in documents for f in d.findings] + packet_findings
    return PacketEvaluation(
        packet_id=manifest.packet_id,
        manifest=manifest,
        documents=documents,
        packet_findings=packet_findings,
        gaps=gaps,
        decision=route(all_findings, gaps),
    )


__all__ = [
    "DocumentEvaluation",
    "PacketEvaluation",
    "digital_signature_findings",
    "evaluate_document",
    "evaluate_file",
    "evaluate_packet",
    "pdf_signature_report",
]
