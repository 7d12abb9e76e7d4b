"""Gap analysis: a packet's documents against its region's checklist."""

from __future__ import annotations

import re
from collections.abc import Sequence

from clinflow.packets.checklists import Checklist, ChecklistItem
from clinflow.packets.extraction_models import DocumentRecord, Form1572Extraction
from clinflow.packets.manifest import PacketManifest
from clinflow.packets.models import DocumentType, Finding, GapItem, GapReport
from clinflow.packets.protocol_matrix import ProtocolMatrix, load_protocol_matrix
from clinflow.packets.rules import make_finding, make_gap
from clinflow.packets.versions import same_version


def _wrong_version(
    doc: DocumentRecord, item: ChecklistItem, manifest: PacketManifest
) -> GapItem | None:
    ex = doc.extraction
    if ex is None:
        return None
    if ex.protocol_version and not same_version(ex.protocol_version, manifest.protocol_version):
        return make_gap(
            "GAP_WRONG_VERSION",
            doc.doc_type,
            document=doc.name,
            expected=manifest.protocol_version,
            found=ex.protocol_version,
            what="protocol version",
        )
    accepted = {_edition(v) for v in item.accepted_versions}
    if accepted and ex.form_version and _edition(ex.form_version) not in accepted:
        return make_gap(
            "GAP_WRONG_VERSION",
            doc.doc_type,
            document=doc.name,
            expected=" or ".join(item.accepted_versions),
            found=ex.form_version,
            what="form version",
        )
    return None


def _edition(value: str) -> str:
    """A form edition compared canonically: "(3/24)", "03/24" and "3/2024" are one edition."""
    parts = re.findall(r"\d+", value)
    if len(parts) >= 2:
        month, year = parts[0].lstrip("0") or "0", parts[1][-2:]
        return f"{month}/{year}"
    return value.strip().lower()


def conditions(
    manifest: PacketManifest, docs: Sequence[DocumentRecord], matrix: ProtocolMatrix
) -> set[str]:
    """The ``required_when`` conditions that hold for this packet."""
    held: set[str] = set()
    if matrix.under_us_ind(manifest.protocol_number, manifest.region) or any(
        d.extraction is not None and d.extraction.ind_number for d in docs
    ):
        held.add("us_ind")
    if any(
        isinstance(d.extraction, Form1572Extraction) and d.extraction.laboratories for d in docs
    ):
        held.add("lists_laboratory")
    return held


def _lab_contacts(docs: Sequence[DocumentRecord]) -> list[Finding]:
    out: list[Finding] = []
    for d in docs:
        if isinstance(d.extraction, Form1572Extraction):
            for i, lab in enumerate(d.extraction.laboratories, start=1):
                missing = [k for k in ("phone", "fax") if not getattr(lab, k)]
                if missing:
                    out.append(
                        make_finding(
                            "LAB_CONTACT_MISSING", d.name, index=i, missing=" and ".join(missing)
                        )
                    )
    return out


def gap_analysis(
    manifest: PacketManifest,
    docs: Sequence[DocumentRecord],
    checklist: Checklist,
    matrix: ProtocolMatrix | None = None,
) -> GapReport:
    """Missing and wrong-version documents of ``manifest``'s packet against ``checklist``.

    A required type (or a not-required one whose ``required_when`` conditions hold, see
    :func:`conditions`) with fewer usable documents than ``min_count`` is a gap: each of its
    wrong-version documents is listed (GAP_WRONG_VERSION) or, when it has none,
    GAP_DOCUMENT_MISSING. A missing recommended type is a GAP_RECOMMENDED_MISSING warning; a
    laboratory listed on Form FDA 1572 without phone or fax is LAB_CONTACT_MISSING.
    Documents that failed to parse (no extraction) do not count. Pure and deterministic.
    """
    matrix = matrix or load_protocol_matrix()
    held = conditions(manifest, docs, matrix)
    missing: list[GapItem] = []
    wrong: list[GapItem] = []
    warnings: list[Finding] = _lab_contacts(docs)
    for doc_type, item in checklist.documents.items():
        of_type = [d for d in docs if d.doc_type == doc_type and d.extraction is not None]
        bad = [g for d in of_type if (g := _wrong_version(d, item, manifest)) is not None]
        usable = len(of_type) - len(bad)
        if usable >= item.min_count:
            continue
        required = item.required or bool(held.intersection(item.required_when))
        if not required:
            if item.recommended:
                warnings.append(
                    make_finding("GAP_RECOMMENDED_MISSING", None, doc_type=doc_type.value)
                )
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
