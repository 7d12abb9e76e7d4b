"""Gap analysis: a packet's documents against its region's checklist."""

from __future__ import annotations

from collections.abc import Sequence

from clinflow.packets.checklists import Checklist, ChecklistItem
from clinflow.packets.extraction_models import DocumentRecord
from clinflow.packets.manifest import PacketManifest
from clinflow.packets.models import DocumentType, Finding, GapItem, GapReport
from clinflow.packets.rules import make_finding, make_gap


def _wrong_version(
    doc: DocumentRecord, item: ChecklistItem, manifest: PacketManifest
) -> GapItem | None:
    ex = doc.extraction
    if ex is None:
        return None
    if ex.protocol_version and ex.protocol_version != manifest.protocol_version:
        return make_gap(
            "GAP_WRONG_VERSION",
            doc.doc_type,
            document=doc.name,
            expected=manifest.protocol_version,
            found=ex.protocol_version,
            what="protocol version",
        )
    if item.accepted_versions and ex.form_version and ex.form_version not in item.accepted_versions:
        return make_gap(
            "GAP_WRONG_VERSION",
            doc.doc_type,
            document=doc.name,
            expected=" or ".join(item.accepted_versions),
            found=ex.form_version,
            what="form version",
        )
    return None


def gap_analysis(
    manifest: PacketManifest, docs: Sequence[DocumentRecord], checklist: Checklist
) -> GapReport:
    """Missing and wrong-version documents of ``manifest``'s packet against ``checklist``.

    A required type with fewer usable documents than ``min_count`` is a gap: each of its
    wrong-version documents is listed (GAP_WRONG_VERSION) or, when it has none,
    GAP_DOCUMENT_MISSING. A missing recommended type is a GAP_RECOMMENDED_MISSING warning.
    Documents that failed to parse (no extraction) do not count. Pure and deterministic.
    """
    missing: list[GapItem] = []
    wrong: list[GapItem] = []
    warnings: list[Finding] = []
    for doc_type, item in checklist.documents.items():
        of_type = [d for d in docs if d.doc_type == doc_type and d.extraction is not None]
        bad = [g for d in of_type if (g := _wrong_version(d, item, manifest)) is not None]
        usable = len(of_type) - len(bad)
        if usable >= item.min_count:
            continue
        if not item.required:
            warnings.append(make_finding("GAP_RECOMMENDED_MISSING", None, doc_type=doc_type.value))
        elif bad:
            wrong.extend(bad)
        else:
            missing.append(
                make_gap(
                    "GAP_DOCUMENT_MISSING",
                    DocumentType(doc_type),
                    required=item.min_count,
                    present=usable,
                )
            )
    return GapReport(
        region=checklist.region,
        checklist=checklist.name,
        missing=missing,
        wrong_version=wrong,
        warnings=warnings,
    )
