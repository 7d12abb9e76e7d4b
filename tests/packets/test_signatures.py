"""Signature detection on signature styles the demo documents never use.

Scans are drawn here with Pillow (a signature label, then a hand-drawn scribble, an empty ruled
line or an empty box; skew, speckle, a fax header and punch holes), DOCX files with
python-docx (a picture in the signature cell or none), text layers as other institutions
write them (``/s/`` lines, e-signature statements and service boxes, blank lines).
"""

from __future__ import annotations

import io
import random

import docx
import pytest
from docx.shared import Inches
from PIL import Image, ImageDraw, ImageFont

from clinflow.packets.models import FileKind, PageText, ParseOptions, ParseResult
from clinflow.packets.ocr import tesseract_available
from clinflow.packets.parse import parse_document
from clinflow.packets.signatures import detect_signatures, overall

DPI = 200


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    ):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def scribble(draw: ImageDraw.ImageDraw, x: int, y: int, rng: random.Random) -> None:
    """A hand-made mark: a few connected random curves about 1.3 x 0.3 inches."""
    points = [(x, y)]
    for _ in range(40):
        px = points[-1][0]
        points.append((px + rng.randint(2, 9), y + rng.randint(-28, 28)))
    draw.line(points, fill=20, width=3, joint="curve")


def scan(style: str, *, seed: int = 1, skew: float = 1.2) -> bytes:
    """An image-only PDF page: a form with a signature line in ``style``."""
    rng = random.Random(seed)
    w, h = int(8.5 * DPI), int(11 * DPI)
    img = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(img)
    f = _font(30)
    d.text((60, 20), "FROM: +1 312 555 0100   03/04/2026 10:14   PAGE 1/1", fill=60, font=_font(22))
    lines = [
        "PROTOCOL SIGNATURE PAGE",
        "Protocol CFX-301 Version 3.0",
        "I have read this protocol and agree to conduct the study as described.",
        "Printed name: Jane Smith, MD",
    ]
    y = 300
    for line in lines:
        d.text((200, y), line, fill=0, font=f)
        y += 90
    y += 80
    d.text((200, y), "Investigator Signature:", fill=0, font=f)
    line_x = 620
    if style == "box":
        d.rectangle((line_x, y - 60, line_x + 600, y + 40), outline=0, width=3)
    else:
        d.line((line_x, y + 35, line_x + 600, y + 35), fill=0, width=3)
    if style == "scribble":
        scribble(d, line_x + 40, y + 5, rng)
    d.text((1300, y), "Date: 03/05/2026", fill=0, font=f)
    for _ in range(400):  # speckle
        px, py = rng.randrange(w), rng.randrange(h)
        d.point((px, py), fill=0)
    for hy in (h // 4, 3 * h // 4):  # punch holes
        d.ellipse((30, hy, 80, hy + 50), fill=0)
    img = img.rotate(skew, expand=False, fillcolor=255)
    out = io.BytesIO()
    img.save(out, format="PDF", resolution=DPI)
    return out.getvalue()


needs_ocr = pytest.mark.skipif(not tesseract_available(), reason="tesseract not installed")
OPTIONS = ParseOptions(ocr_max_workers=1, ocr_dpi=DPI)


@needs_ocr
@pytest.mark.parametrize("skew", [0.0, 1.5, -2.0])
def test_wet_ink_on_a_skewed_noisy_scan_is_a_signature(skew: float) -> None:
    parsed = parse_document(scan("scribble", skew=skew), options=OPTIONS)
    evidence = overall(detect_signatures(parsed))
    assert evidence.status == "signed", [m.model_dump() for m in parsed.signature_marks]
    assert evidence.method == "wet_ink"


@needs_ocr
@pytest.mark.parametrize("style", ["line", "box"])
@pytest.mark.parametrize("skew", [0.0, 1.5])
def test_an_empty_line_or_box_is_unsigned(style: str, skew: float) -> None:
    parsed = parse_document(scan(style, skew=skew), options=OPTIONS)
    evidence = overall(detect_signatures(parsed))
    assert evidence.status == "unsigned", [m.model_dump() for m in parsed.signature_marks]


def _docx(with_image: bool) -> bytes:
    document = docx.Document()
    document.add_heading("Investigator Curriculum Vitae", level=1)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Signature"
    if with_image:
        png = io.BytesIO()
        img = Image.new("L", (300, 80), 255)
        scribble(ImageDraw.Draw(img), 10, 40, random.Random(3))
        img.save(png, format="PNG")
        png.seek(0)
        table.rows[0].cells[1].paragraphs[0].add_run().add_picture(png, width=Inches(1.5))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_picture_in_the_signature_cell_is_a_signature() -> None:
    signed = overall(detect_signatures(parse_document(_docx(True))))
    unsigned = overall(detect_signatures(parse_document(_docx(False))))
    assert (signed.status, signed.method) == ("signed", "image")
    assert unsigned.status == "unsigned"


def _text(text: str) -> ParseResult:
    return ParseResult(
        kind=FileKind.PDF,
        sha256="0" * 64,
        size=len(text),
        page_count=1,
        pages=[PageText(index=0, text=text, chars=len(text))],
    )


@pytest.mark.parametrize(
    ("text", "kind", "signer", "date"),
    [
        ("Investigator: /s/ Jane Smith 03/04/2026", "typed", "Jane Smith", "2026-03-04"),
        (
            "Electronically signed by Jane Smith, MD on 4 March 2026\nSignature",
            "e_signature",
            "Jane Smith, MD",
            "2026-03-04",
        ),
        (
            "Digitally signed by Omar Haddad\nDate: 2026.03.04 10:12:01 +01'00'",
            "e_signature",
            "Omar Haddad",
            "2026-03-04",
        ),
        (
            "DocuSign Envelope ID: 4F2A-77B1-9C0D\nSigned by: Lena Fischer\n"
            "Signing time: 04-Mar-2026 10:02 UTC",
            "e_signature",
            "Lena Fischer",
            "2026-03-04",
        ),
    ],
)
def test_text_layer_signatures(text: str, kind: str, signer: str, date: str) -> None:
    evidence = overall(detect_signatures(_text(text)))
    assert (evidence.status, evidence.method) == ("signed", kind)
    assert evidence.signer == signer and evidence.date == date


@pytest.mark.parametrize(
    "text",
    [
        "Signature: ____________________  Date: ____________",
        "Investigator signature ..............................",
        "Signed:\nPrinted name: Jane Smith\nDate:",
    ],
)
def test_blank_signature_lines_are_unsigned(text: str) -> None:
    assert overall(detect_signatures(_text(text))).status == "unsigned"


def _text_pdf(with_image: bool) -> bytes:
    """A text PDF whose signature is a picture beside the label (or an empty line)."""
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=letter)
    c.setFont("Helvetica", 11)
    c.drawString(72, 700, "PROTOCOL SIGNATURE PAGE - Protocol CFX-301 Version 3.0")
    c.drawString(72, 680, "I have read this protocol and agree to conduct the study as described.")
    c.drawString(72, 600, "Investigator Signature:")
    c.line(210, 598, 420, 598)
    c.drawString(440, 600, "Date: 03/05/2026")
    if with_image:
        img = Image.new("L", (600, 160), 255)
        scribble(ImageDraw.Draw(img), 20, 80, random.Random(5))
        c.drawImage(ImageReader(img), 215, 600, width=180, height=48)
    c.showPage()
    c.save()
    return out.getvalue()


def test_signature_image_beside_a_label_in_a_text_pdf() -> None:
    signed = parse_document(_text_pdf(True))
    unsigned = parse_document(_text_pdf(False))
    with_image = overall(detect_signatures(signed))
    without = overall(detect_signatures(unsigned))
    assert (with_image.status, with_image.method) == ("signed", "image"), signed.signature_marks
    assert without.status == "unsigned", unsigned.signature_marks


def test_dayfirst_dates_of_a_typed_signature() -> None:
    evidence = overall(detect_signatures(_text("/s/ Jane Smith 03/04/2026"), dayfirst=True))
    assert (evidence.signer, evidence.date) == ("Jane Smith", "2026-04-03")


def _pen_image(seed: int) -> Image.Image:
    """A thin, light-grey pen signature (anti-aliased strokes render mid-grey)."""
    img = Image.new("L", (600, 160), 255)
    d = ImageDraw.Draw(img)
    rng = random.Random(seed)
    points = [(10, 80)]
    for _ in range(30):
        points.append((points[-1][0] + rng.randint(8, 20), 80 + rng.randint(-60, 60)))
    d.line(points, fill=140, width=2)
    return img


def _role_pdf(signed: bool, *, logo: bool = False) -> bytes:
    """A certificate whose signature line carries only a role under it ("Course director")."""
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=letter)
    if logo:  # a letterhead picture above a full rule near the top is not a signature
        c.drawImage(ImageReader(_pen_image(9)), 72, 720, width=150, height=40)
        c.line(72, 712, 540, 712)
    c.setFont("Times-Roman", 16)
    c.drawString(200, 650, "Certificate of Completion")
    c.setFont("Times-Roman", 11)
    c.drawString(150, 620, "This is to certify that Yuki Lim has completed the course")
    c.drawString(150, 605, "ICH Good Clinical Practice E6(R3) on 2025-06-08")
    c.line(72, 520, 520, 520)
    c.drawString(72, 506, "Course director")
    c.drawString(380, 506, "Date")
    c.drawString(380, 526, "2025-06-08")
    if signed:
        c.drawImage(ImageReader(_pen_image(4)), 80, 524, width=150, height=40)
    c.showPage()
    c.save()
    return out.getvalue()


@pytest.mark.parametrize("logo", [False, True])
def test_ink_above_a_line_labelled_only_by_a_role_in_a_text_pdf(logo: bool) -> None:
    signed = parse_document(_role_pdf(True, logo=logo))
    unsigned = parse_document(_role_pdf(False, logo=logo))
    with_ink = overall(detect_signatures(signed))
    without = overall(detect_signatures(unsigned))
    assert (with_ink.status, with_ink.method) == ("signed", "image"), signed.signature_marks
    assert without.status == "unsigned", unsigned.signature_marks


def _role_scan(signed: bool, skew: float) -> bytes:
    """A scan of a letter signed above a line with the committee role under it."""
    w, h = int(8.5 * DPI), int(11 * DPI)
    img = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(img)
    f = _font(30)
    y = 300
    for line in (
        "ETHICS COMMITTEE - FAVOURABLE OPINION",
        "The Committee gives a favourable opinion of the research.",
        "Opinion valid until: 22 March 2027",
    ):
        d.text((200, y), line, fill=0, font=f)
        y += 90
    line_y = y + 220
    d.line((190, line_y, 1500, line_y), fill=0, width=3)
    d.text((195, line_y + 15), "Chair of the Ethics Committee", fill=0, font=f)
    d.text((1100, line_y + 15), "Date", fill=0, font=f)
    d.text((1100, line_y - 45), "22 March 2026", fill=0, font=f)
    if signed:
        img.paste(_pen_image(7).resize((450, 120)), (230, line_y - 130))
    rng = random.Random(2)
    for _ in range(400):
        d.point((rng.randrange(w), rng.randrange(h)), fill=0)
    img = img.rotate(skew, expand=False, fillcolor=255)
    out = io.BytesIO()
    img.save(out, format="PDF", resolution=DPI)
    return out.getvalue()


@needs_ocr
@pytest.mark.parametrize("skew", [0.0, 2.0, -1.5])
def test_wet_ink_above_a_role_labelled_line_on_a_skewed_scan(skew: float) -> None:
    signed = parse_document(_role_scan(True, skew), options=OPTIONS)
    unsigned = parse_document(_role_scan(False, skew), options=OPTIONS)
    assert overall(detect_signatures(signed)).status == "signed", signed.signature_marks
    assert overall(detect_signatures(unsigned)).status == "unsigned", unsigned.signature_marks


def _sign_off_docx(with_image: bool) -> bytes:
    """A DOCX letter whose sign-off table has a role heading and the picture under it."""
    document = docx.Document()
    document.add_paragraph("Western Plains Institutional Review Board")
    document.add_paragraph("Consent Form Approval Notice")
    document.add_paragraph("The Board has approved the consent documents below.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "For the Board"
    table.cell(0, 1).text = "Date"
    table.cell(1, 1).text = "23 January 2026"
    if with_image:
        png = io.BytesIO()
        _pen_image(3).save(png, format="PNG")
        png.seek(0)
        table.cell(1, 0).paragraphs[0].add_run().add_picture(png, width=Inches(1.5))
    document.add_page_break()
    document.add_paragraph("Attachment: list of approved documents")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_picture_in_a_sign_off_row_and_page_breaks() -> None:
    signed = parse_document(_sign_off_docx(True))
    unsigned = parse_document(_sign_off_docx(False))
    assert overall(detect_signatures(signed)).status == "signed"
    assert overall(detect_signatures(unsigned)).status == "unsigned"
    assert signed.page_count == 2  # the hard page break counts, no stored Pages count


def test_e_signature_box_with_its_reference_on_the_next_line() -> None:
    text = (
        "SecureSign\nSigner: Nkemelu, Howard\nSigned: 05/27/2024 09:51 UTC\nDocument ID:\n"
        "50DB008E-63A5-072B-E8E0-C55921A914AE\nCourse director"
    )
    evidence = overall(detect_signatures(_text(text)))
    assert (evidence.status, evidence.method, evidence.signer) == (
        "signed",
        "e_signature",
        "Nkemelu, Howard",
    )
    footer = overall(detect_signatures(_text("Document No.: 2024-17\nIssued 03/04/2026")))
    assert footer.status == "unsigned"


@pytest.mark.parametrize(
    "text",
    [
        "lectronically signed by: Beatriz Quintal, MD on 2026/01/07 18:15",
        "Electronically \u2018signed by TELFORD, Marcus on.18/02/2026 10:37",
        "Electronically signed. b\nvy: ALVARADO, Wesley on 26 Mar 2026 16:06",
        "/si Solveig W. Vermeulen, MD 14 Mar 2026",
    ],
)
def test_ocr_variants_of_text_signatures(text: str) -> None:
    assert overall(detect_signatures(_text(text))).status == "signed"


def test_the_signed_by_of_a_sentence_is_not_an_e_signature() -> None:
    text = "The form must be returned once the signed by-laws are filed.\nSignature: ________"
    assert overall(detect_signatures(_text(text))).status == "unsigned"
