"""Demo site packets with known expected outcomes (fictional people, sites and sponsors).

``generate_demo_packets(out_dir)`` writes one folder per packet, each with a ``manifest.yaml``
and its documents: text PDFs, scanned image-only PDFs (need OCR), DOCX files, digitally
signed and unsigned PDFs. Each packet exercises one branch of the decision tree (see
:data:`PACKETS`); the function returns what evaluating each packet must give. Generation is
deterministic and takes a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from clinflow.packets.identity import sha256_bytes
from clinflow.packets.models import DocumentType, PacketOutcome
from clinflow.packets.sample_docs import (
    DigitalSignature,
    add_signature_field,
    docx_document,
    scanned_pdf,
    text_pdf,
)

DEMO_AS_OF = date(2026, 5, 1)
"""The evaluation date the expected outcomes assume (manifests carry activation dates)."""


class DemoPacket(BaseModel):
    """One generated packet and what evaluating it must give."""

    model_config = ConfigDict(frozen=True)

    name: str
    path: str
    region: str
    expected_outcome: PacketOutcome
    expected_codes: list[str]
    description: str


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    tasks: str
    degree: str = ""

    @property
    def titled(self) -> str:
        prefix = "Dr. " if self.degree in ("MD", "PhD") else ""
        suffix = f", {self.degree}" if self.degree else ""
        return f"{prefix}{self.name}{suffix}"


@dataclass(frozen=True)
class Site:
    """The facts a packet's documents state (change one to make a document wrong)."""

    site_id: str
    site_number: str
    region: str
    country: str
    protocol: str
    version: str
    target: date
    institution: str
    irb: str
    pi: Person
    staff: tuple[Person, ...]
    us_dates: bool = True

    def d(self, day: date, style: int = 0) -> str:
        """A date written the way this site's documents write it (several styles)."""
        if self.us_dates:
            styles = ["%d-%b-%Y", "%m/%d/%Y", "%B %d, %Y", "%Y-%m-%d"]
        else:
            styles = ["%Y-%m-%d", "%d.%m.%Y", "%d %B %Y", "%d-%b-%Y"]
        return day.strftime(styles[style % len(styles)])

    @property
    def people(self) -> tuple[Person, ...]:
        return (self.pi, *self.staff)


@dataclass
class Doc:
    name: str
    data: bytes
    doc_type: DocumentType | None = None
    declared_sha256: str | None = None


@dataclass
class Variant:
    """Knobs that make one document of a packet deviate from the good default."""

    irb_expiry: date | None = None
    sigpage_version: str | None = None
    unsigned_1572: bool = False
    delegation_pi: str | None = None
    skip_gcp_for: str | None = None
    gcp_completed: date = date(2025, 11, 3)
    extra: list[str] = field(default_factory=list)


def _protocol_lines(s: Site, version: str | None = None) -> list[str]:
    return [
        f"Protocol Number: {s.protocol}",
        f"Protocol Version: {version or s.version}",
        f"Site Number: {s.site_number}",
    ]


def form_1572(s: Site, v: Variant) -> Doc:
    sub = "; ".join(p.titled for p in s.staff if p.degree == "MD") or "None"
    page1 = [
        "DEPARTMENT OF HEALTH AND HUMAN SERVICES - FOOD AND DRUG ADMINISTRATION",
        "STATEMENT OF INVESTIGATOR",
        "(Title 21, Code of Federal Regulations (CFR) Part 312)",
        "FORM FDA 1572 (03/24)",
        "",
        *_protocol_lines(s),
        f"Name of Investigator: {s.pi.titled}",
        f"Institution: {s.institution}",
        f"Name of IRB: {s.irb}",
        f"Sub-Investigators: {sub}",
        f"Date: {s.d(date(2026, 3, 12), 0)}",
    ]
    page2 = [
        "Section 9: Commitments",
        "I agree to conduct the study in accordance with the relevant, current protocol and",
        "will only make changes after notifying the sponsor, except when necessary to protect",
        "the safety, rights, or welfare of subjects.",
        "Signature of Investigator: see the digital signature field on this page",
    ]
    signed_on = None if v.unsigned_1572 else date(2026, 3, 14)
    pdf = text_pdf([page1, page2], title="Form FDA 1572")
    pdf = add_signature_field(
        pdf, DigitalSignature("Section11Signature", s.pi.name if signed_on else None, signed_on)
    )
    return Doc("form_1572.pdf", pdf)


def investigator_cv(s: Site, v: Variant) -> Doc:
    lines = [
        "Curriculum Vitae",
        f"Name: {s.pi.titled}",
        f"Position: Principal Investigator, {s.institution}",
        "Education",
        f"{s.pi.degree or 'MD'}, Eastmoor University School of Medicine, 2009",
        "Professional Experience",
        f"2016 - present: Consultant physician, {s.institution}",
        "Publications",
        "Twelve peer-reviewed articles on heart failure outcomes.",
        f"Signature: /s/ {s.pi.name}",
        f"Date signed: {s.d(date(2026, 3, 2), 2)}",
    ]
    return Doc("investigator_cv.docx", docx_document(lines, title="Curriculum vitae"))


def medical_license(s: Site, v: Variant, *, scanned: bool) -> Doc:
    board = "STATE BOARD OF MEDICINE" if s.us_dates else "GENERAL MEDICAL COUNCIL REGISTER"
    lines = [
        board,
        "MEDICAL LICENSE",
        f"Licensee: {s.pi.titled}",
        "License Number: MD-448812",
        f"Issue Date: {s.d(date(2019, 7, 1), 2)}",
        f"Expiration Date: {s.d(date(2027, 6, 30), 2)}",
    ]
    if scanned:
        return Doc("medical_license_scan.pdf", scanned_pdf([lines]))
    return Doc("medical_license.pdf", text_pdf([lines], title="Medical license"))


def gcp_certificate(s: Site, person: Person, v: Variant) -> Doc:
    lines = [
        "Certificate of Completion",
        "Good Clinical Practice (ICH E6) Investigator Training",
        f"Awarded to: {person.titled}",
        f"Completion date: {s.d(v.gcp_completed, 3)}",
        "Provider: Northgate Clinical Research Academy",
    ]
    slug = person.name.lower().replace(" ", "_")
    return Doc(f"gcp_{slug}.pdf", text_pdf([lines], title="GCP certificate"))


def irb_approval(s: Site, v: Variant, *, scanned: bool = False) -> Doc:
    expiry = v.irb_expiry or date(2027, 2, 19)
    heading = "IRB Approval Letter" if s.us_dates else "Independent Ethics Committee Approval"
    lines = [
        s.irb,
        heading,
        *_protocol_lines(s),
        f"Principal Investigator: {s.pi.titled}",
        f"Approval Date: {s.d(date(2026, 2, 20), 2 if scanned else 1)}",
        f"Expiration Date: {s.d(expiry, 2 if scanned else 1)}",
        "Continuing review is required before the expiration date.",
    ]
    if scanned:
        return Doc("ethics_approval_scan.pdf", scanned_pdf([lines]))
    return Doc("irb_approval.pdf", text_pdf([lines], title="IRB approval"))


def icf_approval(s: Site, v: Variant) -> Doc:
    lines = [
        "Informed Consent Form Approval",
        f"Reviewing IRB: {s.irb}",
        *_protocol_lines(s),
        f"ICF Version: {s.version}-EN",
        f"Approval Date: {s.d(date(2026, 2, 20), 0)}",
    ]
    return Doc("icf_approval.pdf", text_pdf([lines], title="ICF approval"))


def delegation_log(s: Site, v: Variant) -> Doc:
    table = [["Name", "Role", "Delegated Tasks", "Start Date"]]
    for p in s.people:
        table.append([p.titled, p.role, p.tasks, s.d(date(2026, 3, 20), 0)])
    lines = [
        "Delegation of Authority Log",
        *_protocol_lines(s),
        f"Principal Investigator: {v.delegation_pi or s.pi.titled}",
    ]
    after = [f"PI Signature: /s/ {s.pi.name}", f"Date signed: {s.d(date(2026, 3, 21), 2)}"]
    return Doc(
        "delegation_log.docx",
        docx_document(lines, table=table, after_table=after, title="Delegation log"),
    )


def financial_disclosure(s: Site, v: Variant) -> Doc:
    lines = [
        "Financial Disclosure Form",
        "Certification of financial interests and arrangements (21 CFR Part 54)",
        *_protocol_lines(s),
        f"Investigator Name: {s.pi.titled}",
        "Significant financial interests: None",
        f"Signature: /s/ {s.pi.name}",
        f"Date signed: {s.d(date(2026, 3, 3), 1)}",
    ]
    return Doc("financial_disclosure.pdf", text_pdf([lines], title="Financial disclosure"))


def clinical_trial_agreement(s: Site, v: Variant, *, budget: str = "412,500") -> Doc:
    lines = [
        "Clinical Trial Agreement",
        f"This agreement is made by and between Calderon Therapeutics Ltd and {s.institution}.",
        "Sponsor: Calderon Therapeutics Ltd",
        f"Institution: {s.institution}",
        *_protocol_lines(s),
        f"Total Budget: EUR {budget}" if not s.us_dates else f"Total Budget: USD {budget}",
        "Payment schedule: per-patient fees as set out in Exhibit B.",
        f"Effective Date: {s.d(date(2026, 3, 1), 3)}",
        "Signature: /s/ Morgan Ellery, Director of Research Contracts",
        f"Date signed: {s.d(date(2026, 3, 4), 3)}",
    ]
    return Doc("clinical_trial_agreement.docx", docx_document(lines, title="CTA"))


def protocol_signature_page(s: Site, v: Variant) -> Doc:
    lines = [
        "Protocol Signature Page",
        *_protocol_lines(s, v.sigpage_version),
        "I have read this protocol and agree to conduct the study as outlined herein,",
        "in accordance with ICH GCP and all applicable regulatory requirements.",
        f"Investigator Name: {s.pi.titled}",
    ]
    pdf = text_pdf([lines], title="Protocol signature page")
    pdf = add_signature_field(
        pdf, DigitalSignature("InvestigatorSignature", s.pi.name, date(2026, 3, 10))
    )
    return Doc("protocol_signature_page.pdf", pdf)


def lab_certification(s: Site, v: Variant) -> Doc:
    accreditation = (
        "Clinical Laboratory Improvement Amendments (CLIA) certificate of accreditation"
        if s.us_dates
        else "Laboratory accreditation to ISO 15189"
    )
    lines = [
        "Laboratory Certification",
        accreditation,
        "Laboratory Name: Harborview Reference Laboratory",
        "Certificate Number: 99D2045817",
        f"Expiration Date: {s.d(date(2027, 9, 30), 3)}",
        "Normal ranges for the protocol's safety laboratory tests are attached.",
    ]
    return Doc("lab_certification.pdf", text_pdf([lines], title="Lab certification"))


def site_newsletter(s: Site, v: Variant) -> Doc:
    lines = [
        "Site newsletter",
        "The cafeteria on level 2 reopens next Monday.",
        "Parking permits for the new quarter are available at reception.",
    ]
    return Doc("newsletter.pdf", text_pdf([lines], title="Newsletter"))


US_SITE = Site(
    site_id="SITE-US-0101",
    site_number="101",
    region="us",
    country="US",
    protocol="CFX-301",
    version="3.0",
    target=date(2026, 6, 15),
    institution="Lakeshore Heart Institute",
    irb="Riverbend Central IRB",
    pi=Person("Alina Marsh", "Principal Investigator", "All study tasks", "MD"),
    staff=(
        Person(
            "Jonah Whitfield", "Sub-Investigator", "Eligibility, Physical exams, AE review", "MD"
        ),
        Person("Priya Okafor", "Study Coordinator", "Informed consent, CRF entry", "RN"),
    ),
)

EU_SITE = Site(
    site_id="SITE-DE-0201",
    site_number="201",
    region="eu",
    country="DE",
    protocol="NVX-210",
    version="1.1",
    target=date(2026, 7, 1),
    institution="Klinikum Nordhafen",
    irb="Ethikkommission Nordhafen",
    pi=Person("Tobias Lindqvist", "Principal Investigator", "All study tasks", "MD"),
    staff=(
        Person("Elena Moravec", "Sub-Investigator", "Eligibility, Neurological exams", "MD"),
        Person("Kasper Hald", "Study Nurse", "Informed consent, Sample handling", "RN"),
    ),
    us_dates=False,
)

Builder = Callable[[Site, Variant], list[Doc]]


def _full_packet(
    s: Site,
    v: Variant,
    *,
    with_1572: bool = True,
    with_lab: bool = True,
    scanned_license: bool = False,
    scanned_irb: bool = False,
) -> list[Doc]:
    docs: list[Doc] = []
    if with_1572 and s.region == "us":
        docs.append(form_1572(s, v))
    docs.append(investigator_cv(s, v))
    docs.append(medical_license(s, v, scanned=scanned_license))
    docs.extend(gcp_certificate(s, p, v) for p in s.people if p.name != v.skip_gcp_for)
    docs.append(irb_approval(s, v, scanned=scanned_irb))
    docs.append(icf_approval(s, v))
    docs.append(delegation_log(s, v))
    docs.append(financial_disclosure(s, v))
    cta = clinical_trial_agreement(s, v)
    cta.doc_type = DocumentType.CTA_BUDGET
    docs.append(cta)
    docs.append(protocol_signature_page(s, v))
    if with_lab:
        docs.append(lab_certification(s, v))
    return docs


def _us_complete(s: Site, v: Variant) -> list[Doc]:
    return _full_packet(s, v, scanned_license=True)


def _eu_complete(s: Site, v: Variant) -> list[Doc]:
    return _full_packet(s, v, scanned_irb=True)


def _us_warnings(s: Site, v: Variant) -> list[Doc]:
    docs = _full_packet(s, v, with_lab=False)
    gcp = next(d for d in docs if d.name.startswith("gcp_"))
    docs.append(Doc(gcp.name.replace(".pdf", "_copy.pdf"), gcp.data))
    docs.append(site_newsletter(s, v))
    return docs


def _us_truncated(s: Site, v: Variant) -> list[Doc]:
    docs = _full_packet(s, v)
    first = docs[0]
    first.data = first.data[: int(len(first.data) * 0.6)]
    return docs


def _eu_bytes_changed(s: Site, v: Variant) -> list[Doc]:
    docs = _full_packet(s, v)
    cta = next(d for d in docs if d.doc_type is DocumentType.CTA_BUDGET)
    cta.declared_sha256 = sha256_bytes(cta.data)
    cta.data = clinical_trial_agreement(s, v, budget="812,500").data
    return docs


@dataclass(frozen=True)
class PacketSpec:
    name: str
    site: Site
    variant: Variant
    build: Builder
    outcome: PacketOutcome
    codes: tuple[str, ...]
    description: str
    deviations: tuple[dict[str, str | None], ...] = ()


PACKETS: tuple[PacketSpec, ...] = (
    PacketSpec(
        "us-101-complete",
        US_SITE,
        Variant(),
        _us_complete,
        PacketOutcome.VALIDATED,
        (),
        "Complete US packet; the medical license is a scanned image-only PDF.",
        ({"id": "DEV-007", "description": "Visit 3 window", "approval_reference": "SP-APR-17"},),
    ),
    PacketSpec(
        "eu-201-complete",
        EU_SITE,
        Variant(),
        _eu_complete,
        PacketOutcome.VALIDATED,
        (),
        "Complete EU packet; the ethics committee approval is scanned.",
    ),
    PacketSpec(
        "us-102-warnings",
        replace(US_SITE, site_id="SITE-US-0102", site_number="102"),
        Variant(),
        _us_warnings,
        PacketOutcome.VALIDATED_WITH_WARNINGS,
        ("DUPLICATE_DOCUMENT", "GAP_RECOMMENDED_MISSING", "DOC_TYPE_UNKNOWN"),
        "A duplicated GCP certificate, an unclassifiable newsletter, no lab certification.",
    ),
    PacketSpec(
        "us-103-expired-irb",
        replace(US_SITE, site_id="SITE-US-0103", site_number="103"),
        Variant(irb_expiry=date(2026, 5, 31)),
        _full_packet,
        PacketOutcome.BLOCKED,
        ("IRB_APPROVAL_EXPIRED",),
        "The IRB approval expires before the planned activation date.",
    ),
    PacketSpec(
        "us-104-missing-1572",
        replace(US_SITE, site_id="SITE-US-0104", site_number="104"),
        Variant(),
        lambda s, v: _full_packet(s, v, with_1572=False),
        PacketOutcome.INCOMPLETE,
        ("GAP_DOCUMENT_MISSING",),
        "No Form FDA 1572.",
    ),
    PacketSpec(
        "eu-202-superseded-protocol",
        replace(EU_SITE, site_id="SITE-DE-0202", site_number="202", version="1.0"),
        Variant(),
        _full_packet,
        PacketOutcome.BLOCKED,
        ("PROTOCOL_VERSION_NOT_ACTIVE",),
        "Submitted under protocol version 1.0, superseded before activation.",
    ),
    PacketSpec(
        "us-105-wrong-version-doc",
        replace(US_SITE, site_id="SITE-US-0105", site_number="105"),
        Variant(sigpage_version="2.0"),
        _full_packet,
        PacketOutcome.INCOMPLETE,
        ("GAP_WRONG_VERSION",),
        "The protocol signature page is for protocol version 2.0.",
    ),
    PacketSpec(
        "us-106-truncated",
        replace(US_SITE, site_id="SITE-US-0106", site_number="106"),
        Variant(),
        _us_truncated,
        PacketOutcome.DEAD_LETTERED,
        ("PDF_TRUNCATED",),
        "The Form FDA 1572 PDF is truncated.",
    ),
    PacketSpec(
        "us-107-unsigned-1572",
        replace(US_SITE, site_id="SITE-US-0107", site_number="107"),
        Variant(unsigned_1572=True),
        _full_packet,
        PacketOutcome.BLOCKED,
        ("SIGNATURE_MISSING",),
        "The Form FDA 1572 has an empty signature field.",
    ),
    PacketSpec(
        "eu-203-bytes-changed",
        replace(EU_SITE, site_id="SITE-DE-0203", site_number="203"),
        Variant(),
        _eu_bytes_changed,
        PacketOutcome.BLOCKED,
        ("HASH_MISMATCH",),
        "The agreement's bytes changed after its hash was recorded.",
    ),
    PacketSpec(
        "eu-204-delegate-without-gcp",
        replace(EU_SITE, site_id="SITE-DE-0204", site_number="204"),
        Variant(skip_gcp_for="Kasper Hald"),
        _full_packet,
        PacketOutcome.BLOCKED,
        ("DELEGATE_WITHOUT_GCP",),
        "A delegated study nurse has no GCP certificate.",
    ),
    PacketSpec(
        "us-108-investigator-mismatch",
        replace(US_SITE, site_id="SITE-US-0108", site_number="108"),
        Variant(delegation_pi="Dr. Alina Marsh-Hollis, MD"),
        _full_packet,
        PacketOutcome.BLOCKED,
        ("INVESTIGATOR_NAME_MISMATCH", "PROTOCOL_DEVIATION_UNAPPROVED"),
        "The delegation log names another PI; an unapproved deviation is reported.",
        ({"id": "DEV-011", "description": "Screening visit out of window"},),
    ),
)


def _write_packet(folder: Path, spec: PacketSpec, docs: list[Doc]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, str]] = []
    for doc in docs:
        (folder / doc.name).write_bytes(doc.data)
        entry = {"path": doc.name}
        if doc.doc_type is not None:
            entry["doc_type"] = doc.doc_type.value
        if doc.declared_sha256 is not None:
            entry["sha256"] = doc.declared_sha256
        files.append(entry)
    s = spec.site
    manifest = {
        "site_id": s.site_id,
        "site_number": s.site_number,
        "protocol_number": s.protocol,
        "protocol_version": s.version,
        "region": s.region,
        "country": s.country,
        "target_activation_date": s.target.isoformat(),
        "files": files,
        "deviations": [dict(d) for d in spec.deviations],
    }
    (folder / "manifest.yaml").write_text(
        f"# Demo packet: {spec.description}\n" + yaml.safe_dump(manifest, sort_keys=False),
        encoding="utf-8",
    )


def generate_demo_packets(out_dir: Path, *, only: list[str] | None = None) -> list[DemoPacket]:
    """Write the demo packets under ``out_dir/<packet name>/`` and return their expectations.

    ``only`` limits generation to the named packets. Idempotent: files are overwritten with
    identical bytes. Expected outcomes assume evaluation with ``as_of=DEMO_AS_OF``.
    """
    out: list[DemoPacket] = []
    for spec in PACKETS:
        if only is not None and spec.name not in only:
            continue
        folder = Path(out_dir) / spec.name
        _write_packet(folder, spec, spec.build(spec.site, spec.variant))
        out.append(
            DemoPacket(
                name=spec.name,
                path=str(folder),
                region=spec.site.region,
                expected_outcome=spec.outcome,
                expected_codes=list(spec.codes),
                description=spec.description,
            )
        )
    return out
