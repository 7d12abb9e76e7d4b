"""The whole packet evaluation in one process: parse, classify, extract, validate, gaps, route.

This is the reference composition of the stage functions, used by tests, the demo and anyone
who wants a verdict without the workflow engine. The durable workflow runs the same stages as
separate activities; both must agree on every packet.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from clinflow.errors import ClinflowError, FatalSchemaMismatch
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
    Finding,
    GapReport,
    ParseOptions,
)
from clinflow.packets.parse import parse_document
from clinflow.packets.routing import route
from clinflow.packets.rules import finding_from_error
from clinflow.packets.validate import validate_document


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

    def record(self) -> DocumentRecord:
        return DocumentRecord(
            name=self.name,
            sha256=self.sha256,
            doc_type=self.doc_type,
            page_count=self.page_count,
            extraction=self.extraction,
        )


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


def evaluate_document(
    path: Path,
    *,
    name: str,
    manifest: PacketManifest,
    checklist: Checklist,
    as_of: date,
    ingestion_sha256: str | None = None,
    declared_type: DocumentType | None = None,
    options: ParseOptions | None = None,
) -> DocumentEvaluation:
    """Parse, classify, extract and validate one document. Fatal parse errors become findings.

    ``ingestion_sha256`` defaults to the file's current hash (nothing to re-verify against).
    """
    digest = ingestion_sha256 or sha256_file(path)
    key = document_key(digest, manifest.site_id, manifest.protocol_version)
    try:
        parsed = parse_document(path, options=options, subject=name)
    except FatalSchemaMismatch as err:
        return DocumentEvaluation(
            name=name,
            sha256=digest,
            document_key=key,
            doc_type=declared_type or DocumentType.UNKNOWN,
            findings=[finding_from_error(err, name)],
        )
    classification = classify(parsed)
    doc_type = declared_type or classification.doc_type
    extraction = extract(
        parsed, doc_type, dayfirst=manifest.dayfirst, protocol_number=manifest.protocol_number
    )
    findings = validate_document(
        parsed,
        classification,
        extraction,
        manifest=manifest,
        checklist=checklist,
        document=name,
        as_of=as_of,
        ingestion_sha256=digest,
        declared_type=declared_type,
    )
    return DocumentEvaluation(
        name=name,
        sha256=parsed.sha256,
        document_key=key,
        doc_type=doc_type,
        page_count=parsed.page_count,
        ocr_pages=parsed.ocr_pages,
        classification=classification,
        extraction=extraction,
        findings=findings,
    )


def evaluate_packet(
    path: Path, *, as_of: date, options: ParseOptions | None = None
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
                evaluate_document(
                    folder / entry.path,
                    name=entry.path,
                    manifest=manifest,
                    checklist=checklist,
                    as_of=as_of,
                    ingestion_sha256=entry.sha256,
                    declared_type=entry.doc_type,
                    options=options,
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
    "evaluate_document",
    "evaluate_packet",
]
