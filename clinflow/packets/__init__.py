"""Site packets: the domain of clinical-trial site-activation packets (no workflow engine).

The stage functions the workflow activities call, in order::

    parse_document(path_or_bytes)                -> ParseResult
    classify(parse)                              -> Classification
    extract(parse, doc_type, dayfirst=...)       -> Extraction (one model per document type)
    validate_document(parse, classification, extraction, manifest=..., checklist=...,
                      document=..., as_of=..., ingestion_sha256=...) -> list[Finding]
    cross_document_checks(manifest, records, as_of=...)             -> list[Finding]
    gap_analysis(manifest, records, checklist)                      -> GapReport
    route(findings, gaps, review_approved=False)                    -> Decision

``evaluate_packet`` composes them in one process. All models are small JSON-serialisable
pydantic models, safe as workflow payloads.
"""

from __future__ import annotations

from clinflow.packets.checklists import Checklist, ChecklistItem, load_checklist
from clinflow.packets.classify import classify, classify_text
from clinflow.packets.cross_checks import cross_document_checks, duplicate_findings
from clinflow.packets.dates import find_date, parse_date, to_iso
from clinflow.packets.extract import extract
from clinflow.packets.extraction_models import DocumentRecord, Extraction
from clinflow.packets.gaps import gap_analysis
from clinflow.packets.identity import document_key, packet_key, sha256_bytes, sha256_file
from clinflow.packets.manifest import (
    ManifestFile,
    PacketManifest,
    ProtocolDeviation,
    infer_manifest,
    load_manifest,
    manifest_for,
    parse_manifest,
)
from clinflow.packets.models import (
    Classification,
    Decision,
    DecisionAction,
    DocumentRef,
    DocumentType,
    FileKind,
    Finding,
    GapItem,
    GapReport,
    PacketOutcome,
    ParseOptions,
    ParseResult,
)
from clinflow.packets.parse import parse_document
from clinflow.packets.pipeline import (
    DocumentEvaluation,
    PacketEvaluation,
    evaluate_document,
    evaluate_packet,
)
from clinflow.packets.protocol_matrix import ProtocolMatrix, load_protocol_matrix
from clinflow.packets.routing import route
from clinflow.packets.rules import finding_from_error, make_finding, rule_table, rules_markdown
from clinflow.packets.validate import semantic_checks, structural_checks, validate_document

__all__ = [
    "Checklist",
    "ChecklistItem",
    "Classification",
    "Decision",
    "DecisionAction",
    "DocumentEvaluation",
    "DocumentRecord",
    "DocumentRef",
    "DocumentType",
    "Extraction",
    "FileKind",
    "Finding",
    "GapItem",
    "GapReport",
    "ManifestFile",
    "PacketEvaluation",
    "PacketManifest",
    "PacketOutcome",
    "ParseOptions",
    "ParseResult",
    "ProtocolDeviation",
    "ProtocolMatrix",
    "classify",
    "classify_text",
    "cross_document_checks",
    "document_key",
    "duplicate_findings",
    "evaluate_document",
    "evaluate_packet",
    "extract",
    "find_date",
    "finding_from_error",
    "gap_analysis",
    "infer_manifest",
    "load_checklist",
    "load_manifest",
    "load_protocol_matrix",
    "make_finding",
    "manifest_for",
    "packet_key",
    "parse_date",
    "parse_document",
    "parse_manifest",
    "route",
    "rule_table",
    "rules_markdown",
    "semantic_checks",
    "sha256_bytes",
    "sha256_file",
    "structural_checks",
    "to_iso",
    "validate_document",
]
