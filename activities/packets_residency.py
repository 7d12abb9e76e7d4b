"""What of a packet's state may leave its region (data residency).

A packet is processed on its region's task queue; what goes back to a batch running on the
global queue (the child's result, the ``packet_settled`` signal) holds identifiers, rule codes,
counts and deterministic tokens only. :func:`redact_packet_status` is the one place that
decides it: file names (they name people, e.g. ``gcp_<name>.pdf``) and reviewer ids become
tokens, every free-text field (finding and gap messages, details, the rejection reason, the
signature manifestation) is dropped.
"""

from __future__ import annotations

from activities.packets_models import DocumentSummary, PacketStatus, ReviewRecord
from clinflow.packets.models import Finding, GapItem, GapReport
from clinflow.tokenise import Tokeniser


def _doc(tok: Tokeniser, name: str | None) -> str | None:
    return None if name is None else tok(name, "doc")


def _finding(tok: Tokeniser, f: Finding) -> Finding:
    return Finding(code=f.code, category=f.category, message=f.code, document=_doc(tok, f.document))


def _gap(tok: Tokeniser, g: GapItem) -> GapItem:
    return GapItem(code=g.code, doc_type=g.doc_type, message=g.code, document=_doc(tok, g.document))


def _gaps(tok: Tokeniser, report: GapReport | None) -> GapReport | None:
    if report is None:
        return None
    return report.model_copy(
        update={
            "missing": [_gap(tok, g) for g in report.missing],
            "wrong_version": [_gap(tok, g) for g in report.wrong_version],
            "warnings": [_finding(tok, w) for w in report.warnings],
        }
    )


def redact_packet_status(status: PacketStatus, tok: Tokeniser) -> PacketStatus:
    """``status`` with names tokenised and free text removed (ids, codes, counts kept).

    Pure and deterministic for the same token key.
    """
    return status.model_copy(
        update={
            "findings": [_finding(tok, f) for f in status.findings],
            "gaps": _gaps(tok, status.gaps),
            "documents": [
                DocumentSummary(
                    name=tok(d.name, "doc"),
                    document_key=d.document_key,
                    doc_type=d.doc_type,
                    page_count=d.page_count,
                    ocr_pages=d.ocr_pages,
                    state=d.state,
                )
                for d in status.documents
            ],
            "reviews": [
                ReviewRecord(
                    request_id=r.request_id,
                    reviewer_id=tok(r.reviewer_id, "user"),
                    role=r.role,
                    decision=r.decision,
                    accepted=r.accepted,
                    code=r.code,
                    at=r.at,
                )
                for r in status.reviews
            ],
            "rejection_reason": None if status.rejection_reason is None else "REDACTED",
        }
    )


__all__ = ["redact_packet_status"]
