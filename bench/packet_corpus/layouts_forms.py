"""Forms a site fills in and signs: Form FDA 1572, delegation log, financial disclosure,
protocol signature page and clinical trial agreement (several layouts each).

Each layout is ``(ctx, sign) -> Doc`` where ``sign(label, person, when, title="")`` returns the
signature block the scenario decided for this document (style, signed or not).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from bench.packet_corpus.context import PacketContext
from bench.packet_corpus.doc import Doc, Fields, Heading, PageBreak, Para, Sig, Space, Table
from bench.packet_corpus.people import TASKS, Person

Sign = Callable[..., Sig]
Layout = Callable[[PacketContext, Sign], Doc]


# --- Form FDA 1572 -------------------------------------------------------------------------
def _edition(ctx: PacketContext) -> str:
    if ctx.defect == "old_1572_edition":
        return ctx.rng.choice(["(1/21)", "(10/19)"])
    return ctx.rng.choice(["(3/24)", "(03/24)", "(7/22)"])


def _lab_lines(ctx: PacketContext) -> list[str]:
    if ctx.lab is None or ctx.notes.get("lists_lab") != "yes":
        return ["None"]
    lab = ctx.lab
    lines = [lab.name, lab.street, lab.city]
    # Section 4 lists how to reach the laboratory: phone and fax; the defect drops the fax or
    # both (the rule: a listed laboratory without phone or without fax is a warning)
    if ctx.defect != "lab_contact_missing":
        lines.append(
            ctx.rng.choice(
                [
                    f"Tel: {lab.phone}  Fax: {lab.fax}",
                    f"Phone {lab.phone}; Fax {lab.fax}",
                    f"Telephone: {lab.phone}, Facsimile: {lab.fax}",
                ]
            )
        )
    elif ctx.rng.random() < 0.5:
        lines.append(f"Phone {lab.phone}")
    return lines


def _subis(ctx: PacketContext) -> list[str]:
    subs = [p for p in ctx.staff if p.role in ("Sub-Investigator", "Research Nurse")]
    return [ctx.name(p) for p in subs] or ["None"]


def _1572_header(ctx: PacketContext) -> list[str]:
    exp = ctx.rng.choice(["04/30/2027", "June 30, 2025", "3/31/2028"])
    return [
        "Form Approved: OMB No. 0910-0014",
        f"Expiration Date: {exp}",
        "See PRA Statement on last page.",
    ]


def fda1572_official(ctx: PacketContext, sign: Sign) -> Doc:
    """The two-page government form with numbered boxes."""
    fmt = ctx.date_format()
    pi, site = ctx.pi, ctx.site
    signed_on = ctx.recent(10, 40)
    edition = _edition(ctx)
    blocks = [
        Para("DEPARTMENT OF HEALTH AND HUMAN SERVICES", bold=True, align="center"),
        Para("FOOD AND DRUG ADMINISTRATION", align="center"),
        Heading("STATEMENT OF INVESTIGATOR", 0),
        Para("(TITLE 21, CODE OF FEDERAL REGULATIONS (CFR) PART 312)", small=True, align="center"),
        Para("(See instructions on reverse side.)", small=True, align="center"),
        Para(
            "NOTE: No investigator may participate in an investigation until he/she provides "
            "the sponsor with a completed, signed Statement of Investigator, Form FDA 1572 "
            "(21 CFR 312.53(c)).",
            small=True,
        ),
        Fields(
            [
                ("1. NAME AND ADDRESS OF INVESTIGATOR", ""),
                ("Name of Principal Investigator", ctx.name(pi)),
                ("Address 1", f"{site.institution}, {site.department}"),
                ("Address 2", site.street),
                ("City / State / ZIP", site.city + " " + site.postcode),
                ("Site Number", ctx.site_no("FDA_1572")),
            ],
            mode="grid",
        ),
        Para(
            "2. EDUCATION, TRAINING, AND EXPERIENCE THAT QUALIFY THE INVESTIGATOR AS AN "
            "EXPERT IN THE CLINICAL INVESTIGATION OF THE DRUG FOR THE USE UNDER "
            "INVESTIGATION. ONE OF THE FOLLOWING IS PROVIDED (Select one of the following.)",
            bold=True,
        ),
        Para("[X] Curriculum Vitae      [ ] Other Statement of Qualifications"),
        Para(
            "3. NAME AND ADDRESS OF ANY MEDICAL SCHOOL, HOSPITAL, OR OTHER RESEARCH FACILITY "
            "WHERE THE CLINICAL INVESTIGATION(S) WILL BE CONDUCTED",
            bold=True,
        ),
        Para(f"{site.institution}\n{site.street}\n{site.city} {site.postcode}"),
        Para(
            "4. NAME AND ADDRESS OF ANY CLINICAL LABORATORY FACILITIES TO BE USED IN THE STUDY",
            bold=True,
        ),
        Para("\n".join(_lab_lines(ctx))),
        Para(
            "5. NAME AND ADDRESS OF THE INSTITUTIONAL REVIEW BOARD (IRB) THAT IS RESPONSIBLE "
            "FOR REVIEW AND APPROVAL OF THE STUDY(IES)",
            bold=True,
        ),
        Para(f"{ctx.irb_name}\n{ctx.irb_address}"),
        PageBreak(),
        Para(
            "6. NAMES OF SUBINVESTIGATORS (e.g., research fellows, residents, associates) WHO "
            "WILL BE ASSISTING THE INVESTIGATOR IN THE CONDUCT OF THE INVESTIGATION(S)",
            bold=True,
        ),
        Para("\n".join(_subis(ctx))),
        Para(
            "7. NAME AND CODE NUMBER, IF ANY, OF THE PROTOCOL(S) IN THE IND IDENTIFIED FOR "
            "THE STUDY(IES) TO BE CONDUCTED BY THE INVESTIGATOR",
            bold=True,
        ),
        Para(
            f"Protocol {ctx.protocol_no('FDA_1572')}: {ctx.title()}"
            + (f"\nIND Number: {ctx.ind_number}" if ctx.ind_number else "")
        ),
        Para(
            "8. ATTACH THE FOLLOWING CLINICAL PROTOCOL INFORMATION: [X] FOR PHASE 2 OR 3 "
            "INVESTIGATIONS, AN OUTLINE OF THE STUDY PROTOCOL",
            bold=True,
        ),
        Para("9. COMMITMENTS", bold=True),
        Para(
            "I agree to conduct the study(ies) in accordance with the relevant, current "
            "protocol(s) and will only make changes in a protocol after notifying the sponsor, "
            "except when necessary to protect the safety, rights, or welfare of subjects. "
            "I agree to personally conduct or supervise the described investigation(s). "
            "I agree to maintain adequate and accurate records and to make those records "
            "available for inspection.",
            small=True,
        ),
        Space(6),
        Para("10. DATE (mm/dd/yyyy)    11. SIGNATURE OF INVESTIGATOR", bold=True, small=True),
        sign("Signature of Investigator", pi, fmt(signed_on), title=ctx.name(pi)),
        Para(
            "(WARNING: A willfully false statement is a criminal offense. U.S.C. Title 18, "
            "Sec. 1001.)",
            small=True,
        ),
    ]
    return Doc(
        "FDA_1572",
        "fda1572-official",
        blocks,
        header_right=_1572_header(ctx),
        footer=f"FORM FDA 1572 {edition}",
        font=ctx.rng.choice(["Helvetica", "Times"]),
        size=9.5,
    )


def fda1572_sponsor(ctx: PacketContext, sign: Sign) -> Doc:
    """A sponsor's retyped 1572 (same content, table layout, edition on the first line)."""
    fmt = ctx.date_format()
    pi, site = ctx.pi, ctx.site
    signed_on = ctx.recent(10, 40)
    edition = _edition(ctx)
    blocks = [
        Para(f"Form FDA 1572 {edition} - Statement of Investigator", bold=True),
        Para(
            f"Study: {ctx.protocol_no('FDA_1572')}    Site: {ctx.site_no('FDA_1572')}", small=True
        ),
        Table(
            ["Section", "Entry"],
            [
                [
                    "1. Investigator name and address",
                    f"{ctx.name(pi)}, {site.institution}, {site.street}, "
                    f"{site.city} {site.postcode}",
                ],
                ["2. Qualifications", "Curriculum vitae attached"],
                ["3. Research facility", f"{site.institution}, {site.department}"],
                ["4. Clinical laboratory facilities", "; ".join(_lab_lines(ctx))],
                ["5. Institutional Review Board", f"{ctx.irb_name}, {ctx.irb_address}"],
            ],
            widths=[1.0, 2.2],
        ),
        PageBreak(),
        Table(
            ["Section", "Entry"],
            [
                ["6. Sub-investigators", "; ".join(_subis(ctx))],
                [
                    "7. Protocol",
                    f"{ctx.protocol_no('FDA_1572')} - {ctx.title()}"
                    + (f" (IND {ctx.ind_number})" if ctx.ind_number else ""),
                ],
                ["8. Protocol information", "Outline of the study protocol attached"],
            ],
            widths=[1.0, 2.2],
        ),
        Heading("9. Commitments", 2),
        Para(
            "By signing I commit to conduct the investigation according to the protocol, to "
            "supervise it personally, to obtain informed consent, to report adverse events "
            "and to keep complete records, as set out in 21 CFR Part 312."
        ),
        Space(10),
        sign("Investigator signature", pi, fmt(signed_on)),
    ]
    return Doc(
        "FDA_1572",
        "fda1572-sponsor",
        blocks,
        header_right=_1572_header(ctx)[:2],
        footer=f"FORM FDA 1572 {edition}",
        font=ctx.rng.choice(["Helvetica", "Courier"]),
    )


def fda1572_compact(ctx: PacketContext, sign: Sign) -> Doc:
    """A condensed two-page rendition with inline label: value fields."""
    fmt = ctx.date_format()
    pi, site = ctx.pi, ctx.site
    signed_on = ctx.recent(10, 40)
    edition = _edition(ctx)
    blocks = [
        Heading("STATEMENT OF INVESTIGATOR (FORM FDA 1572)", 0),
        Para("21 CFR 312.53", align="center", small=True),
        Fields(
            [
                ("Investigator", ctx.name(pi)),
                ("Institution", site.institution),
                ("Address", f"{site.street}, {site.city} {site.postcode}"),
                ("Site No.", ctx.site_no("FDA_1572")),
            ]
        ),
        Heading("Section 3 - Facilities where the study will be conducted", 2),
        Para(f"{site.institution}, {site.department}"),
        Heading("Section 4 - Clinical laboratories", 2),
        Para("\n".join(_lab_lines(ctx))),
        Heading("Section 5 - Reviewing IRB", 2),
        Para(f"{ctx.irb_name}, {ctx.irb_address}"),
        PageBreak(),
        Heading("Section 6 - Sub-investigators", 2),
        Para(", ".join(_subis(ctx))),
        Heading("Section 7 - Protocol", 2),
        Para(
            f"{ctx.protocol_no('FDA_1572')} ({ctx.title()})"
            + (f"; IND No. {ctx.ind_number}" if ctx.ind_number else "")
        ),
        Heading("Section 9 - Commitments", 2),
        Para(
            "I agree to conduct this study in accordance with the current protocol and "
            "applicable regulations, and to ensure that all associates assisting me are "
            "informed of their obligations."
        ),
        sign("Signature", pi, fmt(signed_on)),
    ]
    return Doc(
        "FDA_1572",
        "fda1572-compact",
        blocks,
        header_right=_1572_header(ctx)[:2],
        footer=f"FORM FDA 1572 {edition}   PSC Publishing Services",
        font=ctx.rng.choice(["Times", "DejaVuSans"]),
    )


# --- delegation log ------------------------------------------------------------------------
def _delegates(ctx: PacketContext) -> list[Person]:
    people = ctx.people()
    if ctx.defect == "pi_mismatch" and ctx.defect_doc == "DELEGATION_LOG":
        assert ctx.other_person is not None
        people = [ctx.other_person, *ctx.staff]
    return people


def _task_codes(person: Person) -> str:
    return ", ".join(person.tasks)


def delegation_grid(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    start = ctx.recent(5, 30)
    people = _delegates(ctx)
    rows: list[list[str | Sig]] = []
    for person in people:
        cell = sign("", person, fmt(start))
        rows.append(
            [
                ctx.name(person),
                person.role,
                _task_codes(person),
                person.initials,
                cell,
                fmt(start),
                "",
            ]
        )
    legend = "; ".join(f"{k} = {v}" for k, v in TASKS.items())
    pi = people[0]
    blocks = [
        Heading("Site Delegation of Authority Log", 0),
        Fields(
            [
                ("Protocol", ctx.protocol_no("DELEGATION_LOG")),
                ("Site Number", ctx.site_no("DELEGATION_LOG")),
                ("Principal Investigator", ctx.name(pi)),
                ("Institution", ctx.site.institution),
            ]
        ),
        Space(6),
        Table(
            ["Name", "Role", "Delegated tasks", "Initials", "Signature", "Start date", "End date"],
            rows,
            widths=[1.6, 1.2, 1.0, 0.6, 1.3, 0.9, 0.8],
        ),
        Para(f"Task codes: {legend}", small=True),
        Space(8),
        Para(
            "Principal Investigator statement: I confirm that the individuals above are "
            "qualified by education, training and experience to perform the tasks delegated "
            "to them.",
            small=True,
        ),
        sign("Principal Investigator Signature", pi, fmt(start + timedelta(days=1))),
    ]
    return Doc(
        "DELEGATION_LOG",
        "doa-grid",
        blocks,
        landscape=True,
        font=ctx.rng.choice(["Helvetica", "DejaVuSansCondensed"]),
        size=9,
    )


def delegation_plain(ctx: PacketContext, sign: Sign) -> Doc:
    """A borderless staff responsibility list (headers underlined only)."""
    fmt = ctx.date_format()
    start = ctx.recent(5, 30)
    people = _delegates(ctx)
    rows: list[list[str | Sig]] = [
        [
            ctx.name(p),
            p.role,
            "; ".join(TASKS[t] for t in p.tasks),
            fmt(start),
            sign("", p, fmt(start)),
        ]
        for p in people
    ]
    blocks = [
        Para(ctx.site.institution, bold=True),
        Heading("Delegation of Responsibilities / Staff Signature Log", 1),
        Para(
            f"Study {ctx.protocol_no('DELEGATION_LOG')}  |  Site {ctx.site_no('DELEGATION_LOG')}"
            f"  |  PI: {ctx.name(people[0])}"
        ),
        Table(
            ["Staff member", "Study role", "Responsibilities", "From", "Signature"],
            rows,
            widths=[1.5, 1.1, 2.4, 0.9, 1.2],
            boxed=False,
        ),
        Space(10),
        sign(
            "PI signature",
            people[0],
            fmt(start + timedelta(days=2)),
            title="Principal Investigator",
        ),
    ]
    return Doc(
        "DELEGATION_LOG",
        "doa-plain",
        blocks,
        landscape=True,
        font=ctx.rng.choice(["Times", "DejaVuSerif"]),
        size=9,
    )


def delegation_sponsor(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    start = ctx.recent(5, 30)
    people = _delegates(ctx)
    rows: list[list[str | Sig]] = [
        [
            str(i + 1),
            ctx.name(p),
            p.initials,
            p.role,
            _task_codes(p),
            fmt(start),
            sign("", p, fmt(start)),
        ]
        for i, p in enumerate(people)
    ]
    blocks = [
        Heading("DELEGATION LOG", 0),
        Para(f"{ctx.sponsor} - Protocol No. {ctx.protocol_no('DELEGATION_LOG')}", align="center"),
        Fields(
            [
                ("Investigator", ctx.name(people[0])),
                ("Centre", f"{ctx.site.institution} (site {ctx.site_no('DELEGATION_LOG')})"),
            ],
            mode="grid",
        ),
        Table(
            [
                "#",
                "Printed name",
                "Initials",
                "Function",
                "Task codes",
                "Date started",
                "Signature",
            ],
            rows,
            widths=[0.3, 1.6, 0.6, 1.2, 1.0, 1.0, 1.3],
        ),
        Para(
            "Task codes: " + ", ".join(f"({k}) {v}" for k, v in list(TASKS.items())[:16]),
            small=True,
        ),
        sign("Investigator's signature", people[0], fmt(start + timedelta(days=1))),
    ]
    return Doc(
        "DELEGATION_LOG",
        "doa-sponsor",
        blocks,
        landscape=True,
        size=9,
        font=ctx.rng.choice(["Helvetica", "Courier"]),
    )


# --- financial disclosure ------------------------------------------------------------------
def financial_3455(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    blocks = [
        Heading("Clinical Investigator Financial Disclosure", 0),
        Para("Certification and disclosure under 21 CFR Part 54", align="center", small=True),
        Fields(
            [
                ("Investigator", ctx.name(ctx.pi)),
                ("Protocol", ctx.protocol_no("FINANCIAL_DISCLOSURE")),
                ("Sponsor", ctx.sponsor),
                ("Site", ctx.site_no("FINANCIAL_DISCLOSURE")),
            ],
            mode="grid",
        ),
        Para("Please answer each question for yourself, your spouse and dependent children."),
        Table(
            ["Question", "Yes", "No"],
            [
                ["Any compensation whose value could be affected by the study outcome?", "", "X"],
                [
                    "A proprietary interest in the tested product (patent, trademark, licence)?",
                    "",
                    "X",
                ],
                [
                    "An equity interest in the sponsor whose value cannot be readily determined?",
                    "",
                    "X",
                ],
                ["Significant payments of other sorts above USD 25,000?", "", "X"],
            ],
            widths=[4.0, 0.4, 0.4],
        ),
        Para(
            "I agree to update this information during the study and for one year after it "
            "ends if my financial interests change."
        ),
        sign("Signature of Investigator", ctx.pi, fmt(ctx.recent(10, 50))),
    ]
    return Doc(
        "FINANCIAL_DISCLOSURE", "fin-3455", blocks, font=ctx.rng.choice(["Helvetica", "Times"])
    )


def financial_letter(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    when = ctx.recent(10, 50)
    blocks = [
        Para(fmt(when), align="right"),
        Heading("Financial Interest Disclosure Statement", 1),
        Para(f"Re: Study {ctx.protocol_no('FINANCIAL_DISCLOSURE')} sponsored by {ctx.sponsor}"),
        Para(
            f"I, {ctx.name(ctx.pi)}, certify that neither I nor my spouse or dependent "
            "children hold any financial arrangement with the sponsor or proprietary "
            "interest in the investigational product that must be disclosed under 21 CFR "
            "54.4, and that I have received no significant payments of other sorts."
        ),
        Para(
            "I will notify the sponsor promptly of any change during the study and for one "
            "year following its completion."
        ),
        sign("Investigator", ctx.pi, fmt(when)),
    ]
    return Doc(
        "FINANCIAL_DISCLOSURE",
        "fin-letter",
        blocks,
        letterhead=[ctx.site.institution, ctx.site.department],
        font=ctx.rng.choice(["Times", "DejaVuSerif"]),
    )


def financial_checkbox(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    blocks = [
        Heading("FINANCIAL DISCLOSURE FORM", 0),
        Para(f"{ctx.sponsor}  -  {ctx.protocol_no('FINANCIAL_DISCLOSURE')}", align="center"),
        Fields(
            [
                ("Name", ctx.name(ctx.pi)),
                ("Role", "Principal Investigator"),
                ("Institution", ctx.site.institution),
            ]
        ),
        Para("[X] I have no financial interests or arrangements to disclose."),
        Para("[ ] I have the following interests to disclose (attach details)."),
        Para("This disclosure covers the period of the study and one year after completion."),
        sign("Signature", ctx.pi, fmt(ctx.recent(10, 50))),
    ]
    return Doc(
        "FINANCIAL_DISCLOSURE",
        "fin-checkbox",
        blocks,
        font=ctx.rng.choice(["Courier", "DejaVuSans"]),
    )


# --- protocol signature page ---------------------------------------------------------------
def _psp_version(ctx: PacketContext, fmt: Callable[[date], str]) -> str:
    version = ctx.version
    if ctx.defect == "wrong_psp_version":
        version = ctx.notes["old_version"]
    dated = fmt(ctx.version_date)
    forms = [
        f"Version {version}",
        f"v{version}",
        f"Ver. {version} ({dated})",
        f"Version {version}, dated {dated}",
    ]
    if version.endswith(".0") and int(float(version)) > 1:
        forms.append(f"Amendment {int(float(version)) - 1} (Version {version})")
    if ctx.defect == "sig_predates":
        forms = [f for f in forms if dated in f]  # the page must show the date it predates
    return ctx.rng.choice(forms)


def _psp_signed(ctx: PacketContext) -> date:
    return date.fromisoformat(ctx.notes["psp_signed"])


def psp_agreement(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    blocks = [
        Heading("INVESTIGATOR'S AGREEMENT", 0),
        Fields(
            [
                ("Protocol Number", ctx.protocol_no("PROTOCOL_SIGNATURE_PAGE")),
                ("Protocol Title", ctx.title()),
                ("Protocol Version", _psp_version(ctx, fmt)),
                ("Protocol Date", fmt(ctx.version_date)),
            ],
            mode="grid",
        ),
        Para(
            "I have read this protocol and agree that it contains all necessary details for "
            "carrying out this study. I will conduct the study as outlined herein and will "
            "complete the study within the time designated."
        ),
        Para(
            "I will provide copies of the protocol and all drug information to all staff "
            "members involved in the conduct of this study."
        ),
        Fields(
            [
                ("Site number", ctx.site_no("PROTOCOL_SIGNATURE_PAGE")),
                ("Investigator name (print)", ctx.name(ctx.pi)),
            ]
        ),
        sign("Investigator Signature", ctx.pi, fmt(_psp_signed(ctx))),
    ]
    if ctx.ind_number:
        blocks.insert(2, Para(f"IND Number: {ctx.ind_number}", small=True))
    return Doc(
        "PROTOCOL_SIGNATURE_PAGE",
        "psp-agreement",
        blocks,
        font=ctx.rng.choice(["Times", "Helvetica", "DejaVuSerif"]),
    )


def psp_approval_page(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    blocks = [
        Para(ctx.sponsor, bold=True, align="center"),
        Heading("PROTOCOL SIGNATURE PAGE", 0),
        Para(f"{ctx.protocol_no('PROTOCOL_SIGNATURE_PAGE')}: {ctx.title()}", align="center"),
        Para(_psp_version(ctx, fmt), align="center"),
        Para("Investigator's statement", bold=True),
        Para(
            "By my signature I confirm that I have read and understood this protocol, that I "
            "will conduct the trial in compliance with it, with ICH E6 Good Clinical "
            "Practice and with the applicable regulatory requirements, and that I will not "
            "implement any deviation without agreement of the sponsor and prior review by "
            "the ethics committee, except to eliminate an immediate hazard."
        ),
        Para(f"Site: {ctx.site.institution} (No. {ctx.site_no('PROTOCOL_SIGNATURE_PAGE')})"),
        sign("Principal Investigator", ctx.pi, fmt(_psp_signed(ctx)), title=ctx.name(ctx.pi)),
    ]
    if ctx.ind_number:
        blocks.insert(4, Para(f"IND {ctx.ind_number}", small=True, align="center"))
    return Doc(
        "PROTOCOL_SIGNATURE_PAGE",
        "psp-approval",
        blocks,
        font=ctx.rng.choice(["Helvetica", "DejaVuSans"]),
    )


def psp_acknowledgement(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    blocks = [
        Heading("Acknowledgement of Protocol", 1),
        Para(
            f"Study code: {ctx.protocol_no('PROTOCOL_SIGNATURE_PAGE')}    {_psp_version(ctx, fmt)}"
        ),
        Para(ctx.title(), small=True),
        Para(
            "I, the undersigned investigator, acknowledge receipt of the protocol named "
            "above and agree to conduct the study according to it and to the principles of "
            "the Declaration of Helsinki."
            + (f" The study is conducted under US IND #{ctx.ind_number}." if ctx.ind_number else "")
        ),
        Table(
            ["Investigator", "Site"],
            [[ctx.name(ctx.pi), ctx.site_no("PROTOCOL_SIGNATURE_PAGE")]],
            widths=[2, 1],
        ),
        Space(10),
        sign("Signature", ctx.pi, fmt(_psp_signed(ctx))),
    ]
    return Doc(
        "PROTOCOL_SIGNATURE_PAGE", "psp-ack", blocks, font=ctx.rng.choice(["Courier", "Times"])
    )


# --- clinical trial agreement / budget -----------------------------------------------------
def cta_contract(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    when = ctx.recent(15, 60)
    fee = ctx.rng.randint(3, 9) * 1000
    blocks = [
        Heading("CLINICAL TRIAL AGREEMENT", 0),
        Para(
            f'This Clinical Trial Agreement is made between {ctx.sponsor} (the "Sponsor") '
            f'and {ctx.site.institution} (the "Institution") for the study '
            f"{ctx.protocol_no('CTA_BUDGET')} at site {ctx.site_no('CTA_BUDGET')}, with "
            f"{ctx.name(ctx.pi)} as Principal Investigator."
        ),
        Heading("1. Scope", 2),
        Para(
            "The Institution will conduct the study in accordance with the protocol, this "
            "Agreement and applicable law."
        ),
        Heading("2. Payment", 2),
        Para("The Sponsor will pay the Institution according to the budget in Exhibit A."),
        Table(
            ["Item", "Amount (EUR)" if ctx.region != "us" else "Amount (USD)"],
            [
                ["Start-up fee", f"{fee:,}"],
                ["Per completed participant", f"{fee * 2:,}"],
                ["Screen failure", f"{fee // 4:,}"],
                ["Close-out", f"{fee // 2:,}"],
            ],
            widths=[3, 1],
        ),
        Heading("3. Confidentiality", 2),
        Para(
            "Each party keeps the other's confidential information confidential for five "
            "years after the end of the study."
        ),
        Space(8),
        Para("IN WITNESS WHEREOF the parties have executed this Agreement.", bold=True),
        sign(
            "For the Institution",
            Person("Margaret", "Oduya", "", "", "Contracts Officer"),
            fmt(when),
            title="Director, Research Contracts",
        ),
        sign(
            "Read and understood by the Principal Investigator",
            ctx.pi,
            fmt(when + timedelta(days=2)),
        ),
    ]
    return Doc(
        "CTA_BUDGET",
        "cta-contract",
        blocks,
        font=ctx.rng.choice(["Times", "DejaVuSerif", "Helvetica"]),
    )


def cta_budget_sheet(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    when = ctx.recent(15, 60)
    visits = ["Screening", "Baseline", "Week 4", "Week 12", "Week 24", "End of study"]
    rows: list[list[str | Sig]] = [[v, f"{ctx.rng.randint(3, 19) * 50}"] for v in visits]
    blocks = [
        Heading("Study Budget and Payment Schedule", 0),
        Para(
            f"Exhibit B to the Clinical Study Agreement - {ctx.protocol_no('CTA_BUDGET')}",
            align="center",
        ),
        Fields(
            [
                ("Institution", ctx.site.institution),
                ("Site", ctx.site_no("CTA_BUDGET")),
                ("Investigator", ctx.name(ctx.pi)),
            ]
        ),
        Table(["Visit", "Fee per participant"], rows, widths=[2, 1]),
        Para("Invoices are payable within 45 days. Overhead of 25% is included."),
        sign("Approved by the Principal Investigator", ctx.pi, fmt(when)),
    ]
    return Doc("CTA_BUDGET", "cta-budget", blocks, font=ctx.rng.choice(["Helvetica", "Courier"]))


def cta_site_agreement(ctx: PacketContext, sign: Sign) -> Doc:
    fmt = ctx.date_format()
    when = ctx.recent(15, 60)
    blocks = [
        Para(ctx.sponsor.upper(), bold=True),
        Heading("Site Agreement for the Conduct of a Clinical Study", 1),
        Fields(
            [
                ("Study", f"{ctx.protocol_no('CTA_BUDGET')} - {ctx.title()}"),
                (
                    "Investigational site",
                    f"{ctx.site.institution}, site no. {ctx.site_no('CTA_BUDGET')}",
                ),
                ("Investigator", ctx.name(ctx.pi)),
            ],
            mode="grid",
        ),
        Para(
            "The parties agree on the obligations, indemnity, data protection, publication "
            "and payment terms set out in the annexes. The budget in Annex 2 forms part of "
            "this agreement."
        ),
        Para("Governing law: the law of the country where the site is located."),
        sign("Investigator", ctx.pi, fmt(when)),
    ]
    return Doc("CTA_BUDGET", "cta-site", blocks, font=ctx.rng.choice(["DejaVuSans", "Times"]))


FORM_LAYOUTS: dict[str, list[Layout]] = {
    "FDA_1572": [fda1572_official, fda1572_sponsor, fda1572_compact],
    "DELEGATION_LOG": [delegation_grid, delegation_plain, delegation_sponsor],
    "FINANCIAL_DISCLOSURE": [financial_3455, financial_letter, financial_checkbox],
    "PROTOCOL_SIGNATURE_PAGE": [psp_agreement, psp_approval_page, psp_acknowledgement],
    "CTA_BUDGET": [cta_contract, cta_budget_sheet, cta_site_agreement],
}
