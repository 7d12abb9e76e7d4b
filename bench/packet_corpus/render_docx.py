"""DOCX rendering with python-docx: the same :class:`Doc` blocks as Word documents.

Signature blocks become a typed line, an e-signature sentence, or an inline picture of a
handwritten signature, either in the paragraph above the label or in a table cell (label in
one row, the picture in the next).
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Inches, Pt
from docx.table import _Cell

from bench.packet_corpus.doc import Doc, Fields, Heading, PageBreak, Para, Sig, Space, Table
from bench.packet_corpus.scribble import scribble_png

_ALIGN = {"center": WD_ALIGN_PARAGRAPH.CENTER, "right": WD_ALIGN_PARAGRAPH.RIGHT}
_DOCX_FONT = {"Helvetica": "Arial", "Times": "Times New Roman", "Courier": "Courier New"}


def _picture(run_holder: object, seed: int, width: float) -> None:
    png = scribble_png(seed, width=360, height=110)
    run_holder.add_run().add_picture(io.BytesIO(png), width=Inches(width))  # type: ignore[attr-defined]


def _sig_text(sig: Sig, rng: random.Random) -> str:
    if sig.style == "slash_s":
        return f"/s/ {sig.signer}   {sig.date}"
    if sig.style == "esig_statement":
        return f"Electronically signed by {sig.signer} on {sig.date}"
    if sig.style == "esig_box":
        return (
            f"Signed electronically - Signer: {sig.signer} - Signed: {sig.date} - "
            f"Document ID: {rng.getrandbits(48):012X}"
        )
    return ""


def _signature(document: object, sig: Sig, rng: random.Random) -> None:
    doc = document
    if not sig.signed:
        if sig.style == "sig_date_blank":
            doc.add_paragraph(
                f"{sig.label}: ____________________   "  # type: ignore[attr-defined]
                f"{sig.date_label}: ____________"
            )
        else:
            doc.add_paragraph("")  # type: ignore[attr-defined]
            doc.add_paragraph("_" * 36)  # type: ignore[attr-defined]
            doc.add_paragraph(f"{sig.label}          {sig.date_label}")  # type: ignore[attr-defined]
        return
    if sig.style == "docx_image" and rng.random() < 0.5:
        table = doc.add_table(rows=2, cols=2)  # type: ignore[attr-defined]
        table.style = "Table Grid"
        table.cell(0, 0).text = sig.label
        table.cell(0, 1).text = sig.date_label
        _picture(table.cell(1, 0).paragraphs[0], sig.seed, 1.6)
        table.cell(1, 1).text = sig.date
        return
    if sig.style == "docx_image":
        _picture(doc.add_paragraph(), sig.seed, 1.7)  # type: ignore[attr-defined]
    else:
        doc.add_paragraph(_sig_text(sig, rng))  # type: ignore[attr-defined]
    doc.add_paragraph(f"{sig.label}    {sig.date_label}: {sig.date}")  # type: ignore[attr-defined]
    if sig.title:
        doc.add_paragraph(sig.title)  # type: ignore[attr-defined]


def _cell(cell: _Cell, value: str | Sig, rng: random.Random) -> None:
    if isinstance(value, Sig):
        if not value.signed:
            return
        if value.style == "docx_image":
            _picture(cell.paragraphs[0], value.seed, 0.8)
        else:
            cell.text = _sig_text(value, rng).split("   ")[0]
        return
    cell.text = value


def render_docx(doc: Doc, path: Path, *, seed: int) -> None:
    """Write ``doc`` as a .docx file at ``path``."""
    rng = random.Random(seed)
    out = Document()
    style = out.styles["Normal"]
    style.font.name = _DOCX_FONT.get(doc.font, "Calibri")  # type: ignore[attr-defined]
    style.font.size = Pt(doc.size)  # type: ignore[attr-defined]
    for line in doc.letterhead:
        p = out.add_paragraph(line)
        p.alignment = _ALIGN.get(doc.letterhead_align)
    for block in doc.blocks:
        if isinstance(block, Heading):
            out.add_heading(block.text, level=min(block.level, 3))
        elif isinstance(block, Para):
            for i, line in enumerate(block.text.split("\n")):
                p = out.add_paragraph()
                run = p.add_run(line)
                run.bold = block.bold and i == 0
                if block.small:
                    run.font.size = Pt(doc.size - 1.5)
                p.alignment = _ALIGN.get(block.align)
        elif isinstance(block, Fields):
            if block.mode == "grid":
                table = out.add_table(rows=0, cols=2)
                table.style = "Table Grid"
                for k, v in block.pairs:
                    cells = table.add_row().cells
                    cells[0].text, cells[1].text = k, v
            else:
                for k, v in block.pairs:
                    out.add_paragraph(f"{k}: {v}" if k else v)
        elif isinstance(block, Table):
            table = out.add_table(rows=1, cols=len(block.header))
            if block.boxed:
                table.style = "Table Grid"
            for i, h in enumerate(block.header):
                table.rows[0].cells[i].text = h
            for row in block.rows:
                cells = table.add_row().cells
                for i, value in enumerate(row):
                    _cell(cells[i], value, rng)
        elif isinstance(block, Sig):
            _signature(out, block, rng)
        elif isinstance(block, Space):
            out.add_paragraph("")
        elif isinstance(block, PageBreak):
            out.add_page_break()
    if doc.footer:
        out.sections[0].footer.paragraphs[0].text = doc.footer
    for prop in ("author", "last_modified_by", "title"):
        setattr(out.core_properties, prop, "")
    out.save(str(path))
