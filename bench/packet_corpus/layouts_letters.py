"""Letters and certificates a site receives: IRB/EC approvals and favourable opinions, ICF
approvals, laboratory certificates, GCP training records, medical licences and CVs.

Same contract as :mod:`bench.packet_corpus.layouts_forms`: ``(ctx, sign) -> Doc``.
Expiry wording, date forms and headings vary per layout; ``ctx.notes`` carries the dates the
scenario decided (``irb_expiry``, ``license_expiry``, ``lab_expiry``, ``gcp_completed`` ...).
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from bench.packet_corpus.context import PacketContext
from bench.packet_corpus.dates import DateFormat
from bench.packet_corpus.doc import Doc, Fields, Heading, Para, Sig, Space, Table
from bench.packet_corpus.layouts_forms import Layout, Sign
from bench.packet_corpus.people import Person

CHAIRS = [
    Person("Ingrid", "Solberg", "", "PhD"),
    Person("Marcus", "Telford", "", "MD"),
    Person("Beatriz", "Quintal", "", "MD"),
    Person("Howard", "Nkemelu", "", "PharmD"),
]


def _d(ctx: PacketContext, key: str) -> date:
    return date.fromisoformat(ctx.notes[key])


def _chair(rng: random.Random) -> Person:
    return rng.choice(CHAIRS)


def _expiry_phrase(ctx: PacketContext, approved: date, expiry: date, f: DateFormat) -> Para:
    """One of the many ways approval letters state how long an approval lasts."""
    rng = ctx.rng
    forms = [
        f"Expiration Date: {f(expiry)}",
        f"Approval Expiration: {f(expiry)}",
        f"Continuing Review Due: {f(expiry)}",
        f"Valid through: {f(expiry)}",
        f"Approval valid until {f(expiry)}",
        f"Approval Period: {f(approved)} - {f(expiry)}",
    ]
    if ctx.region != "us":
        forms.append(f"Opinion valid until: {f(expiry)}")
    return Para(rng.choice(forms), bold=rng.random() < 0.5)


# --- IRB / ethics committee approvals ------------------------------------------------------
def irb_us_letter(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    approved = _d(ctx, "irb_approved")
    expiry = _d(ctx, "irb_expiry")
    chair = _chair(ctx.rng)
    blocks = [
        Para(fmt(approved)),
        Para(f"{ctx.name(ctx.pi)}\n{ctx.site.department}\n{ctx.site.institution}"),
        Para(
            f'RE: Protocol {ctx.protocol_no("IRB_APPROVAL")}, "{ctx.title()}"'
            f"{f' (IND {ctx.ind_number})' if ctx.ind_number else ''}",
            bold=True,
        ),
        Heading("NOTICE OF IRB APPROVAL", 1),
        Para(
            f"The {ctx.irb_name} reviewed the above research at its convened meeting and "
            "approved it under 45 CFR 46 and 21 CFR 56. This approval covers the protocol "
            f"version {ctx.version}, the investigator brochure and the recruitment "
            f"materials for site {ctx.site_no('IRB_APPROVAL')}."
        ),
        Fields(
            [
                ("Approval Date", fmt(approved)),
                ("Review type", "Full board"),
                ("Risk level", "Greater than minimal risk"),
            ]
        ),
        _expiry_phrase(ctx, approved, expiry, fmt),
        Para(
            "Continuing review must be completed before the date above or all research "
            "activity must stop. Report unanticipated problems within 10 working days."
        ),
        sign("IRB Chair", chair, fmt(approved), title=f"{ctx.name(chair)}, Chair"),
    ]
    return Doc(
        "IRB_APPROVAL",
        "irb-us-letter",
        blocks,
        letterhead=[ctx.irb_name, ctx.irb_address],
        font=ctx.rng.choice(["Times", "Helvetica", "DejaVuSerif"]),
    )


def irb_certificate_of_action(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    approved = _d(ctx, "irb_approved")
    expiry = _d(ctx, "irb_expiry")
    exp_label = ctx.rng.choice(
        ["Expiration Date", "Study Expiration", "Approval Expires", "Next Continuing Review Due"]
    )
    blocks = [
        Heading("CERTIFICATE OF ACTION", 0),
        Para("The board took the following action on the research below.", align="center"),
        Fields(
            [
                ("Investigator", ctx.name(ctx.pi)),
                ("Sponsor protocol", ctx.protocol_no("IRB_APPROVAL")),
                ("Site", f"{ctx.site.institution} (site {ctx.site_no('IRB_APPROVAL')})"),
                ("Board action", "APPROVED"),
                ("Action date", fmt(approved)),
                (exp_label, fmt(expiry)),
            ],
            mode="grid",
        ),
        Para(
            "Items approved: protocol version " + ctx.version + ", investigator brochure, "
            "subject recruitment advertisement."
        ),
        Para(
            "The investigator must obtain board approval for any change and report "
            "promptly all unanticipated problems involving risks to subjects."
        ),
        sign("Authorised signatory", _chair(ctx.rng), fmt(approved)),
    ]
    return Doc(
        "IRB_APPROVAL",
        "irb-coa",
        blocks,
        letterhead=[ctx.irb_name, ctx.irb_address],
        letterhead_align="center",
        font=ctx.rng.choice(["Helvetica", "DejaVuSans"]),
    )


def ec_favourable_opinion(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    approved = _d(ctx, "irb_approved")
    expiry = _d(ctx, "irb_expiry")
    chair = _chair(ctx.rng)
    blocks = [
        Para(f"Date: {fmt(approved)}", align="right"),
        Heading(
            ctx.rng.choice(
                [
                    "Ethics Committee Favourable Opinion",
                    "Favourable Ethical Opinion",
                    "Opinion of the Ethics Committee",
                ]
            ),
            1,
        ),
        Fields(
            [
                ("Study title", ctx.title()),
                ("Protocol number", ctx.protocol_no("IRB_APPROVAL")),
                ("Protocol version", ctx.version),
                ("Principal investigator", ctx.name(ctx.pi)),
                ("Site", f"{ctx.site.institution}, site {ctx.site_no('IRB_APPROVAL')}"),
            ],
            mode="grid",
        ),
        Para(
            "The Committee reviewed the application at its meeting and gives a favourable "
            "opinion of the research as described in the application, protocol and "
            "supporting documentation, under the conditions below."
        ),
        _expiry_phrase(ctx, approved, expiry, fmt),
        Para(
            "An annual progress report is due each year on the anniversary of this opinion. "
            "Substantial modifications need the Committee's opinion before they are made."
        ),
        sign("Chair of the Ethics Committee", chair, fmt(approved), title=ctx.name(chair)),
    ]
    if ctx.ind_number:
        blocks.insert(
            3, Para(f"The study is also conducted under US IND {ctx.ind_number}.", small=True)
        )
    return Doc(
        "IRB_APPROVAL",
        "ec-opinion",
        blocks,
        letterhead=[ctx.irb_name, ctx.irb_address],
        font=ctx.rng.choice(["Times", "Helvetica", "DejaVuSansCondensed"]),
    )


# --- ICF approvals -------------------------------------------------------------------------
def _icf_version(ctx: PacketContext) -> tuple[str, date]:
    return ctx.notes.get("icf_version", "4.0"), _d(ctx, "icf_date")


def icf_letter(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    version, dated = _icf_version(ctx)
    approved = _d(ctx, "irb_approved") + timedelta(days=3)
    blocks = [
        Para(fmt(approved)),
        Heading(
            ctx.rng.choice(
                [
                    "Informed Consent Form Approval",
                    "Approval of Informed Consent Documents",
                    "Consent Form Approval Notice",
                ]
            ),
            1,
        ),
        Para(
            f"Protocol: {ctx.protocol_no('ICF_APPROVAL')}    Investigator: "
            f"{ctx.name(ctx.pi)}    Site: {ctx.site_no('ICF_APPROVAL')}"
        ),
        Para(
            f"The {ctx.irb_name} has approved the following consent documents for use at "
            "your site. Use only the stamped versions when consenting participants."
        ),
        Table(
            ["Consent document", "Version", "Version date"],
            [
                [
                    "Main participant information sheet and informed consent form",
                    version,
                    fmt(dated),
                ],
                ["Optional genetic sub-study consent", version, fmt(dated)],
            ],
            widths=[3, 0.8, 1.2],
        ),
        Para("Re-consent participants when a revised consent form is approved."),
        sign("For the Board", _chair(ctx.rng), fmt(approved)),
    ]
    return Doc(
        "ICF_APPROVAL",
        "icf-letter",
        blocks,
        letterhead=[ctx.irb_name, ctx.irb_address],
        font=ctx.rng.choice(["Times", "Helvetica"]),
    )


def icf_stamp_notice(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    version, dated = _icf_version(ctx)
    approved = _d(ctx, "irb_approved") + timedelta(days=1)
    blocks = [
        Heading("CONSENT FORM APPROVAL", 0),
        Fields(
            [
                ("Document", "Informed Consent Form (adult participants)"),
                ("ICF version", f"{version} dated {fmt(dated)}"),
                ("Study", ctx.protocol_no("ICF_APPROVAL")),
                ("Principal investigator", ctx.name(ctx.pi)),
                ("Date consent approved", fmt(approved)),
            ],
            mode="grid",
        ),
        Para(
            "The informed consent document listed above was approved by the review board "
            "and carries the board's approval stamp. Earlier consent versions may no longer "
            "be used for new participants."
        ),
        sign("Board administrator", _chair(ctx.rng), fmt(approved)),
    ]
    return Doc(
        "ICF_APPROVAL",
        "icf-stamp",
        blocks,
        letterhead=[ctx.irb_name],
        letterhead_align="center",
        font=ctx.rng.choice(["DejaVuSans", "Courier"]),
    )


def icf_ec_letter(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    version, dated = _icf_version(ctx)
    approved = _d(ctx, "irb_approved") + timedelta(days=5)
    blocks = [
        Para(f"{ctx.irb_name}, {fmt(approved)}"),
        Heading("Patient Information and Consent: approval", 1),
        Para(f"Study {ctx.protocol_no('ICF_APPROVAL')} - {ctx.title()}"),
        Para(f"Dear {ctx.name(ctx.pi)},"),
        Para(
            f"the committee approves the patient information sheet and consent form, "
            f"version {version} of {fmt(dated)}, in the local language, for your centre "
            f"(site {ctx.site_no('ICF_APPROVAL')})."
        ),
        Para("Please file this letter in the investigator site file."),
        sign("Committee secretary", _chair(ctx.rng), fmt(approved)),
    ]
    return Doc(
        "ICF_APPROVAL",
        "icf-ec",
        blocks,
        letterhead=[ctx.irb_name, ctx.irb_address],
        font=ctx.rng.choice(["Times", "DejaVuSerif"]),
    )


# --- laboratory certificates ---------------------------------------------------------------
def lab_clia(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    assert ctx.lab is not None
    lab = ctx.lab
    expiry = _d(ctx, "lab_expiry")
    effective = expiry - timedelta(days=730)
    blocks = [
        Para("DEPARTMENT OF HEALTH AND HUMAN SERVICES", align="center", small=True),
        Para("CENTERS FOR MEDICARE & MEDICAID SERVICES", align="center", small=True),
        Heading("CLINICAL LABORATORY IMPROVEMENT AMENDMENTS", 1),
        Heading("CERTIFICATE OF ACCREDITATION", 0),
        Fields(
            [
                ("Laboratory name", lab.name),
                ("Address", f"{lab.street}, {lab.city}"),
                ("CLIA ID Number", lab.clia),
                ("Effective Date", fmt(effective)),
                ("Expiration Date", fmt(expiry)),
                ("Laboratory Director", ctx.name(ctx.staff[-1]) if ctx.staff else ""),
            ],
            mode="grid",
        ),
        Para(
            "Pursuant to Section 353 of the Public Health Services Act (42 U.S.C. 263a) as "
            "revised by the Clinical Laboratory Improvement Amendments (CLIA), the above "
            "named laboratory is hereby authorized to accept human specimens for laboratory "
            "examinations or procedures.",
            small=True,
        ),
    ]
    return Doc("LAB_CERTIFICATION", "lab-clia", blocks, font=ctx.rng.choice(["Times", "Helvetica"]))


def lab_cap(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    assert ctx.lab is not None
    expiry = _d(ctx, "lab_expiry")
    blocks = [
        Heading("Certificate of Laboratory Accreditation", 0),
        Para(
            "The accreditation programme certifies that the laboratory named below meets "
            "all applicable standards for accreditation.",
            align="center",
        ),
        Para(ctx.lab.name, bold=True, align="center"),
        Para(f"{ctx.lab.street}, {ctx.lab.city}", align="center"),
        Fields(
            [
                ("Accreditation number", f"{ctx.rng.randint(1000000, 9999999)}"),
                ("CLIA number", ctx.lab.clia),
                (
                    ctx.rng.choice(["Accreditation valid until", "Expires", "Valid until"]),
                    fmt(expiry),
                ),
            ]
        ),
        sign("Chair, Accreditation Committee", _chair(ctx.rng), fmt(expiry - timedelta(days=730))),
    ]
    return Doc(
        "LAB_CERTIFICATION", "lab-cap", blocks, font=ctx.rng.choice(["DejaVuSerif", "Times"])
    )


def lab_iso(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    assert ctx.lab is not None
    expiry = _d(ctx, "lab_expiry")
    blocks = [
        Heading("ACCREDITATION CERTIFICATE", 0),
        Para("Medical laboratory accredited according to ISO 15189:2022", align="center"),
        Fields(
            [
                ("Laboratory", ctx.lab.name),
                ("Location", f"{ctx.lab.street}, {ctx.lab.city}"),
                ("Registration No.", f"ML-{ctx.rng.randint(100, 999)}"),
                ("Scope", "Clinical chemistry, haematology, immunology"),
                ("Date of issue", fmt(expiry - timedelta(days=1460))),
                ("Valid until", fmt(expiry)),
            ],
            mode="grid",
        ),
        sign("Head of the accreditation body", _chair(ctx.rng), fmt(expiry - timedelta(days=1460))),
    ]
    return Doc(
        "LAB_CERTIFICATION", "lab-iso", blocks, font=ctx.rng.choice(["Helvetica", "DejaVuSans"])
    )


# --- GCP training --------------------------------------------------------------------------
def _gcp_person(ctx: PacketContext) -> Person:
    return ctx.people()[int(ctx.notes["gcp_index"])]


def gcp_completion_report(ctx: PacketContext, sign: Sign) -> Doc:
    """An online training provider's completion report."""
    fmt = ctx.date_format()
    person = _gcp_person(ctx)
    done = _d(ctx, "gcp_completed")
    blocks = [
        Heading("COMPLETION REPORT", 0),
        Para(
            ctx.rng.choice(
                [
                    "Collaborative Research Training Programme",
                    "Online Research Ethics Academy",
                    "ClinEd Learning Network",
                ]
            ),
            align="center",
        ),
        Fields(
            [
                ("Name", ctx.name(person)),
                ("Institution Affiliation", ctx.site.institution),
                ("Curriculum Group", "Good Clinical Practice"),
                (
                    "Course Learner Group",
                    ctx.rng.choice(
                        [
                            "GCP for Clinical Trials with Investigational Drugs and Biologics (ICH "
                            "Focus)",
                            "GCP - ICH E6(R3) Basic Course",
                        ]
                    ),
                ),
                ("Stage", "Stage 1 - Basic Course"),
                ("Record ID", str(ctx.rng.randint(10**7, 10**8))),
                ("Completion Date", fmt(done)),
                ("Expiration Date", fmt(done + timedelta(days=3 * 365))),
                ("Minimum Passing", "80"),
                ("Reported Score", str(ctx.rng.randint(82, 100))),
            ],
            mode="grid",
        ),
        Para("Verify at the provider's website using the record ID above.", small=True),
    ]
    return Doc(
        "GCP_CERTIFICATE", "gcp-report", blocks, font=ctx.rng.choice(["Helvetica", "DejaVuSans"])
    )


def gcp_certificate(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    person = _gcp_person(ctx)
    done = _d(ctx, "gcp_completed")
    blocks = [
        Space(20),
        Heading("Certificate of Completion", 0),
        Para("This is to certify that", align="center"),
        Para(ctx.name(person), bold=True, align="center"),
        Para("has successfully completed the course", align="center"),
        Para(
            ctx.rng.choice(
                [
                    "Good Clinical Practice (ICH E6 R2)",
                    "ICH Good Clinical Practice E6(R3)",
                    "GCP Refresher for Investigators and Site Staff",
                ]
            ),
            bold=True,
            align="center",
        ),
        Para(f"on {fmt(done)}", align="center"),
        Para(
            "This training meets the Minimum Criteria for ICH GCP Investigator Site "
            "Personnel Training identified by TransCelerate BioPharma.",
            small=True,
            align="center",
        ),
        sign("Course director", _chair(ctx.rng), fmt(done)),
    ]
    return Doc(
        "GCP_CERTIFICATE",
        "gcp-certificate",
        blocks,
        landscape=ctx.rng.random() < 0.5,
        font=ctx.rng.choice(["Times", "DejaVuSerif"]),
        size=12,
    )


def gcp_training_record(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    person = _gcp_person(ctx)
    done = _d(ctx, "gcp_completed")
    blocks = [
        Heading("Training Record - Good Clinical Practice", 1),
        Fields([("Participant", ctx.name(person)), ("Employer", ctx.site.institution)]),
        Table(
            ["Module", "Date completed", "Result"],
            [
                ["Principles of ICH GCP", fmt(done), "Passed"],
                ["Informed consent process", fmt(done), "Passed"],
                ["Safety reporting", fmt(done), "Passed"],
            ],
            widths=[3, 1.2, 0.8],
        ),
        Para(f"GCP training completed: {fmt(done)}. Refresh every three years."),
    ]
    return Doc(
        "GCP_CERTIFICATE", "gcp-record", blocks, font=ctx.rng.choice(["Courier", "Helvetica"])
    )


# --- medical licences ----------------------------------------------------------------------
def license_board(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    expiry = _d(ctx, "license_expiry")
    issued = _d(ctx, "license_issued")
    board = ctx.rng.choice(
        ["State Board of Medical Examiners", "Medical Board", "Board of Medicine"]
    )
    number = f"{ctx.rng.choice(['MD', 'ME', 'A'])}{ctx.rng.randint(10000, 99999)}"
    blocks = [
        Heading(board.upper(), 1),
        Heading("License to Practice Medicine and Surgery", 0),
        Para("This certifies that", align="center"),
        Para(ctx.name(ctx.pi), bold=True, align="center"),
        Para(
            "having given satisfactory evidence of the qualifications required by law, is "
            "licensed to practice medicine in this state.",
            align="center",
        ),
        Fields(
            [
                ("License Number", number),
                ("Issue Date", fmt(issued)),
                ("Expiration Date", fmt(expiry)),
            ]
        ),
        sign("Executive Director", _chair(ctx.rng), fmt(issued)),
    ]
    return Doc(
        "MEDICAL_LICENSE", "lic-board", blocks, font=ctx.rng.choice(["Times", "DejaVuSerif"])
    )


def license_verification(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    expiry = _d(ctx, "license_expiry")
    issued = _d(ctx, "license_issued")
    status = "EXPIRED" if expiry < date(2026, 4, 20) else "ACTIVE"
    blocks = [
        Para("License Verification - printed from the online lookup service", small=True),
        Heading("License Details", 1),
        Table(
            ["Field", "Value"],
            [
                ["Name", ctx.name(ctx.pi)],
                ["License Type", "Physician and Surgeon"],
                ["License Number", f"{ctx.rng.randint(100000, 999999)}"],
                ["License Status", status],
                ["Original Issue Date", fmt(issued)],
                ["Expiration Date", fmt(expiry)],
                ["Disciplinary Actions", "None"],
            ],
            widths=[1.2, 2.5],
        ),
        Para(
            f"Retrieved {fmt(date(2026, 4, ctx.rng.randint(1, 20)))}. Primary source verification.",
            small=True,
        ),
    ]
    return Doc(
        "MEDICAL_LICENSE", "lic-verify", blocks, font=ctx.rng.choice(["Helvetica", "DejaVuSans"])
    )


def license_registration(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    expiry = _d(ctx, "license_expiry")
    blocks = [
        Heading("Certificate of Registration", 0),
        Para("Medical Council - Register of Medical Practitioners", align="center"),
        Fields(
            [
                ("Registered practitioner", ctx.name(ctx.pi)),
                ("Registration number", str(ctx.rng.randint(1000000, 9999999))),
                ("Registration status", "Registered with a licence to practise"),
                (
                    ctx.rng.choice(["Licence valid until", "Registration expires", "Valid to"]),
                    fmt(expiry),
                ),
            ],
            mode="grid",
        ),
        Para("This certificate must be renewed annually."),
    ]
    return Doc(
        "MEDICAL_LICENSE", "lic-registration", blocks, font=ctx.rng.choice(["Times", "Helvetica"])
    )


# --- CVs -----------------------------------------------------------------------------------
def _career(ctx: PacketContext) -> list[tuple[str, str]]:
    y = ctx.rng.randint(1996, 2008)
    return [
        (
            f"{y}",
            "Medical degree, "
            + ctx.rng.choice(
                [
                    "University of Leiden",
                    "State University School of Medicine",
                    "Charles University",
                    "University of Otago",
                ]
            ),
        ),
        (f"{y + 4}", "Residency in internal medicine"),
        (f"{y + 7}", "Fellowship in " + ctx.rng.choice(["cardiology", "neurology"])),
        (f"{y + 9} - present", f"Consultant physician, {ctx.site.institution}"),
    ]


def cv_classic(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    pi = ctx.pi
    blocks = [
        Heading(ctx.rng.choice(["CURRICULUM VITAE", "Curriculum Vitae"]), 0),
        Fields(
            [
                ("Name", ctx.name(pi)),
                ("Position", "Principal Investigator"),
                ("Address", f"{ctx.site.institution}, {ctx.site.street}, {ctx.site.city}"),
                ("Telephone", ctx.site.phone),
            ]
        ),
        Heading("Education and Training", 1),
        Table(
            ["Year", "Qualification / appointment"],
            [list(r) for r in _career(ctx)],
            widths=[1, 4],
            boxed=False,
        ),
        Heading("Clinical Research Experience", 1),
        Para(
            f"Investigator in {ctx.rng.randint(6, 30)} industry-sponsored trials (phase II-"
            "III), including heart failure and movement disorder studies."
        ),
        Heading("Publications", 1),
        Para("Selected peer-reviewed publications available on request."),
        Space(8),
        Para("I certify that this CV is accurate and current.", small=True),
        sign("Signature", pi, fmt(ctx.recent(5, 60))),
    ]
    return Doc(
        "INVESTIGATOR_CV",
        "cv-classic",
        blocks,
        font=ctx.rng.choice(["Times", "Helvetica", "DejaVuSerif"]),
    )


def cv_biosketch(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    pi = ctx.pi
    blocks = [
        Heading("BIOGRAPHICAL SKETCH", 0),
        Fields(
            [
                ("NAME", ctx.name(pi)),
                ("POSITION TITLE", "Professor of Medicine"),
                ("eRA COMMONS USER NAME", f"{pi.family.upper()}{pi.given[0]}"),
            ],
            mode="grid",
        ),
        Heading("EDUCATION/TRAINING", 2),
        Table(
            ["INSTITUTION AND LOCATION", "DEGREE", "Completion Date", "FIELD OF STUDY"],
            [
                [
                    "University School of Medicine",
                    "MD",
                    str(ctx.rng.randint(1995, 2005)),
                    "Medicine",
                ],
                [
                    "Teaching hospital",
                    "Residency",
                    str(ctx.rng.randint(2006, 2009)),
                    "Internal Medicine",
                ],
            ],
            widths=[2, 0.8, 1, 1.4],
        ),
        Heading("A. Personal Statement", 2),
        Para(
            "I have led site activities for multicentre trials for over a decade and "
            "supervise a team of coordinators and nurses."
        ),
        Heading("B. Positions, Scientific Appointments and Honors", 2),
        Para("\n".join(f"{a}  {b}" for a, b in _career(ctx))),
        sign("Signature", pi, fmt(ctx.recent(5, 60))),
    ]
    return Doc(
        "INVESTIGATOR_CV",
        "cv-biosketch",
        blocks,
        font=ctx.rng.choice(["Helvetica", "DejaVuSans"]),
        size=9.5,
    )


def cv_resume(ctx: PacketContext, sign: Sign) -> Doc:
    """A name header only, then sections (no 'CV' title at all)."""
    fmt = ctx.date_format()
    pi = ctx.pi
    blocks = [
        Para(ctx.name(pi), bold=True, align="center"),
        Para(
            f"{ctx.site.department} | {ctx.site.institution} | {ctx.site.phone}",
            align="center",
            small=True,
        ),
        Heading("Professional Experience", 1),
        Para("\n".join(f"{b} ({a})" for a, b in reversed(_career(ctx)))),
        Heading("Board Certification and Licensure", 1),
        Para("Board certified in internal medicine; licensed physician."),
        Heading("Research", 1),
        Para(
            "Principal or sub-investigator in phase II and III interventional trials; GCP trained."
        ),
        sign(ctx.rng.choice(["Signed", "Signature"]), pi, fmt(ctx.recent(5, 60))),
    ]
    return Doc(
        "INVESTIGATOR_CV",
        "cv-resume",
        blocks,
        font=ctx.rng.choice(["DejaVuSansCondensed", "Times", "Courier"]),
    )


LETTER_LAYOUTS: dict[str, list[Layout]] = {
    "IRB_APPROVAL": [irb_us_letter, irb_certificate_of_action, ec_favourable_opinion],
    "ICF_APPROVAL": [icf_letter, icf_stamp_notice, icf_ec_letter],
    "LAB_CERTIFICATION": [lab_clia, lab_cap, lab_iso],
    "GCP_CERTIFICATE": [gcp_completion_report, gcp_certificate, gcp_training_record],
    "MEDICAL_LICENSE": [license_board, license_verification, license_registration],
    "INVESTIGATOR_CV": [cv_classic, cv_biosketch, cv_resume],
}
# Layouts that only make sense in one kind of region.
US_ONLY = {"irb-us-letter", "irb-coa", "lab-clia", "lic-board", "lic-verify", "cv-biosketch"}
NON_US = {"ec-opinion", "icf-ec", "lab-iso", "lic-registration"}

__all__ = ["LETTER_LAYOUTS", "NON_US", "US_ONLY", "Sig"]
