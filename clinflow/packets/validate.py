"""Per-document validation: structural checks, then semantic rules.

Both are pure functions of their inputs (no clock: the caller passes ``as_of``), so they are
safe to retry and give the same findings every time. Codes, categories and wording come from
the rule table (:mod:`clinflow.packets.rules`). The planned activation date is the manifest's
``target_activation_date``, or ``as_of`` when the manifest has none.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from clinflow.packets.checklists import Checklist
from clinflow.packets.classify import clearly_other_type
from clinflow.packets.extraction_models import (
    Extraction,
    GCPCertificateExtraction,
    IRBApprovalExtraction,
    LabCertificationExtraction,
    MedicalLicenseExtraction,
    ProtocolSignaturePageExtraction,
)
from clinflow.packets.manifest import PacketManifest
from clinflow.packets.models import (
    Classification,
    DocumentType,
    Finding,
    ParseResult,
)
from clinflow.packets.ocr_slips import DIGITS_ALIKE, ocr_alike
from clinflow.packets.protocol_matrix import ProtocolMatrix, load_protocol_matrix
from clinflow.packets.rules import make_finding, rule_param
from clinflow.packets.versions import resolve_version


def activation_date(manifest: PacketManifest, as_of: date) -> date:
    """The date semantic rules judge against: the planned activation date, else ``as_of``."""
    return manifest.target_activation_date or as_of


def structural_checks(
    parse: ParseResult,
    classification: Classification,
    extraction: Extraction,
    *,
    checklist: Checklist,
    document: str,
    ingestion_sha256: str | None = None,
    declared_type: DocumentType | None = None,
) -> list[Finding]:
    """Integrity and form: hash, page count, signatures, date formats, type.

    ``ingestion_sha256`` is the hash recorded when the bytes were received; a different hash
    of the parsed bytes is HASH_MISMATCH (COMPLIANCE_BLOCK).
    """
    out: list[Finding] = []
    doc_type = extraction.doc_type
    if ingestion_sha256 is not None and ingestion_sha256 != parse.sha256:
        out.append(
            make_finding(
                "HASH_MISMATCH",
                document,
                expected=ingestion_sha256[:16],
                found=parse.sha256[:16],
            )
        )
    if parse.encrypted:
        out.append(make_finding("PDF_OWNER_PASSWORD_ONLY", document))
    threshold = rule_param("OCR_LOW_CONFIDENCE", "threshold")
    if parse.ocr_mean_confidence is not None and parse.ocr_mean_confidence < threshold:
        out.append(
            make_finding("OCR_LOW_CONFIDENCE", document, confidence=parse.ocr_mean_confidence)
        )
    if doc_type is DocumentType.UNKNOWN:
        out.append(make_finding("DOC_TYPE_UNKNOWN", document))
    elif declared_type is not None and clearly_other_type(classification, declared_type):
        out.append(
            make_finding(
                "DOC_TYPE_DECLARED_MISMATCH",
                document,
                declared=declared_type.value,
                classified=classification.doc_type.value,
            )
        )
    item = checklist.item(doc_type)
    if item is not None:
        if parse.page_count < item.min_pages:
            out.append(
                make_finding(
                    "PAGE_COUNT_BELOW_MINIMUM",
                    document,
                    doc_type=doc_type.value,
                    pages=parse.page_count,
                    minimum=item.min_pages,
                )
            )
        if item.signature_required and extraction.signature.status == "uncertain":
            block = next(b for b in extraction.signature.blocks if b.status == "uncertain")
            out.append(
                make_finding(
                    "SIGNATURE_UNCERTAIN",
                    document,
                    doc_type=doc_type.value,
                    where=block.evidence,
                    page=None if block.page is None else block.page + 1,
                )
            )
        elif item.signature_required and not extraction.signature.present:
            out.append(make_finding("SIGNATURE_MISSING", document, doc_type=doc_type.value))
    for field in extraction.unparsed_dates:
        page = extraction.unreadable_pages.get(field)
        out.append(
            make_finding(
                "FIELD_UNREADABLE",
                document,
                field=field,
                page="?" if page is None else page + 1,
            )
        )
    return out


def same_protocol(found: str, expected: str) -> bool:
    """Whether a protocol number read from a document names the packet's protocol.

    Case, separators (``CFX 301``, ``CFX_301``, ``CFX301``) and a suffix after the number
    (``CFX-301-AM3``, ``CFX-301/v3``) do not make another protocol.
    """

    def squash(value: str) -> str:
        return re.sub(r"[^A-Z0-9]", "", value.upper())

    f, e = squash(found), squash(expected)
    return f == e or (f.startswith(e) and not f[len(e) : len(e) + 1].isdigit())


def canonical_site_number(value: str) -> str:
    """A site number compared canonically: ``0142``, ``142``, ``US-0142`` and ``Site 142`` are
    one site (its last run of digits without leading zeros; the text itself when it has none)."""
    runs = re.findall(r"\d+", value)
    return runs[-1].lstrip("0") or "0" if runs else value.strip().upper()


def _same_site(a: str, b: str, *, ocr: bool = False) -> bool:
    """Whether two written site numbers are one site; on a document read by OCR, digits OCR
    confuses count as equal (a site number a scan garbled is not a compliance block)."""
    ca, cb = canonical_site_number(a), canonical_site_number(b)
    return ca == cb or (ocr and ca.isdigit() and cb.isdigit() and ocr_alike(ca, cb, DIGITS_ALIKE))


def _expiry_findings(
    code: str, expiry: str | None, activation: date, document: str
) -> list[Finding]:
    if expiry is None or date.fromisoformat(expiry) >= activation:
        return []
    return [make_finding(code, document, expiry=expiry, activation=activation.isoformat())]


def semantic_checks(
    extraction: Extraction,
    *,
    manifest: PacketManifest,
    document: str,
    as_of: date,
    matrix: ProtocolMatrix | None = None,
    ocr: bool = False,
) -> list[Finding]:
    """Rules about what one document says, against the packet and the protocol matrix.
    ``ocr``: the document's text was read by OCR (tolerated slips: see ``_same_site``)."""
    out: list[Finding] = []
    activation = activation_date(manifest, as_of)
    matrix = matrix or load_protocol_matrix()
    if extraction.protocol_number and not same_protocol(
        extraction.protocol_number, manifest.protocol_number
    ):
        out.append(
            make_finding(
                "PROTOCOL_NUMBER_MISMATCH",
                document,
                found=extraction.protocol_number,
                expected=manifest.protocol_number,
            )
        )
    if (
        extraction.site_number
        and manifest.site_number
        and not _same_site(extraction.site_number, manifest.site_number, ocr=ocr)
    ):
        out.append(
            make_finding(
                "SITE_NUMBER_MISMATCH",
                document,
                found=extraction.site_number,
                expected=manifest.site_number,
            )
        )
    if isinstance(extraction, IRBApprovalExtraction):
        out.extend(_irb(extraction, activation, document))
    elif isinstance(extraction, MedicalLicenseExtraction):
        out.extend(
            _expiry_findings("LICENSE_EXPIRED", extraction.expiry_date, activation, document)
        )
    elif isinstance(extraction, LabCertificationExtraction):
        out.extend(
            _expiry_findings(
                "LAB_CERTIFICATION_EXPIRED", extraction.expiry_date, activation, document
            )
        )
    elif isinstance(extraction, GCPCertificateExtraction) and extraction.completion_date:
        years = int(rule_param("GCP_TRAINING_STALE", "years"))
        if _add_years(date.fromisoformat(extraction.completion_date), years) < activation:
            out.append(
                make_finding("GCP_TRAINING_STALE", document, completed=extraction.completion_date)
            )
    out.extend(_signature_order(extraction, manifest, matrix, document))
    return out


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _irb(extraction: IRBApprovalExtraction, activation: date, document: str) -> list[Finding]:
    if extraction.expiry_date is None:
        if "expiry_date" in extraction.unparsed_dates:
            return []  # FIELD_UNREADABLE already says the expiry could not be checked
        return [make_finding("IRB_EXPIRY_MISSING", document)]
    expiry = date.fromisoformat(extraction.expiry_date)
    if expiry < activation:
        return [
            make_finding(
                "IRB_APPROVAL_EXPIRED",
                document,
                expiry=extraction.expiry_date,
                activation=activation.isoformat(),
            )
        ]
    days = int(rule_param("IRB_EXPIRY_NEAR", "days"))
    if expiry < activation + timedelta(days=days):
        return [make_finding("IRB_EXPIRY_NEAR", document, expiry=extraction.expiry_date)]
    return []


def _signature_order(
    extraction: Extraction, manifest: PacketManifest, matrix: ProtocolMatrix, document: str
) -> list[Finding]:
    signed = extraction.signature.date
    if not extraction.signature.present or signed is None:
        return []
    out: list[Finding] = []
    if extraction.document_date and signed < extraction.document_date:
        out.append(
            make_finding(
                "SIGNATURE_PREDATES_DOCUMENT",
                document,
                signed=signed,
                what="document",
                dated=extraction.document_date,
            )
        )
    if isinstance(extraction, ProtocolSignaturePageExtraction):
        protocol = extraction.protocol_number or manifest.protocol_number
        version = (
            resolve_version(
                extraction.protocol_version or manifest.protocol_version,
                matrix.known_versions(protocol),
            )
            or manifest.protocol_version
        )
        entry = matrix.version(protocol, version)
        if entry is not None and date.fromisoformat(signed) < entry.effective:
            out.append(
                make_finding(
                    "SIGNATURE_PREDATES_DOCUMENT",
                    document,
                    signed=signed,
                    what=f"protocol version {version}",
                    dated=entry.effective.isoformat(),
                )
            )
    return out


def validate_document(
    parse: ParseResult,
    classification: Classification,
    extraction: Extraction,
    *,
    manifest: PacketManifest,
    checklist: Checklist,
    document: str,
    as_of: date,
    ingestion_sha256: str | None = None,
    declared_type: DocumentType | None = None,
    matrix: ProtocolMatrix | None = None,
) -> list[Finding]:
    """:func:`structural_checks` then :func:`semantic_checks`, concatenated.

    Semantic rules are skipped when a structural check found a FATAL_SCHEMA_MISMATCH (the
    document goes to the dead-letter queue; its content is not to be trusted).
    """
    findings = structural_checks(
        parse,
        classification,
        extraction,
        checklist=checklist,
        document=document,
        ingestion_sha256=ingestion_sha256,
        declared_type=declared_type,
    )
    if any(f.category == "FATAL_SCHEMA_MISMATCH" for f in findings):
        return findings
    return findings + semantic_checks(
        extraction,
        manifest=manifest,
        document=document,
        as_of=as_of,
        matrix=matrix,
        ocr=bool(parse.ocr_pages),
    )
