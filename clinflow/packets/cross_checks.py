"""Cross-document semantic rules: what must agree across a packet's documents.

Pure functions of the packet's extractions (no clock: ``as_of`` comes from the caller).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TypeVar

from clinflow.packets.extraction_models import (
    DelegationLogExtraction,
    DocumentRecord,
    Form1572Extraction,
    GCPCertificateExtraction,
    InvestigatorCVExtraction,
)
from clinflow.packets.manifest import PacketManifest
from clinflow.packets.models import Finding
from clinflow.packets.person_names import same_person
from clinflow.packets.protocol_matrix import ProtocolMatrix, load_protocol_matrix
from clinflow.packets.rules import make_finding
from clinflow.packets.validate import activation_date

T = TypeVar("T")


def _of_type(docs: Iterable[DocumentRecord], cls: type[T]) -> list[tuple[str, T]]:
    return [(d.name, d.extraction) for d in docs if isinstance(d.extraction, cls)]


def _protocol(manifest: PacketManifest, matrix: ProtocolMatrix, on: date) -> list[Finding]:
    status = matrix.status(manifest.protocol_number, manifest.protocol_version, manifest.region, on)
    if status == "unknown-protocol":
        return [make_finding("PROTOCOL_UNKNOWN", None, protocol=manifest.protocol_number)]
    if status != "active":
        return [
            make_finding(
                "PROTOCOL_VERSION_NOT_ACTIVE",
                None,
                protocol=manifest.protocol_number,
                version=manifest.protocol_version,
                region=manifest.region,
                activation=on.isoformat(),
                status=status,
            )
        ]
    return []


def _investigators(docs: Sequence[DocumentRecord]) -> list[Finding]:
    """The PI named by the 1572, the delegation log and the CV must be one person.

    Names are compared with :func:`same_person` (first + last name; titles, credentials and
    middle initials ignored; "Smith, Jane" is "Jane Smith").
    """
    out: list[Finding] = []
    forms = [
        (n, e.investigator_name)
        for n, e in _of_type(docs, Form1572Extraction)
        if e.investigator_name
    ]
    logs = [
        (n, e.principal_investigator)
        for n, e in _of_type(docs, DelegationLogExtraction)
        if e.principal_investigator
    ]
    cvs = [e.person_name for _, e in _of_type(docs, InvestigatorCVExtraction) if e.person_name]
    if forms and logs and not same_person(forms[0][1], logs[0][1]):
        out.append(
            make_finding(
                "INVESTIGATOR_NAME_MISMATCH",
                logs[0][0],
                left="Form FDA 1572",
                right="delegation log",
            )
        )
    named = forms[0] if forms else (logs[0] if logs else None)
    if named is not None and cvs and not any(same_person(named[1], cv) for cv in cvs):
        source = "Form FDA 1572" if forms else "delegation log"
        out.append(
            make_finding(
                "INVESTIGATOR_NAME_MISMATCH", named[0], left=source, right="investigator CV"
            )
        )
    return out


def _delegates_without_gcp(docs: Sequence[DocumentRecord]) -> list[Finding]:
    """Every person on a delegation log needs a GCP certificate in the packet. A log whose PI
    is not the investigator of the 1572 (or, without one, of the CV) is already
    INVESTIGATOR_NAME_MISMATCH: that name is not asked for a certificate as well (one defect,
    one finding)."""
    holders = [e.holder_name for _, e in _of_type(docs, GCPCertificateExtraction) if e.holder_name]
    form_pis = [e.investigator_name for _, e in _of_type(docs, Form1572Extraction)]
    cv_names = [e.person_name for _, e in _of_type(docs, InvestigatorCVExtraction)]
    form_pi = next((n for n in [*form_pis, *cv_names] if n), None)
    out: list[Finding] = []
    for name, log in _of_type(docs, DelegationLogExtraction):
        seen: list[str] = []
        disputed = (
            log.principal_investigator
            if form_pi
            and log.principal_investigator
            and not same_person(form_pi, log.principal_investigator)
            else None
        )
        for person in log.people():
            if any(same_person(person, s) for s in seen):
                continue
            if disputed and same_person(person, disputed):
                continue
            seen.append(person)
            if not any(same_person(person, h) for h in holders):
                out.append(make_finding("DELEGATE_WITHOUT_GCP", name, person=person))
    return out


def duplicate_findings(hashes: Mapping[str, str]) -> list[Finding]:
    """DUPLICATE_DOCUMENT for each set of file names (``name -> sha256``) with equal bytes.

    The finding names the later copies; callers process each distinct hash once.
    """
    counts = Counter(hashes.values())
    out: list[Finding] = []
    seen: set[str] = set()
    for name, digest in sorted(hashes.items()):
        if counts[digest] > 1:
            if digest in seen:
                out.append(make_finding("DUPLICATE_DOCUMENT", name, count=counts[digest]))
            seen.add(digest)
    return out


def cross_document_checks(
    manifest: PacketManifest,
    docs: Sequence[DocumentRecord],
    *,
    as_of: date,
    matrix: ProtocolMatrix | None = None,
) -> list[Finding]:
    """Packet-level rules: protocol version matrix, investigator identity across the 1572,
    delegation log and CV, GCP certificate for every delegated person, reported deviations.

    ``docs`` are the packet's distinct documents (duplicates removed; see
    :func:`duplicate_findings`). Documents without an extraction are ignored.
    """
    matrix = matrix or load_protocol_matrix()
    out = _protocol(manifest, matrix, activation_date(manifest, as_of))
    out.extend(_investigators(docs))
    out.extend(_delegates_without_gcp(docs))
    for deviation in manifest.deviations:
        if not deviation.approval_reference:
            out.append(make_finding("PROTOCOL_DEVIATION_UNAPPROVED", None, deviation=deviation.id))
    return out
