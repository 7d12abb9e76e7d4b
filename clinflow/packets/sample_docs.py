"""Builders of synthetic regulatory documents (for the demo data and tests).

Text PDFs come from fpdf2, scanned (image-only) PDFs from text rendered with Pillow and saved
as a picture-only PDF, DOCX from python-docx. Signature fields are added with pypdf: a signed
field carries a signature dictionary (``/V``) with a signing time (``/M``) and signer name;
its CMS blob is a placeholder, so it shows *presence*, not cryptographic validity. Output is
deterministic (fixed creation dates and ZIP timestamps): the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime

import docx
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

_FIXED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_ZIP_TIME = (2026, 1, 5, 9, 0, 0)


@dataclass(frozen=True)
class DigitalSignature:
    """A signature field to add to a PDF; ``signed_on`` None leaves the field empty."""

    field_name: str = "InvestigatorSignature"
    signer: str | None = None
    signed_on: date | None = None


def text_pdf(pages: list[list[str]], *, title: str = "") -> bytes:
    """A text PDF (letter size, Helvetica) with one list of lines per page."""
    pdf = FPDF(format="letter")
    pdf.set_creation_date(_FIXED)
    pdf.set_title(title)
    pdf.set_creator("clinflow sample data")
    pdf.set_auto_page_break(True, margin=18)
    for lines in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        for line in lines:
            pdf.multi_cell(0, 6, line or " ", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def add_signature_field(pdf: bytes, signature: DigitalSignature, *, page: int = -1) -> bytes:
    """``pdf`` with an AcroForm signature field (``/FT /Sig``) on ``page``.

    When ``signature.signed_on`` is set the field gets a value (``/V``) dated that day.
    """
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    target = writer.pages[page]
    widget = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Sig"),
            NameObject("/T"): TextStringObject(signature.field_name),
            NameObject("/F"): NumberObject(4),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (72, 72, 300, 110)]),
            NameObject("/P"): target.indirect_reference,
        }
    )
    if signature.signed_on is not None:
        stamp = signature.signed_on.strftime("D:%Y%m%d100000Z")
        value = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Sig"),
                NameObject("/Filter"): NameObject("/Adobe.PPKLite"),
                NameObject("/SubFilter"): NameObject("/adbe.pkcs7.detached"),
                NameObject("/M"): TextStringObject(stamp),
                NameObject("/Contents"): ByteStringObject(b"\x00" * 64),
                NameObject("/ByteRange"): ArrayObject([NumberObject(0)] * 4),
            }
        )
        if signature.signer:
            value[NameObject("/Name")] = TextStringObject(signature.signer)
        widget[NameObject("/V")] = writer._add_object(value)
    ref = writer._add_object(widget)
    annots = target.get("/Annots")
    if annots is None:
        target[NameObject("/Annots")] = ArrayObject([ref])
    else:
        annots.get_object().append(ref)
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(
        {
            NameObject("/Fields"): ArrayObject([ref]),
            NameObject("/SigFlags"): NumberObject(3),
        }
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def scanned_pdf(pages: list[list[str]], *, dpi: int = 150) -> bytes:
    """An image-only PDF: each page's lines drawn on a letter-size greyscale picture.

    There is no text layer, so reading it needs OCR.
    """
    width, height = int(8.5 * dpi), int(11 * dpi)
    font = ImageFont.load_default(size=max(12, dpi // 6))
    images: list[Image.Image] = []
    for lines in pages:
        image = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(image)
        y = dpi
        for line in lines:
            draw.text((dpi, y), line, fill=0, font=font)
            y += int(dpi * 0.33)
        images.append(image)
    out = io.BytesIO()
    images[0].save(
        out,
        format="PDF",
        save_all=True,
        append_images=images[1:],
        resolution=float(dpi),
        creationDate=time.gmtime(_FIXED.timestamp()),
        modDate=time.gmtime(_FIXED.timestamp()),
    )
    return out.getvalue()


def _fixed_zip(data: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def docx_document(
    lines: list[str],
    *,
    table: list[list[str]] | None = None,
    after_table: list[str] | None = None,
    title: str = "",
    author: str = "Site regulatory office",
) -> bytes:
    """A DOCX with paragraphs, an optional table (first row = header) and more paragraphs."""
    document = docx.Document()
    for line in lines:
        document.add_paragraph(line)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    for line in after_table or []:
        document.add_paragraph(line)
    props = document.core_properties
    props.title = title
    props.author = author
    props.created = _FIXED.replace(tzinfo=None)
    props.modified = _FIXED.replace(tzinfo=None)
    props.last_modified_by = author
    props.revision = 1
    out = io.BytesIO()
    document.save(out)
    return _fixed_zip(out.getvalue())
