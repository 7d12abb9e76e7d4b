"""Classification and extraction on documents written the way other institutions write them.

Each text below follows a layout the demo generator never produces (letterheads, subject lines,
label wording, date conventions, name forms), so these tests keep the rules honest about what
they have to generalise to.
"""

from __future__ import annotations

import pytest

from clinflow.packets.classify import classify_text
from clinflow.packets.extract import extract
from clinflow.packets.extraction_models import (
    Form1572Extraction,
    GCPCertificateExtraction,
    ICFApprovalExtraction,
    InvestigatorCVExtraction,
    IRBApprovalExtraction,
    LabCertificationExtraction,
    MedicalLicenseExtraction,
)
from clinflow.packets.models import DocumentType, FileKind, PageText, ParseResult
from clinflow.packets.person_names import same_person

T = DocumentType

EU_OPINION = """ETHIKKOMMISSION DER MEDIZINISCHEN FAKULTÄT
Universitätsklinikum Nordstadt · Ethics Committee
Ref.: EK 112/26
Favourable opinion on a clinical trial
Sponsor protocol number: CFX-301   Protocol version: 3.0 of 12.01.2026
Principal investigator: Prof. Dr. med. Anna Keller
The Committee has reviewed the application and gives a favourable opinion.
Date of favourable opinion: 04.03.2026
Opinion valid until: 03.03.2027
"""

US_IRB = """Lakeside Institutional Review Board
1200 Harbor Drive, Suite 400, Chicago, IL 60601 | FWA00012345
NOTICE OF IRB APPROVAL
Date: March 4, 2026
IRB Protocol #: LIRB-2026-0142
Sponsor Protocol: CFX-301 (Amendment 3, Version 3.0)
Principal Investigator: Jane Q. Smith, MD
The IRB approved the above-referenced research at its convened meeting.
Approval Period: 03/04/2026 - 03/03/2027
Continuing Review Due: 02/01/2027
"""

ICF_LETTER = """Lakeside Institutional Review Board
RE: Approval of Revised Informed Consent Form
Study: CFX-301
Dear Dr. Smith,
The IRB reviewed and approved the informed consent document listed below.
Consent Form Version 4.0 dated 02/10/2026
Date Approved: 02/20/2026
Institutional Review Board Chair
"""

CITI = """CITI PROGRAM
COLLABORATIVE INSTITUTIONAL TRAINING INITIATIVE
Completion Report - Part 1 of 2
Name: Jane Smith (ID: 884211)
Curriculum Group: Good Clinical Practice
Course Learner Group: GCP for Clinical Trials with Investigational Drugs (ICH Focus)
Stage: Stage 1 - Basic Course
Record ID: 55102331
Completion Date: 11-Jan-2026
Expiration Date: 10-Jan-2029
Verify at www.citiprogram.org/verify
"""

LICENSE_LOOKUP = """State Medical Board - License Lookup
Physician and Surgeon
Licensee: SMITH, JANE QUINN
License Number: A123456
License Type: Physician and Surgeon
License Status: ACTIVE
Original Issue Date: 06/15/2009
Expiration Date: 06/30/2027
Public Record Actions: None
"""

CV_PLAIN = """JANE Q. SMITH, MD
Department of Cardiology, Lakeshore Heart Institute
EDUCATION
2001 MD, State University School of Medicine
PROFESSIONAL EXPERIENCE
2010 - present Attending Cardiologist
PUBLICATIONS
Smith J, et al. Heart failure outcomes. 2019.
CERTIFICATIONS
Board certified in Internal Medicine and Cardiovascular Disease
"""

LAB_CLIA = """DEPARTMENT OF HEALTH AND HUMAN SERVICES
CENTERS FOR MEDICARE & MEDICAID SERVICES
CLINICAL LABORATORY IMPROVEMENT AMENDMENTS
CERTIFICATE OF ACCREDITATION
LABORATORY NAME AND ADDRESS: Lakeshore Clinical Laboratory, 10 Lake St, Chicago IL
CLIA ID NUMBER: 14D0123456
LABORATORY DIRECTOR: Paul Reyes, MD
EFFECTIVE DATE: 07/01/2024
EXPIRATION DATE: 06/30/2026
"""

FORM_1572 = """DEPARTMENT OF HEALTH AND HUMAN SERVICES
FOOD AND DRUG ADMINISTRATION
STATEMENT OF INVESTIGATOR
(TITLE 21, CODE OF FEDERAL REGULATIONS (CFR) PART 312)
Form Approved: OMB No. 0910-0014. Expiration Date: 03/31/2026
1. NAME AND ADDRESS OF INVESTIGATOR
Jane Q. Smith, MD
Lakeshore Heart Institute, 200 Shore Rd, Chicago IL
2. EDUCATION, TRAINING, AND EXPERIENCE THAT QUALIFY THE INVESTIGATOR
CV attached
4. NAME AND ADDRESS OF ANY CLINICAL LABORATORY FACILITIES TO BE USED IN THE STUDY
Lakeshore Clinical Laboratory
10 Lake St, Chicago IL 60601
Tel: (312) 555-0199   Fax: (312) 555-0198

Central Lab Services Ltd
3 Research Park, Cambridge
5. NAME AND ADDRESS OF THE INSTITUTIONAL REVIEW BOARD (IRB)
Lakeside IRB
7. NAME AND CODE NUMBER, IF ANY, OF THE PROTOCOL(S) IN THE IND
Protocol CFX-301, Version 3.0
FORM FDA 1572 (3/24)
"""

CASES = [
    (EU_OPINION, T.IRB_APPROVAL),
    (US_IRB, T.IRB_APPROVAL),
    (ICF_LETTER, T.ICF_APPROVAL),
    (CITI, T.GCP_CERTIFICATE),
    (LICENSE_LOOKUP, T.MEDICAL_LICENSE),
    (CV_PLAIN, T.INVESTIGATOR_CV),
    (LAB_CLIA, T.LAB_CERTIFICATION),
    (FORM_1572, T.FDA_1572),
]


def _parse(text: str, *, ocr: bool = False) -> ParseResult:
    """A one-page PDF parse of ``text``; with ``ocr`` its text as OCR read it from a scan."""
    return ParseResult(
        kind=FileKind.PDF,
        sha256="0" * 64,
        size=len(text),
        page_count=1,
        pages=[
            PageText(
                index=0, text=text, chars=len(text), ocr=ocr, ocr_confidence=80.0 if ocr else None
            )
        ],
        ocr_pages=[0] if ocr else [],
    )


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[1].value for c in CASES])
def test_other_institutions_documents_classify(text: str, expected: DocumentType) -> None:
    assert classify_text(text).doc_type is expected


def test_eu_favourable_opinion_fields_day_first() -> None:
    ex = extract(_parse(EU_OPINION), T.IRB_APPROVAL, order="DMY", protocol_number="CFX-301")
    assert isinstance(ex, IRBApprovalExtraction)
    assert ex.expiry_date == "2027-03-03" and ex.approval_date == "2026-03-04"
    assert ex.protocol_number == "CFX-301" and ex.protocol_version == "3.0"
    assert same_person(ex.investigator_name, "Anna Keller")


def test_us_irb_approval_period_range_and_local_reference_ignored() -> None:
    ex = extract(_parse(US_IRB), T.IRB_APPROVAL, order="MDY")
    assert isinstance(ex, IRBApprovalExtraction)
    assert ex.approval_date == "2026-03-04" and ex.expiry_date == "2027-03-03"
    assert ex.protocol_number == "CFX-301"  # not the IRB's own LIRB-2026-0142
    assert ex.protocol_version == "3.0"  # "Amendment 3, Version 3.0" is version 3.0


def test_icf_letter_version_and_date() -> None:
    ex = extract(_parse(ICF_LETTER), T.ICF_APPROVAL, order="MDY")
    assert isinstance(ex, ICFApprovalExtraction)
    assert ex.icf_version == "4.0" and ex.approval_date == "2026-02-20"


def test_citi_report_holder_and_completion() -> None:
    ex = extract(_parse(CITI), T.GCP_CERTIFICATE)
    assert isinstance(ex, GCPCertificateExtraction)
    assert ex.completion_date == "2026-01-11"
    assert same_person(ex.holder_name, "Jane Q. Smith, MD")


def test_license_lookup_surname_first() -> None:
    ex = extract(_parse(LICENSE_LOOKUP), T.MEDICAL_LICENSE)
    assert isinstance(ex, MedicalLicenseExtraction)
    assert ex.expiry_date == "2027-06-30" and ex.license_number == "A123456"
    assert same_person(ex.holder_name, "Dr. Jane Smith")


def test_cv_heading_name() -> None:
    ex = extract(_parse(CV_PLAIN), T.INVESTIGATOR_CV)
    assert isinstance(ex, InvestigatorCVExtraction)
    assert same_person(ex.person_name, "Smith, Jane")


def test_clia_certificate_expiry() -> None:
    ex = extract(_parse(LAB_CLIA), T.LAB_CERTIFICATION)
    assert isinstance(ex, LabCertificationExtraction)
    assert ex.expiry_date == "2026-06-30" and ex.accreditation == "CLIA"


def test_1572_header_omb_date_is_not_read_and_labs_are_listed() -> None:
    ex = extract(_parse(FORM_1572), T.FDA_1572, protocol_number="CFX-301")
    assert isinstance(ex, Form1572Extraction)
    assert ex.form_version == "3/24"
    assert ex.protocol_number == "CFX-301" and ex.protocol_version == "3.0"
    assert [lab.name for lab in ex.laboratories] == [
        "Lakeshore Clinical Laboratory",
        "Central Lab Services Ltd",
    ]
    assert ex.laboratories[0].phone and ex.laboratories[0].fax
    assert ex.laboratories[1].phone is None and ex.laboratories[1].fax is None
    assert same_person(ex.investigator_name, "Jane Smith")
    assert ex.unparsed_dates == []


DELEGATION_SCAN = """SITE DELEGATION OF AUTHORITY LOG
Protocol: CFX-301 Site: 0142
Principal Investigator: Smith, Jane Q.
Name Role Delegated Tasks Start Date Initials Signature
Jane Q. Smith, MD Principal Investigator 1, 2, 3, 4 03/01/2026 JQS
Omar Haddad Sub-Investigator 2, 3 03/02/2026 OH
Lena Fischer, RN Study Coordinator 5, 6 03/05/2026 LF
Task codes: 1 = consent, 2 = eligibility, 3 = AE assessment
"""


def test_delegation_log_rows_without_cell_borders() -> None:
    ex = extract(_parse(DELEGATION_SCAN), T.DELEGATION_LOG, order="MDY")
    from clinflow.packets.extraction_models import DelegationLogExtraction

    assert isinstance(ex, DelegationLogExtraction)
    assert classify_text(DELEGATION_SCAN).doc_type is T.DELEGATION_LOG
    names = [s.name for s in ex.staff]
    assert len(names) == 3
    assert same_person(names[0], "Jane Smith") and same_person(names[1], "Omar Haddad")
    assert same_person(names[2], "Lena Fischer")
    assert ex.staff[1].start_date == "2026-03-02"
    assert same_person(ex.principal_investigator, "Jane Smith")


FORM_1572_ROW = """FORM FDA 1572 (3/24) - Statement of Investigator
1. Investigator name and address
Simone Kowalczyk, MBBS, Columbus Clinical Research Institute, 1352 North
Ring, Columbus, OH 43210
"""

PSP_STATEMENT = """PROTOCOL SIGNATURE PAGE
Protocol CFX-301 Ver. 3.0 (2026-01-08)
Investigator's statement
By my signature I confirm that I have read and understood this protocol.
"""

DOA_WITH_LEGEND = """Site Delegation of Authority Log
Protocol: CFX-301
Principal Investigator: Castellano, Wesley G.
Name Role Delegated tasks Initials Signature Start date End date
CASTELLANO, Wesley Principal Investigator 16 WGC 04/05/2026
Simone Mendel Sub-Investigator 2,7,3 SSM /s/ Mendel, Simone S. 04/05/2026
Task codes: 1 = Informed consent; 8 = Investigational
product prescribing; 9 = CRF completion; 14 = Data entry
TrialSign eSignature
Signer: CASTELLANO, Wesley
Signed: 04/06/2026 14:40 UTC
Envelope ID: 87F0C6DC-F94B 04/06/2026
Principal Investigator Signature Date
"""


def test_1572_name_stops_before_the_address() -> None:
    ex = extract(_parse(FORM_1572_ROW), T.FDA_1572, order="MDY")
    assert isinstance(ex, Form1572Extraction)
    assert ex.investigator_name == "Simone Kowalczyk, MBBS"


def test_a_label_phrase_is_not_a_name() -> None:
    from clinflow.packets.extraction_models import ProtocolSignaturePageExtraction

    ex = extract(_parse(PSP_STATEMENT), T.PROTOCOL_SIGNATURE_PAGE, order="MDY")
    assert isinstance(ex, ProtocolSignaturePageExtraction)
    assert ex.investigator_name is None


def test_delegation_legend_and_signature_box_are_not_staff() -> None:
    from clinflow.packets.extraction_models import DelegationLogExtraction

    ex = extract(_parse(DOA_WITH_LEGEND), T.DELEGATION_LOG, order="MDY")
    assert isinstance(ex, DelegationLogExtraction)
    names = [s.name for s in ex.staff]
    assert len(names) == 2, names
    assert same_person(names[0], "Wesley Castellano") and same_person(names[1], "Simone Mendel")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Acknowledgement of Protocol\nStudy code: CFX-301 Version 3.0\nI, the undersigned "
            "investigator, acknowledge receipt of the protocol named above and agree to conduct "
            "the study according to it.\nSignature Date",
            T.PROTOCOL_SIGNATURE_PAGE,
        ),
        (
            "Copperleaf IRB\nCERTIFICATE OF ACTION\nThe board took the following action on the "
            "research below.\nBoard action APPROVED\nAction date 04-Feb-2026\nStudy Expiration "
            "04-Feb-2027",
            T.IRB_APPROVAL,
        ),
        (
            "University Human Research Protection Office\nPatient Information and Consent: "
            "approval\nStudy CFX-301\nthe committee approves the patient information sheet and "
            "consent form, version 2.0",
            T.ICF_APPROVAL,
        ),
        (
            "Dr. Ramon Whitcombe\nDepartment of Cardiology | Tucson University Hospital\n"
            "Professional Experience\nConsultant physician (2011 - present)\nFellowship in "
            "cardiology (2009)\nBoard Certification and Licensure\nBoard certified; licensed "
            "physician.\nResearch\nSub-investigator in phase III trials; GCP trained.",
            T.INVESTIGATOR_CV,
        ),
        (
            "Certificate of Registration\nMedical Council - Register of Medical Practitioners\n"
            "Registered practitioner\nEilidh Wetherby\nRegistration No. 7927461\nLicence valid "
            "until 04/04/2028",
            T.MEDICAL_LICENSE,
        ),
    ],
    ids=["psp-acknowledgement", "irb-certificate-of-action", "icf-subject", "cv-untitled", "reg"],
)
def test_more_layouts_classify(text: str, expected: DocumentType) -> None:
    assert classify_text(text).doc_type is expected


def test_signature_page_is_dated_by_its_protocol_version() -> None:
    from clinflow.packets.extraction_models import ProtocolSignaturePageExtraction

    text = (
        "Acknowledgement of Protocol\nStudy code: NVX-210 Ver. 2.0 (03/24/2026)\n"
        "I acknowledge receipt of the protocol.\nLucinda Delacroix 3770\n03/16/2026\n"
        "Signature Date"
    )
    ex = extract(_parse(text), T.PROTOCOL_SIGNATURE_PAGE, order="MDY", protocol_number="NVX-210")
    assert isinstance(ex, ProtocolSignaturePageExtraction)
    assert (ex.protocol_version, ex.document_date) == ("2.0", "2026-03-24")
    grid = "INVESTIGATOR'S AGREEMENT\nProtocol Version | Version 3.0\nProtocol Date | 10-Jan-2026"
    ex = extract(_parse(grid), T.PROTOCOL_SIGNATURE_PAGE, order="DMY", protocol_number="CFX-301")
    assert ex.document_date == "2026-01-10"
    assert ex.protocol_number is None  # "JAN-2026" of the date is not a protocol number


def test_ocr_slips_in_protocol_number_and_version_resolve_to_the_packets() -> None:
    text = "Favourable Ethical Opinion\nProtocol number\nCEX-301\nProtocol version\n41\n"
    scan = _parse(text, ocr=True)
    scanned = extract(scan, T.IRB_APPROVAL, order="DMY", protocol_number="CFX-301")
    assert scanned.protocol_number == "CFX-301"
    typed = extract(_parse(text), T.IRB_APPROVAL, order="DMY", protocol_number="CFX-301")
    assert typed.protocol_number == "CEX-301"  # a text layer has no OCR slips: a real mismatch
    other = "Protocol number\nNVX-210\n"
    scanned = extract(_parse(other, ocr=True), T.IRB_APPROVAL, protocol_number="CFX-301")
    assert scanned.protocol_number == "NVX-210"


def test_ocr_version_slip_resolves_only_to_a_unique_known_version() -> None:
    from clinflow.packets.versions import resolve_ocr_version

    assert resolve_ocr_version("41", ["1.0", "1.1", "2.0"]) == "1.1"
    assert resolve_ocr_version("1.1", ["1.0", "1.1"]) == "1.1"
    assert resolve_ocr_version("7.5", ["1.0", "2.0"]) == "7.5"


def test_delegation_log_without_a_header_row_and_with_a_staff_member_header() -> None:
    from clinflow.packets.extraction_models import DelegationLogExtraction

    headerless = (
        "DELEGATION LOG\nProtocol No. CFX-301\n| Investigator Wesley Alvarado\n"
        "Brightwater, Priya pe Laboratory Technician 10, 15 March 22, 2026\n"
        "Task codes: (1) Informed consent, (2) Eligibility assessment\n"
    )
    ex = extract(_parse(headerless), T.DELEGATION_LOG, order="MDY")
    assert isinstance(ex, DelegationLogExtraction)
    assert [s.name for s in ex.staff] == ["Brightwater, Priya"]
    cells = (
        "Delegation of Responsibilities / Staff Signature Log\nStaff member\nStudy role\n"
        "Responsibilities\nFrom\nSignature\nJoaquin Brandstetter\nPrincipal Investigator\n"
        "Overall study oversight\n03/04/2026\n/s/ BRANDSTETTER,\nJoaquin\nIlse Zielinski, DO\n"
        "Sub-Investigator\nEligibility assessment\n03/04/2026\n/s/ Zielinski, Ilse\n"
    )
    ex = extract(_parse(cells), T.DELEGATION_LOG, order="MDY")
    assert [s.name for s in ex.staff] == ["Joaquin Brandstetter", "Ilse Zielinski, DO"]
    assert ex.staff[1].start_date == "2026-03-04"


def test_ocr_split_dates_and_labels() -> None:
    text = (
        "CERTIFICATE OF ACCREDITATION\nCLIA ID Number | 4209798159\n"
        "| Expiration n Date. ee | 22- MAR- 2028\nLaboratory Director | Harriet Oyelaran\n"
    )
    ex = extract(_parse(text, ocr=True), T.LAB_CERTIFICATION, order="MDY")
    assert isinstance(ex, LabCertificationExtraction)
    assert ex.expiry_date == "2028-03-22"
    wrapped = "CLIA ID Number 4802929584\n| Expiration Date 0-N\n30-Nov-2027\nLaboratory Director"
    ex = extract(_parse(wrapped, ocr=True), T.LAB_CERTIFICATION, order="MDY")
    assert ex.expiry_date == "2027-11-30"


def test_site_number_read_by_ocr_tolerates_confusable_digits_only() -> None:
    from clinflow.packets.validate import _same_site

    assert _same_site("944", "0941", ocr=True)  # 1 read as 4 on a noisy scan
    assert not _same_site("944", "0941")  # a text layer says what it says
    assert not _same_site("0942", "0941", ocr=True)  # 2 is not a slip of 1: another site
    assert _same_site("US-0142", "142")
