"""Packets with one known defect each (or none), their files and their ground truth.

``generate(seed, packets, out)`` writes ``out/packet-<seed>-<nn>/`` folders (a
``manifest.yaml`` plus documents) and ``out/truth.json``. The expected outcome and reason
codes of a scenario follow the published rule table's meaning, not the pipeline's behaviour.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from bench.packet_corpus.context import SPONSORS, Lab, PacketContext
from bench.packet_corpus.doc import UNSIGNED_STYLES, Doc, Sig
from bench.packet_corpus.layouts_forms import FORM_LAYOUTS
from bench.packet_corpus.layouts_letters import LETTER_LAYOUTS, NON_US, US_ONLY
from bench.packet_corpus.people import (
    Person,
    new_person,
    new_site,
    phone_number,
    staff_member,
)
from bench.packet_corpus.render_docx import render_docx
from bench.packet_corpus.render_pdf import render_pdf
from bench.packet_corpus.render_scan import scan_pdf

AS_OF = date(2026, 5, 1)
CORPUS_PDF = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "pdf"
LAYOUTS = {**FORM_LAYOUTS, **LETTER_LAYOUTS}
SIGNATURE_REQUIRED = {
    "FDA_1572",
    "INVESTIGATOR_CV",
    "DELEGATION_LOG",
    "FINANCIAL_DISCLOSURE",
    "CTA_BUDGET",
    "PROTOCOL_SIGNATURE_PAGE",
}
COUNTRIES = {
    "us": ["US"],
    "eu": ["DE", "PL", "DK", "FR", "ES", "IT", "NL", "BE", "IE"],
    "uk": ["GB"],
    "apac": ["AU", "SG", "JP", "TW", "KR"],
    "latam": ["BR", "MX"],
}
PROTOCOLS = {  # protocol -> region -> (version, effective date, an older version)
    "CFX-301": {r: ("3.0", date(2026, 2, 1), "2.0") for r in ("us", "eu", "uk", "apac")},
    "NVX-210": {
        "us": ("2.0", date(2026, 3, 1), "1.1"),
        **{r: ("1.1", date(2026, 1, 10), "1.0") for r in ("eu", "uk", "apac")},
    },
}
# scenario -> (expected outcome, expected reason codes)
EXPECTED: dict[str, tuple[str, list[str]]] = {
    "clean": ("VALIDATED", []),
    "irb_expired": ("BLOCKED", ["IRB_APPROVAL_EXPIRED"]),
    "license_expired": ("BLOCKED", ["LICENSE_EXPIRED"]),
    "lab_expired": ("BLOCKED", ["LAB_CERTIFICATION_EXPIRED"]),
    "unsigned": ("BLOCKED", ["SIGNATURE_MISSING"]),
    "protocol_mismatch": ("BLOCKED", ["PROTOCOL_NUMBER_MISMATCH"]),
    "site_mismatch": ("BLOCKED", ["SITE_NUMBER_MISMATCH"]),
    "pi_mismatch": ("BLOCKED", ["INVESTIGATOR_NAME_MISMATCH"]),
    "delegate_no_gcp": ("BLOCKED", ["DELEGATE_WITHOUT_GCP"]),
    "sig_predates": ("BLOCKED", ["SIGNATURE_PREDATES_DOCUMENT"]),
    "missing_doc": ("INCOMPLETE", ["GAP_DOCUMENT_MISSING"]),
    "us_lab_no_cert": ("INCOMPLETE", ["GAP_DOCUMENT_MISSING"]),
    "ind_missing_1572": ("INCOMPLETE", ["GAP_DOCUMENT_MISSING"]),
    "wrong_psp_version": ("INCOMPLETE", ["GAP_WRONG_VERSION"]),
    "old_1572_edition": ("INCOMPLETE", ["GAP_WRONG_VERSION"]),
    "truncated": ("DEAD_LETTERED", ["PDF_TRUNCATED"]),
    "corrupt": ("DEAD_LETTERED", ["PDF_CORRUPT"]),
    "encrypted": ("DEAD_LETTERED", ["PDF_ENCRYPTED"]),
    "fake_pdf": ("DEAD_LETTERED", ["FORMAT_UNSUPPORTED"]),
    "unknown_region": ("DEAD_LETTERED", ["MANIFEST_INVALID"]),
    "gcp_stale": ("VALIDATED_WITH_WARNINGS", ["GCP_TRAINING_STALE"]),
    "irb_near": ("VALIDATED_WITH_WARNINGS", ["IRB_EXPIRY_NEAR"]),
    "recommended_missing": ("VALIDATED_WITH_WARNINGS", ["GAP_RECOMMENDED_MISSING"]),
    "extra_unknown": ("VALIDATED_WITH_WARNINGS", ["DOC_TYPE_UNKNOWN"]),
    "owner_password_extra": (
        "VALIDATED_WITH_WARNINGS",
        ["DOC_TYPE_UNKNOWN", "PDF_OWNER_PASSWORD_ONLY"],
    ),
    "lab_contact_missing": ("VALIDATED_WITH_WARNINGS", ["LAB_CONTACT_MISSING"]),
}
# 30 slots: 8 clean, 10 blocked, 3 incomplete, 4 dead letters, 5 warnings (alternatives in
# tuples: one is drawn per seed).
SLOTS: list[str | tuple[str, ...]] = [
    *["clean"] * 8,
    "irb_expired",
    "license_expired",
    "lab_expired",
    "unsigned",
    "unsigned",
    "protocol_mismatch",
    "site_mismatch",
    "pi_mismatch",
    "delegate_no_gcp",
    "sig_predates",
    ("missing_doc", "us_lab_no_cert"),
    "ind_missing_1572",
    ("wrong_psp_version", "old_1572_edition"),
    "truncated",
    ("corrupt", "fake_pdf"),
    "encrypted",
    "unknown_region",
    "gcp_stale",
    "irb_near",
    "recommended_missing",
    ("extra_unknown", "owner_password_extra"),
    "lab_contact_missing",
]
EXTRA_CORPUS = [
    "clinical/SF424_page2.pdf",
    "clinical/broad_fax_cover.pdf",
    "clinical/broad_cgc_records_request.pdf",
    "general/multicolumn.pdf",
    "general/pdflatex-4-pages.pdf",
    "clinical/broad_brugada_research_consent.pdf",
]
CORRUPT_CORPUS = ["corrupt/broken-objstream1.pdf", "corrupt/circular-page-tree.pdf"]
IRB_NAMES = [
    "Western Plains Institutional Review Board",
    "Copperleaf IRB",
    "University Human Research Protection Office",
    "Regional Ethics Committee",
    "Medical Ethics Review Board",
    "Human Research Ethics Committee",
]
DOC_ALIASES = {
    "FDA_1572": ["1572", "Form FDA 1572", "fda_1572"],
    "INVESTIGATOR_CV": ["cv"],
    "GCP_CERTIFICATE": ["gcp"],
    "IRB_APPROVAL": ["irb_approval", "ethics_approval"],
    "MEDICAL_LICENSE": ["licence", "license"],
}


@dataclass
class Built:
    """One document file of a packet, with its truth."""

    path: str
    doc_type: str  # truth ("UNKNOWN" for extra documents)
    declared: str | None
    truth: dict[str, Any]


def _pick_region(rng: random.Random, scenario: str) -> str:
    fixed = {
        "us_lab_no_cert": "us",
        "old_1572_edition": "us",
        "lab_contact_missing": "us",
        "ind_missing_1572": rng.choice(["eu", "uk", "apac"]),
        "unknown_region": "latam",
        "recommended_missing": rng.choice(["eu", "uk", "apac"]),
    }
    if scenario in fixed:
        return fixed[scenario]
    return rng.choices(["us", "eu", "uk", "apac"], weights=[4, 3, 1.5, 1.5])[0]


def _context(rng: random.Random, scenario: str) -> PacketContext:
    region = _pick_region(rng, scenario)
    country = rng.choice(COUNTRIES[region])
    pool = region if region != "latam" else "eu"
    protocol = rng.choice(["CFX-301", "CFX-301", "NVX-210"])
    version, effective, old = PROTOCOLS[protocol][
        pool if pool in ("us", "eu", "uk", "apac") else "eu"
    ]
    used: set[str] = set()
    pi = new_person(rng, pool, used=used, credential=rng.choice(["MD", "MD, PhD", "MBBS"]))
    staff = [staff_member(rng, pool, used) for _ in range(rng.randint(2, 4))]
    site = new_site(rng, country)
    under_ind = (
        region == "us"
        or scenario == "ind_missing_1572"
        or (region != "latam" and rng.random() < 0.25)
    )
    lab = Lab(
        f"{site.institution} Clinical Laboratory",
        f"{rng.randint(2, 900)} Laboratory Wing",
        f"{site.city} {site.postcode}",
        phone_number(rng, country),
        phone_number(rng, country),
        f"{rng.randint(10, 52):02d}D{rng.randint(10**6, 10**7 - 1)}",
    )
    activation = AS_OF + timedelta(days=rng.randint(14, 90))
    ctx = PacketContext(
        rng=rng,
        region=region,
        country=country,
        site=site,
        site_number=f"{rng.randint(1, 9)}{rng.randint(0, 999):03d}"
        if rng.random() < 0.5
        else f"0{rng.randint(100, 999)}",
        protocol=protocol,
        version=version,
        version_date=effective - timedelta(days=rng.randint(5, 25)),
        activation=activation,
        pi=pi,
        staff=staff,
        irb_name=rng.choice(IRB_NAMES),
        irb_address=f"{rng.randint(10, 999)} {rng.choice(['Commerce', 'College', 'Mill'])} "
        f"Street, {site.city}",
        lab=lab,
        ind_number=str(rng.randint(100000, 199999)) if under_ind else None,
        sponsor=rng.choice(SPONSORS),
        defect=scenario,
    )
    ctx.notes["effective"] = effective.isoformat()
    ctx.notes["old_version"] = old
    ctx.notes["lists_lab"] = (
        "yes"
        if (
            scenario in ("us_lab_no_cert", "lab_contact_missing")
            or (region == "us" and rng.random() < 0.6)
        )
        else "no"
    )
    _dates(ctx, scenario, effective)
    return ctx


def _dates(ctx: PacketContext, scenario: str, effective: date) -> None:
    rng, act = ctx.rng, ctx.activation
    if scenario == "irb_expired":
        expiry = act - timedelta(days=rng.randint(10, 150))
    elif scenario == "irb_near":
        expiry = act + timedelta(days=rng.randint(20, 75))
    else:
        expiry = date(2026, 1, 5) + timedelta(days=rng.randint(0, 90) + 365)
    approved = expiry - timedelta(days=365)
    if approved > date(2026, 4, 10):
        approved = date(2026, 4, 10)
    ctx.notes["irb_expiry"], ctx.notes["irb_approved"] = expiry.isoformat(), approved.isoformat()
    ctx.notes["icf_date"] = (approved - timedelta(days=rng.randint(5, 30))).isoformat()
    ctx.notes["icf_version"] = rng.choice(["2.0", "3.1", "4.0", "5.0"])
    lic = (
        act - timedelta(days=rng.randint(10, 300))
        if scenario == "license_expired"
        else date(2027, 1, 31) + timedelta(days=rng.randint(0, 700))
    )
    ctx.notes["license_expiry"] = lic.isoformat()
    ctx.notes["license_issued"] = date(rng.randint(2006, 2018), rng.randint(1, 12), 1).isoformat()
    lab = (
        act - timedelta(days=rng.randint(10, 300))
        if scenario == "lab_expired"
        else date(2027, 3, 1) + timedelta(days=rng.randint(0, 600))
    )
    ctx.notes["lab_expiry"] = lab.isoformat()
    if scenario == "sig_predates":
        ctx.version_date = effective + timedelta(days=rng.randint(15, 25))
        signed = ctx.version_date - timedelta(days=rng.randint(4, 9))
    else:
        signed = max(ctx.version_date, effective) + timedelta(days=rng.randint(3, 40))
    ctx.notes["psp_signed"] = min(signed, date(2026, 4, 25)).isoformat()


def _gcp_completed(ctx: PacketContext, stale: bool) -> date:
    rng = ctx.rng
    if stale:
        return ctx.activation - timedelta(days=3 * 366 + rng.randint(30, 400))
    return date(2023, 10, 1) + timedelta(days=rng.randint(0, 880))


def _documents_for(ctx: PacketContext, scenario: str) -> list[str]:
    """The document types the packet holds (GCP_CERTIFICATE once per person)."""
    rng = ctx.rng
    common = [
        "INVESTIGATOR_CV",
        "IRB_APPROVAL",
        "ICF_APPROVAL",
        "DELEGATION_LOG",
        "CTA_BUDGET",
        "PROTOCOL_SIGNATURE_PAGE",
        "MEDICAL_LICENSE",
        "LAB_CERTIFICATION",
    ]
    types = list(common)
    if ctx.region == "us" or ctx.ind_number:
        types += ["FDA_1572", "FINANCIAL_DISCLOSURE"]
    else:
        types += ["FINANCIAL_DISCLOSURE"]  # recommended outside the US: a clean packet has it
    if scenario == "ind_missing_1572":
        types.remove("FDA_1572")
    if scenario == "us_lab_no_cert":
        types.remove("LAB_CERTIFICATION")
    if scenario == "missing_doc":
        types.remove(
            rng.choice(
                [
                    "INVESTIGATOR_CV",
                    "ICF_APPROVAL",
                    "CTA_BUDGET",
                    "PROTOCOL_SIGNATURE_PAGE",
                    "IRB_APPROVAL",
                    "DELEGATION_LOG",
                ]
            )
        )
    if scenario == "recommended_missing":
        optional = ["MEDICAL_LICENSE", "LAB_CERTIFICATION"]
        if not ctx.ind_number:
            optional.append("FINANCIAL_DISCLOSURE")
        types.remove(rng.choice(optional))
    return types


def _format(rng: random.Random, doc_type: str) -> str:
    roll = rng.random()
    if roll < 0.25:
        return "pdf_scan"
    if roll < 0.38 and doc_type not in ("LAB_CERTIFICATION", "MEDICAL_LICENSE"):
        return "docx"
    return "pdf_text"


def _signed_style(rng: random.Random, fmt: str) -> str:
    if fmt == "pdf_scan":
        return rng.choice(
            ["wet_ink", "wet_ink", "wet_ink", "slash_s", "esig_statement", "esig_box"]
        )
    if fmt == "docx":
        return rng.choice(["docx_image", "docx_image", "slash_s", "esig_statement"])
    return rng.choice(["slash_s", "esig_statement", "esig_box", "pdf_image"])


def _signer(ctx: PacketContext, unsigned: bool, style: str, sig_seed: random.Random) -> Any:
    """The document's ``sign``: every block signed in ``style``, or (``unsigned``) every block,
    table cells too, left blank in one unsigned style."""
    blank_style = sig_seed.choice(UNSIGNED_STYLES)

    def sign(label: str, person: Person, when: str, title: str = "") -> Sig:
        return Sig(
            label=label,
            signer=ctx.name(person),
            style=blank_style if unsigned else style,
            signed=not unsigned,
            date="" if unsigned else when,
            title=title,
            seed=sig_seed.getrandbits(31),
        )

    return sign


def _layout_for(ctx: PacketContext, doc_type: str) -> Any:
    options = LAYOUTS[doc_type]
    if ctx.region == "us":
        allowed = [f for f in options if _layout_id(f) not in NON_US]
    else:
        allowed = [f for f in options if _layout_id(f) not in US_ONLY]
    return ctx.rng.choice(allowed or options)


def _layout_id(fn: Any) -> str:
    names = {
        "irb_us_letter": "irb-us-letter",
        "irb_certificate_of_action": "irb-coa",
        "ec_favourable_opinion": "ec-opinion",
        "icf_ec_letter": "icf-ec",
        "lab_clia": "lab-clia",
        "lab_iso": "lab-iso",
        "license_board": "lic-board",
        "license_verification": "lic-verify",
        "license_registration": "lic-registration",
        "cv_biosketch": "cv-biosketch",
    }
    return names.get(fn.__name__, fn.__name__)


def _file_name(rng: random.Random, doc_type: str, index: int, ext: str) -> str:
    readable = {
        "FDA_1572": "Form_FDA_1572",
        "INVESTIGATOR_CV": "PI_CV",
        "MEDICAL_LICENSE": "medical_license",
        "GCP_CERTIFICATE": "GCP_training",
        "IRB_APPROVAL": "ethics_approval",
        "ICF_APPROVAL": "ICF_approval",
        "DELEGATION_LOG": "DOA_log",
        "FINANCIAL_DISCLOSURE": "FDF",
        "CTA_BUDGET": "CTA",
        "PROTOCOL_SIGNATURE_PAGE": "protocol_sig_page",
        "LAB_CERTIFICATION": "lab_cert",
    }
    if rng.random() < 0.4:
        return f"scan{index:04d}.{ext}" if ext == "pdf" else f"document_{index:02d}.{ext}"
    return f"{index:02d}_{readable.get(doc_type, 'document')}.{ext}"


def _render(
    doc: Doc, fmt: str, folder: Path, name: str, rng: random.Random, dpi: int
) -> dict[str, Any]:
    target = folder / name
    seed = rng.getrandbits(31)
    if fmt == "docx":
        render_docx(doc, target, seed=seed)
        return {}
    if fmt == "pdf_text":
        render_pdf(doc, target, seed=seed, page=rng.choice(["letter", "a4"]))
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "page.pdf"
        render_pdf(doc, source, seed=seed, page=rng.choice(["letter", "a4"]))
        return {**scan_pdf(source, target, rng, dpi=dpi), "dpi": dpi}


def _encrypt(path: Path, rng: random.Random) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(path))
    writer.encrypt(
        user_password=f"site{rng.randint(1000, 9999)}",
        owner_password=f"own{rng.randint(1000, 9999)}",
        algorithm="AES-128",
    )
    with path.open("wb") as fh:
        writer.write(fh)


def build_packet(seed: int, index: int, scenario: str, out: Path) -> dict[str, Any]:
    """Write one packet folder; returns its truth record."""
    rng = random.Random(seed * 1000 + index)
    ctx = _context(rng, scenario)
    folder = out / f"packet-{seed}-{index:02d}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    types = _documents_for(ctx, scenario)
    people = ctx.people()
    if scenario == "pi_mismatch":
        ctx.defect_doc = "DELEGATION_LOG"
        ctx.other_person = new_person(
            rng, ctx.region if ctx.region != "latam" else "eu", used={p.family for p in people}
        )
    if scenario in ("protocol_mismatch", "site_mismatch"):
        ctx.defect_doc = rng.choice(
            ["PROTOCOL_SIGNATURE_PAGE", "DELEGATION_LOG", "IRB_APPROVAL", "ICF_APPROVAL"]
        )
    unsigned_doc = (
        rng.choice(sorted(SIGNATURE_REQUIRED & set(types))) if scenario == "unsigned" else ""
    )
    no_gcp = rng.randrange(1, len(people)) if scenario == "delegate_no_gcp" else -1
    plan: list[tuple[str, int]] = [(t, -1) for t in types]
    plan += [("GCP_CERTIFICATE", i) for i in range(len(people)) if i != no_gcp]
    rng.shuffle(plan)
    broken_at = (
        rng.randrange(len(plan))
        if scenario in ("truncated", "corrupt", "encrypted", "fake_pdf")
        else -1
    )
    dpi = rng.choice([200, 300])
    built: list[Built] = []
    for i, (doc_type, person) in enumerate(plan, start=1):
        stale = scenario == "gcp_stale" and person == 0
        if doc_type == "GCP_CERTIFICATE":
            ctx.notes["gcp_index"] = str(person)
            ctx.notes["gcp_completed"] = _gcp_completed(ctx, stale).isoformat()
        layout = _layout_for(ctx, doc_type)
        fmt = "pdf_text" if i - 1 == broken_at else _format(rng, doc_type)
        style = _signed_style(rng, fmt)
        # Letters and certificates that need no signature are often left unsigned (printed
        # from a portal, "this letter needs no signature"): truth for signature precision.
        optional_blank = doc_type not in SIGNATURE_REQUIRED and rng.random() < 0.2
        unsigned = doc_type == unsigned_doc or optional_blank
        sign = _signer(ctx, unsigned, style, random.Random(rng.getrandbits(32)))
        doc = layout(ctx, sign)
        ext = "docx" if fmt == "docx" else "pdf"
        name = _file_name(rng, doc_type, i, ext)
        extra = _render(doc, fmt, folder, name, rng, dpi)
        sigs = doc.signatures()
        labelled = [s for s in sigs if s.label]
        truth: dict[str, Any] = {
            "path": name,
            "doc_type": doc_type,
            "format": fmt,
            "layout": doc.layout,
            "font": doc.font,
            "signature_required": doc_type in SIGNATURE_REQUIRED,
            "signature_blocks": [
                {"style": s.style, "signed": s.signed, "label": s.label} for s in sigs
            ],
            "signed": bool(labelled) and all(s.signed for s in labelled),
            "signature_style": labelled[-1].style if labelled else None,
            **extra,
        }
        if i - 1 == broken_at:
            truth["format"] = "broken"
            _break(folder / name, scenario, rng)
            truth["broken"] = scenario
        built.append(Built(name, doc_type, doc_type, truth))
    if scenario in ("extra_unknown", "owner_password_extra"):
        source = (
            CORPUS_PDF / "encrypted" / "r4-owner-password.pdf"
            if scenario == "owner_password_extra"
            else CORPUS_PDF / rng.choice(EXTRA_CORPUS)
        )
        name = f"{len(built) + 1:02d}_{rng.choice(['attachment', 'misc', 'additional'])}.pdf"
        shutil.copyfile(source, folder / name)
        built.append(
            Built(
                name,
                "UNKNOWN",
                None,
                {
                    "path": name,
                    "doc_type": "UNKNOWN",
                    "format": "corpus",
                    "layout": source.name,
                    "signature_required": False,
                    "signature_blocks": [],
                    "signed": False,
                    "signature_style": None,
                },
            )
        )
    _manifest(ctx, seed, folder, built)
    outcome, reasons = EXPECTED[scenario]
    return {
        "packet": folder.name,
        "seed": seed,
        "index": index,
        "scenario": scenario,
        "region": ctx.region,
        "country": ctx.country,
        "protocol": ctx.protocol,
        "version": ctx.version,
        "activation": ctx.activation.isoformat(),
        "defect_document": ctx.defect_doc or unsigned_doc or None,
        "expected_outcome": outcome,
        "expected_reasons": sorted(reasons),
        "documents": [b.truth for b in built],
    }


def _break(path: Path, scenario: str, rng: random.Random) -> None:
    if scenario == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * rng.uniform(0.4, 0.7))])
    elif scenario == "corrupt":
        shutil.copyfile(CORPUS_PDF / rng.choice(CORRUPT_CORPUS), path)
    elif scenario == "encrypted":
        _encrypt(path, rng)
    elif scenario == "fake_pdf":
        if rng.random() < 0.5:
            from PIL import Image

            Image.new("RGB", (640, 480), (250, 250, 250)).save(path, format="PNG")
        else:
            path.write_text("This file was exported as text by mistake.\n" * 20)


def _manifest(ctx: PacketContext, seed: int, folder: Path, built: list[Built]) -> None:
    rng = ctx.rng
    number = rng.choice([ctx.site_number, ctx.site_number.lstrip("0")])
    region: str = ctx.region
    if rng.random() < 0.2:
        region = region.upper()
    files = []
    for b in built:
        entry: dict[str, Any] = {"path": b.path}
        if b.declared:
            declared = b.declared
            if declared in DOC_ALIASES and rng.random() < 0.3:
                declared = rng.choice(DOC_ALIASES[declared])
            entry["doc_type"] = declared
        files.append(entry)
    manifest = {
        "site_id": f"SITE-{ctx.country}-{ctx.site_number}",
        "site_number": number,
        "protocol_number": ctx.protocol,
        "protocol_version": ctx.version,
        "region": region,
        "country": ctx.country,
        "target_activation_date": ctx.activation.isoformat(),
        "files": files,
    }
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def scenarios_for(seed: int, packets: int) -> list[str]:
    """The seed's scenarios: the 30 slots (alternatives drawn), repeated or cut to size."""
    rng = random.Random(seed)
    chosen = [s if isinstance(s, str) else rng.choice(s) for s in SLOTS]
    while len(chosen) < packets:
        chosen += [s if isinstance(s, str) else rng.choice(s) for s in SLOTS]
    chosen = chosen[:packets] if packets >= len(SLOTS) else rng.sample(chosen, packets)
    rng.shuffle(chosen)
    return chosen


def generate(seed: int, packets: int, out: Path) -> dict[str, Any]:
    """Generate ``packets`` packets for ``seed`` under ``out``; writes and returns the truth."""
    out.mkdir(parents=True, exist_ok=True)
    if not CORPUS_PDF.is_dir():
        raise SystemExit(f"the public PDF corpus is not at {CORPUS_PDF}; cannot add its files")
    records = [build_packet(seed, i, s, out) for i, s in enumerate(scenarios_for(seed, packets))]
    truth = {
        "seed": seed,
        "as_of": AS_OF.isoformat(),
        "generator": "bench.packet_corpus/1",
        "packets": records,
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth
